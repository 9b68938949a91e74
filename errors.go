package keygate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/keygate/keygate/jwks"
)

// kind is the class of a verification failure. Its text is fixed and free
// of token content, so transports can send it to clients as is.
type kind struct{ desc string }

func (k *kind) Error() string { return "keygate: " + k.desc }

// The classes of verification failure. Every error [Verifier.Verify]
// returns is an [*Error] that matches exactly one of them with errors.Is.
// All but ErrKeysUnavailable mean the token is rejected (HTTP 401
// invalid_token); ErrKeysUnavailable means it cannot be checked now (HTTP
// 503 with Retry-After). The checks run in the order listed.
var (
	// ErrMalformed: empty, larger than [Config.MaxTokenSize], not three
	// base64url parts, a header or payload that is not a JSON object or
	// repeats a member, a crit header, a NumericDate out of range.
	ErrMalformed error = &kind{"malformed token"}
	// ErrUnsupportedAlgorithm: alg outside [Config.Algorithms] (none and
	// HMAC always), or an alg that differs from its key's alg or type.
	ErrUnsupportedAlgorithm error = &kind{"unsupported signature algorithm"}
	// ErrUnknownKey: a successful fetch of the key set holds no key for
	// the token's kid (see [jwks.ErrUnknownKey]).
	ErrUnknownKey error = &kind{"unknown signing key"}
	// ErrBadSignature: the signature does not verify under the key.
	ErrBadSignature error = &kind{"invalid signature"}
	// ErrExpired: exp plus [Config.Leeway] is in the past.
	ErrExpired error = &kind{"token expired"}
	// ErrNotYetValid: nbf or iat minus [Config.Leeway] is in the future.
	ErrNotYetValid error = &kind{"token not yet valid"}
	// ErrWrongIssuer: iss differs from [Config.Issuer] (exact match).
	ErrWrongIssuer error = &kind{"wrong issuer"}
	// ErrWrongAudience: aud holds none of [Config.Audiences], or azp is
	// not one of [Config.AuthorizedParties].
	ErrWrongAudience error = &kind{"wrong audience"}
	// ErrWrongTokenType: not an access token (an ID, refresh, offline or
	// logout token, or no type at all), or a DPoP- or certificate-bound
	// token presented as a bearer token (RFC 9449, RFC 8705).
	ErrWrongTokenType error = &kind{"wrong token type"}
	// ErrInvalidClaims: no exp, or a [Validator] refused the claims.
	ErrInvalidClaims error = &kind{"invalid claims"}
	// ErrKeysUnavailable: the key set cannot answer now (never fetched,
	// the provider down while a new kid is asked for, keys older than
	// MaxStale); the token may be valid.
	ErrKeysUnavailable error = &kind{"signing keys unavailable"}
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

// maxQuoted is how many bytes of a token's value an error message quotes.
// Values come from whoever sent the token; error texts go to logs.
const maxQuoted = 64

// quote quotes a value taken from a token for an error message, cut to
// maxQuoted bytes with a note of its full length.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxQuoted]) + fmt.Sprintf("…(%d bytes)", len(s))
}

// quoteList quotes at most 4 values of a list taken from a token.
func quoteList(l []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range l {
		if i == 4 {
			fmt.Fprintf(&b, " …(%d values)", len(l))
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quote(s))
	}
	b.WriteByte(']')
	return b.String()
}
