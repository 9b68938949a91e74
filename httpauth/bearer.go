package httpauth

import (
	"fmt"
	"strings"

	"github.com/keygate/keygate"
)

// ParseAuthorization returns the bearer token of one Authorization header
// value (RFC 6750 section 2.1): the scheme Bearer in any case, spaces,
// and a token of b64token syntax. It is the syntax the middleware
// applies, for other transports that carry the same header, such as gRPC
// metadata (package grpcauth).
//
// It returns "" and a nil error for a value of another scheme (Basic,
// DPoP, ...), which carries no bearer token. For the scheme Bearer with
// no token or a token that is not b64token, it returns an error that
// wraps [keygate.ErrMalformed] and never quotes the value: the caller
// answers it as a bad token (401 invalid_token, gRPC Unauthenticated).
func ParseAuthorization(value string) (string, error) {
	tok, bearer, valid := parseBearer(value)
	if bearer && !valid {
		return "", fmt.Errorf("httpauth: the bearer token is not b64token syntax: %w", keygate.ErrMalformed)
	}
	return tok, nil
}

// parseBearer reads one Authorization value: bearer reports the scheme
// Bearer (any case), valid that a b64token follows it, and tok is that
// token when both hold. It is the one reading of the header, for the
// middleware and for ParseAuthorization.
func parseBearer(value string) (tok string, bearer, valid bool) {
	scheme, rest, ok := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, false
	}
	rest = strings.TrimLeft(rest, " ")
	if !ok || !isB64Token(rest) {
		return "", true, false
	}
	return rest, true, true
}
