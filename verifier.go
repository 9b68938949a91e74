// Package keygate verifies OAuth 2.0 access tokens issued by Keycloak, or
// by any OpenID Connect provider, locally: the signature against the
// provider's published keys, then iss, aud, exp, nbf, iat and the token
// type, with no call to the provider per request. A verified token becomes
// a [Principal] with Keycloak's roles and scopes. The same Verifier checks
// the logout tokens a provider posts when a session ends
// ([Verifier.VerifyLogoutToken]; package backchannel receives them).
//
// Keys come from package [github.com/keygate/keygate/jwks]; rules that
// decide what a principal may do live in package authz, and the net/http
// middleware in package httpauth.
package keygate

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/internal/jose"
	"github.com/keygate/keygate/jwks"
)

// Defaults for the zero values of [Config]. DefaultCacheBytes is in
// bytes.
const (
	DefaultLeeway       = 60 * time.Second
	DefaultMaxTokenSize = 16 << 10
	DefaultCacheSize    = 4096
	DefaultCacheBytes   = 32 << 20
)

// KeySet finds the key that checks a token's signature. [*jwks.Source]
// and [*jwks.Set] implement it. Key fails with an error matching
// [jwks.ErrUnknownKey] when kid is not in the set, and with any other
// error when keys cannot be had (the verifier answers
// [ErrKeysUnavailable]).
//
// The verifier asks for the key on every Verify, cached tokens included:
// a token verified earlier stops validating as soon as Key no longer
// returns its key, whatever the implementation. Key is therefore on the
// path of every request and should answer from memory; returning the same
// *jwks.Key for an unchanged key is fastest, though a new Key with an
// equal public key and algorithm also keeps cached tokens valid. A nil
// Key (or one without Public) with a nil error is taken as keys
// unavailable.
type KeySet interface {
	Key(ctx context.Context, kid string) (*jwks.Key, error)
}

// Validator is an extra check on a verified token's claims, such as a
// tenant check, like Spring's OAuth2TokenValidator. It runs after every
// built-in check has passed; a non-nil error rejects the token with
// [ErrInvalidClaims] and wraps the error.
//
// Its error, whatever it wraps, is classed [ErrInvalidClaims]; the
// validator's own error stays reachable with errors.As.
//
// Its verdict is cached with the token until the token expires, so it must
// depend on the claims alone: it gets no context, and must not consult
// the time, a database or a revocation list. Checks of that kind belong
// after Verify, in the handler or an authz requirement, where they run on
// every request.
type Validator func(p *Principal) error

// Config configures a [Verifier].
type Config struct {
	// Issuer is the exact iss tokens must carry, such as
	// https://keycloak.example.com/realms/myrealm. Required.
	Issuer string

	// Audiences are the aud values the service accepts: a token must carry
	// at least one of them. Required unless InsecureSkipAudienceCheck.
	// Keycloak puts a client in aud only through an audience mapper (or a
	// client scope holding one); without it, tokens often carry only
	// "account" or no aud at all. See the README.
	Audiences []string

	// InsecureSkipAudienceCheck accepts tokens whatever their aud. Any
	// token the issuer minted for any client then passes, so only use it
	// when another check (AuthorizedParties, a Validator) tells the
	// intended tokens apart. NewVerifier logs a warning when it is set.
	InsecureSkipAudienceCheck bool

	// AuthorizedParties, when set, are the only clients (azp) whose
	// tokens are accepted.
	AuthorizedParties []string

	// Keys finds the signature keys, usually a started [*jwks.Source].
	// Required.
	Keys KeySet

	// Algorithms is the allowlist of signature algorithms. Nil means every
	// supported asymmetric algorithm (RS256/384/512, PS256/384/512,
	// ES256/384/512, EdDSA), each only with a key of its type and, when
	// the key names an alg, only that alg. "none" and HMAC algorithms are
	// never accepted.
	Algorithms []string

	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// [DefaultLeeway]; a negative value means none.
	Leeway time.Duration

	// MaxTokenSize is the largest token accepted, in bytes, checked before
	// anything is decoded. Zero means [DefaultMaxTokenSize] (16 KiB).
	MaxTokenSize int

	// AllowUntypedTokens accepts tokens that carry no type at all: neither
	// a Keycloak typ claim nor an at+jwt header. Providers other than
	// Keycloak issue such access tokens; so do they ID tokens, which then
	// can only be told apart by aud.
	AllowUntypedTokens bool

	// Validators run, in order, after the built-in checks.
	Validators []Validator

	// Mapping derives [Principal.Roles] and [Principal.Authorities] from
	// the claims. The zero value is Keycloak's mapping (see
	// [ClaimMapping]).
	Mapping ClaimMapping

	// CacheSize bounds the number of tokens in the cache of verified
	// tokens, which answers a repeated token without decoding or signature
	// check until its exp or until its key leaves the key set. The cache
	// never holds more than CacheSize tokens. To make room it drops a token
	// that has expired or whose key retired if it finds one among a few it
	// samples, else a random one.
	//
	// While the cache holds fewer than 512 tokens (an eighth of CacheSize
	// if that is more; CacheSize if that is less), it admits every
	// verified token, so a token is answered from the cache from its second
	// request on. Past that share, it admits a token only when the token
	// is verified a second time within about CacheSize tokens turned away,
	// or, once full, in place of an entry that has ended: tokens seen once
	// would cost memory, and evictions, for nothing, and so they fill that
	// share and no more ([CacheStats].Rejected counts those turned away).
	// A token repeated past the share costs one more full verification
	// before it is cached. Zero means [DefaultCacheSize] (4096); a
	// negative value turns the cache off.
	CacheSize int

	// CacheBytes bounds the memory the cache of verified tokens pins, in
	// bytes, as estimated per token: its decoded payload, the principal's
	// strings, slices and maps, the claims map [Principal.Claim] builds
	// on first use (charged up front: as much as the payload again plus
	// about 80 bytes per claim), 1/8 more for allocation rounding, and
	// about 630 bytes of fixed overhead (map slot with the token's 32-byte
	// SHA-256 digest, which is all the cache keeps of the token itself;
	// entry; Principal struct); within 10% of what the Go heap holds for
	// it once Claim has been called. Until then the heap holds about a
	// third of the charge (a 1 kB token is charged 3.2 KiB and pins 1.1
	// KiB). A 1.3 kB Keycloak token costs about 4.1 KiB, one of 12 kB (8
	// kB of claims) about 24 KiB. So the default bounds hold 4096 small
	// tokens, or about 1,400 large ones. The cache evicts when either bound is
	// reached, and a token costing more than CacheBytes alone is not
	// cached. Zero means [DefaultCacheBytes] (32 MiB); a negative value
	// turns the cache off. [Verifier.CacheStats] reports the bytes held.
	CacheBytes int

	// Revocations, when set, is consulted after every other check on
	// every Verify, verified-token cache hits included: a token it reports
	// revoked fails with [ErrRevoked]. It must answer from memory (see
	// [Revocations]). Nil means no token is revoked before its exp.
	Revocations Revocations

	// Now is the clock. Nil means time.Now.
	Now func() time.Time

	// Logger receives the warning about a disabled audience check. Nil
	// means no logging. Verify itself never logs.
	Logger *slog.Logger
}

// Verifier checks access tokens ([Verifier.Verify]), and the logout tokens
// of OpenID Connect Back-Channel Logout ([Verifier.VerifyLogoutToken])
// with the same keys and checks. It is safe for concurrent use.
type Verifier struct {
	cfg   Config
	algs  map[string]bool // nil: every supported algorithm
	auth  ClaimMapping
	cache *cache
}

// ConfigError reports a [Config] field that [NewVerifier] refuses.
type ConfigError struct {
	// Field is the name of the field, such as "Audiences".
	Field string
	// Problem says what is wrong and what to do, such as "is empty; ...".
	Problem string
}

func (e *ConfigError) Error() string { return "keygate: Config." + e.Field + " " + e.Problem }

// NewVerifier checks cfg and returns a Verifier. It does no I/O. An error
// is a [*ConfigError].
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" {
		return nil, &ConfigError{"Issuer", "is empty; set it to the exact iss of accepted tokens, such as https://keycloak.example.com/realms/myrealm"}
	}
	if cfg.Keys == nil {
		return nil, &ConfigError{"Keys", "is nil; use a *jwks.Source"}
	}
	if len(cfg.Audiences) == 0 && !cfg.InsecureSkipAudienceCheck {
		return nil, &ConfigError{"Audiences", "is empty; list the aud values this service accepts, or set InsecureSkipAudienceCheck to accept any"}
	}
	if slices.Contains(cfg.Audiences, "") {
		return nil, &ConfigError{"Audiences", "holds an empty string; remove it"}
	}
	v := &Verifier{cfg: cfg, auth: cfg.Mapping.withDefaults()}
	if cfg.Algorithms != nil {
		v.algs = make(map[string]bool, len(cfg.Algorithms))
		for _, a := range cfg.Algorithms {
			if !jose.Supported(a) {
				return nil, &ConfigError{"Algorithms", fmt.Sprintf("holds %q, which is not supported; use some of %s (HMAC and none are never accepted)", a, strings.Join(jose.Algorithms(), ", "))}
			}
			v.algs[a] = true
		}
	}
	if v.cfg.Leeway == 0 {
		v.cfg.Leeway = DefaultLeeway
	} else if v.cfg.Leeway < 0 {
		v.cfg.Leeway = 0
	}
	if v.cfg.MaxTokenSize <= 0 {
		v.cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	if v.cfg.Now == nil {
		v.cfg.Now = time.Now
	}
	if cfg.CacheSize >= 0 && cfg.CacheBytes >= 0 {
		size, bytes := cfg.CacheSize, cfg.CacheBytes
		if size == 0 {
			size = DefaultCacheSize
		}
		if bytes == 0 {
			bytes = DefaultCacheBytes
		}
		v.cache = newCache(size, bytes)
	}
	if cfg.InsecureSkipAudienceCheck && cfg.Logger != nil {
		cfg.Logger.Warn("keygate: audience check is off: tokens for any client of the issuer are accepted", "issuer", cfg.Issuer)
	}
	return v, nil
}

// Verify checks raw, a compact JWT access token, and returns the principal
// it speaks for. Cheap checks run first, the signature last; every error
// is an [*Error] whose class is told by errors.Is against the Err
// variables. Only [ErrKeysUnavailable] means the token could not be
// checked; every other class means it is rejected.
//
// ctx bounds the one key refetch an unknown kid may cause.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	return v.verify(ctx, raw, nil)
}

// Explanation is what [Verifier.Explain] reports: the checks that ran, in
// order, and the verdict. It is Verify's own run, not a second
// implementation, so the two cannot disagree.
type Explanation struct {
	// Checks are the steps that ran. Each passed but the last one when Err
	// is set, which failed with Err; the steps after it did not run.
	Checks []Check
	// Principal is the verified caller, nil when Err is set.
	Principal *Principal
	// Err is what Verify would return.
	Err error

	current string
}

// Check is one step of a verification. Name is one of "size", "format",
// "type", "algorithm", "lifetime", "issuer", "audience", "key",
// "signature", "validators" and "revocation", in the order they run.
type Check struct {
	Name string
	// Detail says what was checked against what, such as `alg "RS256"`.
	// It quotes token content, cut to a fixed length: for operators'
	// eyes, not for answers to clients.
	Detail string
	// Err is nil when the check passed.
	Err error
}

// Explain verifies raw as [Verifier.Verify] does, and reports each check
// it ran. It neither reads nor fills the verified-token cache. Tools use it
// (keygate token verify); a request path should call Verify.
func (v *Verifier) Explain(ctx context.Context, raw string) Explanation {
	x := &Explanation{}
	x.Principal, x.Err = v.verify(ctx, raw, x)
	if x.Err != nil {
		x.Checks = append(x.Checks, Check{Name: x.current, Err: x.Err})
	}
	x.current = ""
	return *x
}

// at names the check about to run; ok records it as passed.
func (x *Explanation) at(name string) { x.current = name }

func (x *Explanation) ok(format string, args ...any) {
	x.Checks = append(x.Checks, Check{Name: x.current, Detail: fmt.Sprintf(format, args...)})
}

// verify is Verify, with each step reported to x when x is not nil. With
// x nil the request path pays one pointer test per step.
func (v *Verifier) verify(ctx context.Context, raw string, x *Explanation) (*Principal, error) {
	if x != nil {
		x.at("size")
	}
	if e := v.checkSize(raw); e != nil {
		return nil, e
	}
	now := v.cfg.Now()
	var ck tokenKey
	if x != nil {
		x.ok("%d bytes, limit %d", len(raw), v.cfg.MaxTokenSize)
		x.at("format")
	} else if v.cache != nil {
		ck = keyOf(raw)
		if p := v.cache.get(ctx, &ck, now, v.cfg.Keys); p != nil {
			if v.cfg.Revocations != nil && v.cfg.Revocations.Revoked(p) {
				return nil, revoked(p)
			}
			return p, nil
		}
	}

	var t token
	if e := t.decode(raw); e != nil {
		return nil, e
	}
	h, c := &t.h, &t.c
	if x != nil {
		x.ok("three base64url parts; header alg %s, kid %s; claims decoded", quote(h.Alg), quote(h.Kid))
		x.at("type")
	}
	if e := v.checkType(h, c); e != nil {
		return nil, e
	}
	if x != nil {
		x.ok("header typ %s, claim typ %s", quote(h.Typ), quote(c.Typ))
		x.at("algorithm")
	}
	if e := v.checkAlgorithm(h); e != nil {
		return nil, e
	}
	if x != nil {
		x.ok("%s is accepted", h.Alg)
		x.at("lifetime")
	}
	exp, e := v.checkTimes(c, now)
	if e != nil {
		return nil, e
	}
	if x != nil {
		x.ok("expires %s, leeway %v", exp.UTC().Format(time.RFC3339), v.cfg.Leeway)
		x.at("issuer")
	}
	if e := v.checkIssuer(c); e != nil {
		return nil, e
	}
	if x != nil {
		x.ok("%s", quote(c.Iss))
		x.at("audience")
	}
	if e := v.checkAudience(c); e != nil {
		return nil, e
	}
	if x != nil {
		if v.cfg.InsecureSkipAudienceCheck {
			x.ok("not checked (InsecureSkipAudienceCheck)")
		} else {
			x.ok("aud %s holds one of %s", quoteList(c.Aud), quoteList(v.cfg.Audiences))
		}
		x.at("key")
	}
	key, e := v.key(ctx, h)
	if e != nil {
		return nil, e
	}
	if x != nil {
		x.ok("kid %s: a %s key that fits %s", quote(h.Kid), key.Type, h.Alg)
		x.at("signature")
	}
	if e := checkSignature(h, key, &t.jws); e != nil {
		return nil, e
	}
	if x != nil {
		x.ok("verifies under the key")
	}

	p := c.principal(t.payload, v.auth)
	if x != nil && len(v.cfg.Validators) > 0 {
		x.at("validators")
	}
	for _, check := range v.cfg.Validators {
		if err := check(p); err != nil {
			// Whatever the validator returned, the class is invalid
			// claims: a validator cannot make a refused token look like
			// an outage (503), nor leave the classes.
			return nil, fail(ErrInvalidClaims, "", classless{err})
		}
	}
	if x != nil && len(v.cfg.Validators) > 0 {
		x.ok("%d passed", len(v.cfg.Validators))
	}
	if v.cfg.Revocations != nil {
		if x != nil {
			x.at("revocation")
		}
		if v.cfg.Revocations.Revoked(p) {
			return nil, revoked(p)
		}
		if x != nil {
			x.ok("not revoked")
		}
	}
	if x != nil {
		return p, nil
	}
	if v.cache != nil {
		kid := h.Kid
		if key.ID == kid {
			// The key's copy: h.Kid points into the decoded header, which
			// the entry would otherwise pin.
			kid = key.ID
		}
		v.cache.put(&ck, p, kid, key, exp, now, entryCost(p, c.members)+int64(len(kid)))
	}
	return p, nil
}

// The steps below are shared by Verify and VerifyLogoutToken: each check
// has one implementation, whatever the kind of token.

// checkSize refuses an empty token or one over [Config.MaxTokenSize],
// before anything is decoded.
func (v *Verifier) checkSize(raw string) *Error {
	if raw == "" {
		return fail(ErrMalformed, "empty token", nil)
	}
	if len(raw) > v.cfg.MaxTokenSize {
		return fail(ErrMalformed, fmt.Sprintf("token is %d bytes, more than the limit of %d", len(raw), v.cfg.MaxTokenSize), nil)
	}
	return nil
}

// token is a compact JWS taken apart: its decoded parts, its header and
// its claims. Nothing in it is verified until the signature is.
type token struct {
	jws     jose.Compact
	h       jose.Header
	c       claims
	payload string
}

// decode splits raw and decodes its header and claims. A header with crit
// is refused: keygate understands no extension.
func (t *token) decode(raw string) *Error {
	var err error
	if t.jws, err = jose.Split(raw); err != nil {
		return fail(ErrMalformed, "", err)
	}
	if t.h, err = jose.ParseHeader(t.jws.Header); err != nil {
		return fail(ErrMalformed, "bad header", err)
	}
	if t.h.Crit {
		return fail(ErrMalformed, "header has critical extensions (crit) keygate does not understand", nil)
	}
	t.payload = string(t.jws.Payload)
	if t.c, err = decodeClaims(t.payload); err != nil {
		return fail(ErrMalformed, "bad claims", err)
	}
	return nil
}

// checkAlgorithm refuses an alg keygate does not support (none and HMAC
// among them) or that [Config.Algorithms] leaves out.
func (v *Verifier) checkAlgorithm(h *jose.Header) *Error {
	if !jose.Supported(h.Alg) || (v.algs != nil && !v.algs[h.Alg]) {
		return fail(ErrUnsupportedAlgorithm, "alg "+quote(h.Alg)+" is not accepted", nil)
	}
	return nil
}

// key returns the key for h's kid from [Config.Keys], refusing one whose
// alg or type does not fit h's alg.
func (v *Verifier) key(ctx context.Context, h *jose.Header) (*jwks.Key, *Error) {
	key, err := v.cfg.Keys.Key(ctx, h.Kid)
	if err != nil {
		return nil, keyError(err)
	}
	if key == nil || key.Public == nil {
		// A KeySet that breaks its contract cannot vouch for the token.
		return nil, fail(ErrKeysUnavailable, "the key set returned no key for kid "+quote(h.Kid), nil)
	}
	if key.Algorithm != "" && key.Algorithm != h.Alg {
		return nil, fail(ErrUnsupportedAlgorithm, "token alg "+quote(h.Alg)+" differs from its key's alg "+quote(key.Algorithm), nil)
	}
	if !jose.KeyFits(h.Alg, key.Public) {
		return nil, fail(ErrUnsupportedAlgorithm, "token alg "+quote(h.Alg)+" does not fit its "+key.Type+" key", nil)
	}
	return key, nil
}

// checkSignature verifies jws's signature under key.
func checkSignature(h *jose.Header, key *jwks.Key, jws *jose.Compact) *Error {
	if err := jose.VerifyPrepared(h.Alg, key, key.Public, jws.SigningInput, jws.Signature); err != nil {
		return fail(ErrBadSignature, "", err)
	}
	return nil
}

// CacheStats reports the verified-token cache's counters; all zero when
// the cache is off.
func (v *Verifier) CacheStats() CacheStats {
	if v.cache == nil {
		return CacheStats{}
	}
	return v.cache.stats()
}

// checkType accepts Keycloak access tokens (typ claim "Bearer") and RFC
// 9068 access tokens (header typ "at+jwt"), and refuses every other token
// Keycloak issues: ID, refresh, offline and logout tokens. A logout token
// is refused by its events claim too, so that one without any typ cannot
// pass with [Config.AllowUntypedTokens].
func (v *Verifier) checkType(h *jose.Header, c *claims) *Error {
	if c.LogoutEvent {
		return fail(ErrWrongTokenType, "a logout token is not an access token", nil)
	}
	var buf [32]byte
	switch string(lowerTyp(&buf, h.Typ)) {
	case "", "jwt":
	case "at+jwt", "application/at+jwt":
		if c.Typ == "" || c.Typ == "Bearer" {
			return v.checkBinding(c)
		}
	default:
		return fail(ErrWrongTokenType, "header typ "+quote(h.Typ)+" is not an access token type", nil)
	}
	switch c.Typ {
	case "Bearer":
		return v.checkBinding(c)
	case "":
		if v.cfg.AllowUntypedTokens {
			return v.checkBinding(c)
		}
		return fail(ErrWrongTokenType, "token has no type: want typ \"Bearer\" or header typ \"at+jwt\"", nil)
	case "ID":
		return fail(ErrWrongTokenType, "an ID token is not an access token", nil)
	case "Refresh", "Offline":
		return fail(ErrWrongTokenType, "a refresh token is not an access token", nil)
	case "Logout":
		return fail(ErrWrongTokenType, "a logout token is not an access token", nil)
	}
	return fail(ErrWrongTokenType, "typ "+quote(c.Typ)+" is not an access token type", nil)
}

// lowerTyp returns typ in lower case, as strings.ToLower does, in buf
// when typ is ASCII and fits: the typ of every token keygate sees in
// practice ("JWT", "at+jwt"), which it then compares without allocating.
func lowerTyp(buf *[32]byte, typ string) []byte {
	if len(typ) > len(buf) {
		return []byte(strings.ToLower(typ))
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if c >= utf8.RuneSelf {
			return []byte(strings.ToLower(typ))
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(typ)]
}

// checkBinding refuses sender-constrained tokens (RFC 9449 DPoP, RFC 8705
// mTLS): presented as plain bearer tokens, their holder proved nothing.
func (v *Verifier) checkBinding(c *claims) *Error {
	if c.CnfJkt {
		return fail(ErrWrongTokenType, "a DPoP-bound token was presented as a bearer token", nil)
	}
	if c.CnfX5t {
		return fail(ErrWrongTokenType, "a certificate-bound token was presented as a bearer token", nil)
	}
	return nil
}

func (v *Verifier) checkTimes(c *claims, now time.Time) (time.Time, *Error) {
	if !c.Exp.set {
		return time.Time{}, fail(ErrInvalidClaims, "token has no exp", nil)
	}
	exp, err := numericDate("exp", c.Exp)
	if err != nil {
		return time.Time{}, fail(ErrMalformed, "", err)
	}
	nbf, err := numericDate("nbf", c.Nbf)
	if err != nil {
		return time.Time{}, fail(ErrMalformed, "", err)
	}
	iat, err := numericDate("iat", c.Iat)
	if err != nil {
		return time.Time{}, fail(ErrMalformed, "", err)
	}
	leeway := v.cfg.Leeway
	if !now.Before(exp.Add(leeway)) {
		return time.Time{}, fail(ErrExpired, "expired at "+exp.UTC().Format(time.RFC3339), nil)
	}
	if !nbf.IsZero() && now.Add(leeway).Before(nbf) {
		return time.Time{}, fail(ErrNotYetValid, "not before "+nbf.UTC().Format(time.RFC3339), nil)
	}
	if !iat.IsZero() && now.Add(leeway).Before(iat) {
		return time.Time{}, fail(ErrNotYetValid, "issued in the future, at "+iat.UTC().Format(time.RFC3339), nil)
	}
	return exp, nil
}

func (v *Verifier) checkIssuer(c *claims) *Error {
	if c.Iss != v.cfg.Issuer {
		return fail(ErrWrongIssuer, "iss "+quote(c.Iss)+", want "+quote(v.cfg.Issuer), nil)
	}
	return nil
}

func (v *Verifier) checkAudience(c *claims) *Error {
	if !v.cfg.InsecureSkipAudienceCheck && !slices.ContainsFunc(c.Aud, func(a string) bool {
		return slices.Contains(v.cfg.Audiences, a)
	}) {
		return fail(ErrWrongAudience, "aud "+quoteList(c.Aud)+" holds none of "+quoteList(v.cfg.Audiences), nil)
	}
	if len(v.cfg.AuthorizedParties) > 0 {
		azp := c.Azp
		if azp == "" {
			azp = c.ClientID
		}
		if !slices.Contains(v.cfg.AuthorizedParties, azp) {
			return fail(ErrWrongAudience, "azp "+quote(azp)+" is not an authorized party", nil)
		}
	}
	return nil
}
