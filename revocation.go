package keygate

// Revocations reports tokens revoked before their exp: the sessions a
// user logged out of (OpenID Connect Back-Channel Logout 1.0), subjects
// logged out everywhere, single tokens by jti. A [Verifier] asks it after
// every other check has passed, on every call, verified-token cache hits
// included (see [Config.Revocations]).
//
// Revoked is on every request's path: it must answer from memory, without
// I/O or locks that serialise callers, and be safe for concurrent use. A
// replicated set (such as one kept current from Redis) answers from its
// local replica. p is read-only.
type Revocations interface {
	Revoked(p *Principal) bool
}

// revoked is the error for a token Revocations refused. The detail names
// the claims a revocation may match on, cut like every token value.
func revoked(p *Principal) *Error {
	return fail(ErrRevoked, "sid "+quote(p.SessionID)+", sub "+quote(p.Subject)+", jti "+quote(p.JWTID), nil)
}
