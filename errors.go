package keygate

import (
	"errors"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/clip"
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
	// not one of [Config.AuthorizedParties]; for a logout token, aud does
	// not hold the audience given to [Verifier.VerifyLogoutToken].
	ErrWrongAudience error = &kind{"wrong audience"}
	// ErrWrongTokenType: not an access token (an ID, refresh, offline or
	// logout token, or no type at all), or a DPoP- or certificate-bound
	// token presented as a bearer token (RFC 9449, RFC 8705). From
	// [Verifier.VerifyLogoutToken]: not a logout token (no back-channel
	// logout event, a nonce, another typ).
	ErrWrongTokenType error = &kind{"wrong token type"}
	// ErrInvalidClaims: no exp, or a [Validator] refused the claims; for
	// a logout token, no iat, no jti, or neither sid nor sub.
	ErrInvalidClaims error = &kind{"invalid claims"}
	// ErrRevoked: the token passed every other check, but
	// [Config.Revocations] reports it revoked (a logged-out session, a
	// subject logged out everywhere, a revoked jti). Checked on every
	// Verify, verified-token cache hits included.
	ErrRevoked error = &kind{"token revoked"}
	// ErrKeysUnavailable: the key set cannot answer now (never fetched,
	// the provider down while a new kid is asked for, keys older than
	// MaxStale); the token may be valid.
	ErrKeysUnavailable error = &kind{"signing keys unavailable"}
)

// Error is a verification failure. Kind is one of the Err variables of
// this package; Detail says what exactly failed and may quote values from
// the token, so it belongs in logs, not in answers to clients.
//
// Since a token's values are chosen by whoever sends it, the messages are
// bounded: Detail quotes each value cut to 64 bytes, and the text of
// Error holds at most 512 bytes of Detail and of Err's text each, each cut
// at a rune boundary and followed by a marker such as "... (11264 bytes)".
// Err itself is kept whole, for errors.Is and errors.As.
type Error struct {
	Kind   error
	Detail string
	Err    error
}

func (e *Error) Error() string {
	s := e.Kind.Error()
	if e.Detail != "" {
		s += ": " + clip.String(e.Detail, 8*clip.Quoted)
	}
	if e.Err != nil {
		s += ": " + clip.String(e.Err.Error(), 8*clip.Quoted)
	}
	return s
}

// quote returns v in Go quotes, cut to clip.Quoted bytes. Every value
// from a token that goes into an error message passes through it (or
// through quoteList).
func quote(v string) string { return clip.Quote(v, clip.Quoted) }

// quoteList quotes the first few values of l (see quote), in brackets.
func quoteList(l []string) string {
	const most = 4
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range l {
		if i == most {
			b.WriteString(" ... and " + strconv.Itoa(len(l)-most) + " more")
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quote(v))
	}
	b.WriteByte(']')
	return b.String()
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

// classless carries a cause from outside keygate, a [Validator]'s error,
// that may itself wrap keygate's classes: errors.Is finds none of them
// through it, so that the [Error] holding it matches its own Kind alone,
// while the cause's other errors stay reachable with errors.Is and
// errors.As.
type classless struct{ err error }

func (c classless) Error() string { return c.err.Error() }

func (c classless) Is(target error) bool {
	if _, ok := target.(*kind); ok {
		return false
	}
	return errors.Is(c.err, target)
}

func (c classless) As(target any) bool { return errors.As(c.err, target) }
