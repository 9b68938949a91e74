package keygate

import (
	"errors"

	"github.com/keygate/keygate/jwks"
)

// kind is the class of a verification failure. Its text is fixed and free
// of token content, so transports can send it to clients as is.
type kind struct{ desc string }

func (k *kind) Error() string { return "keygate: " + k.desc }

// The classes of verification failure. Every error [Verifier.Verify]
// returns is an [*Error] that matches exactly one of them with errors.Is.
// All but ErrKeysUnavailable mean the token is rejected (HTTP 401);
// ErrKeysUnavailable means it cannot be checked now (HTTP 503).
var (
	ErrMalformed            error = &kind{"malformed token"}
	ErrUnsupportedAlgorithm error = &kind{"unsupported signature algorithm"}
	ErrUnknownKey           error = &kind{"unknown signing key"}
	ErrBadSignature         error = &kind{"invalid signature"}
	ErrExpired              error = &kind{"token expired"}
	ErrNotYetValid          error = &kind{"token not yet valid"}
	ErrWrongIssuer          error = &kind{"wrong issuer"}
	ErrWrongAudience        error = &kind{"wrong audience"}
	ErrWrongTokenType       error = &kind{"wrong token type"}
	ErrInvalidClaims        error = &kind{"invalid claims"}
	ErrKeysUnavailable      error = &kind{"signing keys unavailable"}
)

// Error is a verification failure. Kind is one of the Err variables of
// this package; Detail says what exactly failed and may quote values from
// the token, so it belongs in logs, not in answers to clients.
type Error struct {
	Kind   error
	Detail string
	Err    error
}

func (e *Error) Error() string {
	s := e.Kind.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is e's Kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Description returns the fixed text of e's Kind, such as "token expired",
// fit for an RFC 6750 error_description: it never holds token content.
func (e *Error) Description() string {
	if k, ok := e.Kind.(*kind); ok {
		return k.desc
	}
	return "invalid token"
}

func fail(k error, detail string, err error) *Error {
	return &Error{Kind: k, Detail: detail, Err: err}
}

// keyError classifies an error from a [KeySet].
func keyError(err error) *Error {
	if errors.Is(err, jwks.ErrUnknownKey) {
		return fail(ErrUnknownKey, "", err)
	}
	return fail(ErrKeysUnavailable, "", err)
}
