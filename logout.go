package keygate

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/jose"
)

// LogoutToken is a verified logout token (OpenID Connect Back-Channel
// Logout 1.0 section 2.4): the provider's word that a session, or every
// session of a subject, has ended. [Verifier.VerifyLogoutToken] returns
// it.
type LogoutToken struct {
	// Issuer is iss, equal to [Config.Issuer].
	Issuer string
	// Subject is sub and SessionID is sid; at least one is set. Keycloak
	// sends both, or sub alone when the client's "Backchannel logout
	// session required" is off. Without sid, every session of Subject
	// has ended.
	Subject, SessionID string
	// JWTID is jti, never empty: a receiver refuses a jti it has seen
	// (section 2.6, step 7).
	JWTID string
	// Audience is aud, always as a list; it holds the audience the token
	// was checked against.
	Audience []string
	// IssuedAt is iat and ExpiresAt is exp; both are always set.
	// Keycloak 26 sends exp = iat + 120 s.
	IssuedAt, ExpiresAt time.Time
	// AcceptedUntil is the last instant VerifyLogoutToken accepts the
	// token: ExpiresAt plus [Config.Leeway]. A replay check must remember
	// JWTID at least until then.
	AcceptedUntil time.Time
}

// VerifyLogoutToken checks raw, a compact JWT logout token sent to a
// Back-Channel Logout URI, as section 2.6 of OpenID Connect Back-Channel
// Logout 1.0 (with errata set 1) requires, and returns it. audience is the
// client ID the provider sends logout tokens to (in Keycloak, the client
// whose "Backchannel logout URL" points here); aud must hold it. It is
// usually not one of [Config.Audiences], which name the resource server.
//
// The checks run in Verify's order, with Verify's own code for the size,
// format, algorithm ([Config.Algorithms]), lifetime ([Config.Leeway]),
// issuer, key and signature; only the type and claim checks differ:
//
//   - the token must be a logout token: its events claim holds the member
//     http://schemas.openid.net/event/backchannel-logout with an object
//     value, it carries no nonce, its header typ (if any) is "logout+jwt"
//     (or the generic "JWT"), and Keycloak's typ claim (if any) is "Logout"
//     ([ErrWrongTokenType]);
//   - exp and iat are required ([ErrInvalidClaims]), iat must not be in the
//     future beyond the leeway ([ErrNotYetValid]);
//   - aud must hold audience ([ErrWrongAudience]); [Config.Audiences],
//     [Config.AuthorizedParties] and InsecureSkipAudienceCheck play no part;
//   - jti is required, and sid or sub or both ([ErrInvalidClaims]).
//
// It does not remember jti (the caller does, until
// [LogoutToken.AcceptedUntil]), consult [Config.Revocations], run
// [Config.Validators] or use the verified-token cache. A logout token
// never passes [Verifier.Verify], nor an access token VerifyLogoutToken.
// Errors are [*Error]s, classed as Verify's are; only [ErrKeysUnavailable]
// means the token could not be checked.
func (v *Verifier) VerifyLogoutToken(ctx context.Context, raw, audience string) (*LogoutToken, error) {
	if audience == "" {
		return nil, fail(ErrWrongAudience, "no audience to check the logout token against", nil)
	}
	if e := v.checkSize(raw); e != nil {
		return nil, e
	}
	now := v.cfg.Now()
	var t token
	if e := t.decode(raw); e != nil {
		return nil, e
	}
	h, c := &t.h, &t.c
	if e := checkLogoutType(h, c); e != nil {
		return nil, e
	}
	if e := v.checkAlgorithm(h); e != nil {
		return nil, e
	}
	exp, e := v.checkTimes(c, now)
	if e != nil {
		return nil, e
	}
	if !c.Iat.set {
		return nil, fail(ErrInvalidClaims, "logout token has no iat", nil)
	}
	if e := v.checkIssuer(c); e != nil {
		return nil, e
	}
	if !slices.Contains(c.Aud, audience) {
		return nil, fail(ErrWrongAudience, "aud "+quoteList(c.Aud)+" does not hold "+quote(audience), nil)
	}
	if c.Jti == "" {
		return nil, fail(ErrInvalidClaims, "logout token has no jti", nil)
	}
	if c.Sid == "" && c.Sub == "" {
		return nil, fail(ErrInvalidClaims, "logout token has neither sid nor sub", nil)
	}
	key, e := v.key(ctx, h)
	if e != nil {
		return nil, e
	}
	if e := checkSignature(h, key, &t.jws); e != nil {
		return nil, e
	}
	iat, _ := numericDate("iat", c.Iat) // checked by checkTimes
	return &LogoutToken{
		Issuer:        c.Iss,
		Subject:       c.Sub,
		SessionID:     c.Sid,
		JWTID:         c.Jti,
		Audience:      c.Aud,
		IssuedAt:      iat,
		ExpiresAt:     exp,
		AcceptedUntil: exp.Add(v.cfg.Leeway),
	}, nil
}

// checkLogoutType refuses a token that is not a logout token: section 2.4
// tells them apart by the events claim and the absence of nonce (so that
// a logout token cannot pass as an ID token), section 4.1 by the header
// typ "logout+jwt" (RFC 8725 section 3.11). An ID or access token typed
// "JWT" still fails for lack of the event.
func checkLogoutType(h *jose.Header, c *claims) *Error {
	switch strings.ToLower(h.Typ) {
	case "", "jwt", "logout+jwt", "application/logout+jwt":
	default:
		return fail(ErrWrongTokenType, "header typ "+quote(h.Typ)+" is not a logout token type", nil)
	}
	if c.Typ != "" && c.Typ != "Logout" {
		return fail(ErrWrongTokenType, "typ "+quote(c.Typ)+" is not a logout token type", nil)
	}
	if !c.LogoutEvent {
		return fail(ErrWrongTokenType, "no back-channel logout event in events: not a logout token", nil)
	}
	if c.LogoutEventBad {
		return fail(ErrWrongTokenType, "the back-channel logout event is not a JSON object", nil)
	}
	if c.Nonce {
		return fail(ErrWrongTokenType, "a logout token must not carry a nonce", nil)
	}
	return nil
}
