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
	scheme, tok, ok := strings.Cut(value, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", nil
	}
	tok = strings.TrimLeft(tok, " ")
	if !ok || !isB64Token(tok) {
		return "", fmt.Errorf("httpauth: the bearer token is not b64token syntax: %w", keygate.ErrMalformed)
	}
	return tok, nil
}
