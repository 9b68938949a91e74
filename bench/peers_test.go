package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	oidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	golangjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	jwxjwt "github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// pool is how many distinct tokens the "unique" benchmarks cycle through.
const pool = 512

// audience is the resource server's client ID, which the tokens carry in
// aud through an audience mapper.
const audience = "orders-api"

// leeway is the clock skew allowed on exp, nbf and iat: keygate's default,
// set on every peer that has such a setting (go-oidc has none for exp).
const leeway = 60 * time.Second

var (
	algs      = []string{"RS256", "ES256"}
	libraries = []string{"floor", "keygate", "golang-jwt", "go-jose", "go-oidc", "jwx"}
)

// keycloakClaims are the Keycloak-specific members a resource server
// reads for authorization. Registered claims (iss, sub, aud, exp, ...) come
// from each library's own type.
type keycloakClaims struct {
	Typ               string            `json:"typ"`
	Azp               string            `json:"azp"`
	ClientID          string            `json:"client_id"`
	Scope             string            `json:"scope"`
	PreferredUsername string            `json:"preferred_username"`
	RealmAccess       access            `json:"realm_access"`
	ResourceAccess    map[string]access `json:"resource_access"`
}

type access struct {
	Roles []string `json:"roles"`
}

// env is one Keycloak-like realm signing with one algorithm, and the
// tokens it minted.
type env struct {
	alg    string
	issuer string
	src    *jwks.Source
	keys   map[string]crypto.PublicKey // by kid, from the published JWKS
	pub    crypto.PublicKey            // the active signing key
	toks   []string                    // pool distinct valid tokens
	bad    map[string]string           // rejection case -> token
}

var (
	envMu   sync.Mutex
	envs    = map[string]*env{}
	envErrs = map[string]error{}
)

// getEnv returns the realm for alg, set up once per test binary and shared
// by the test and the benchmark, as RSA key generation and minting 512
// tokens are slow. The tokens live 24 hours so that a long run never
// measures expired ones.
func getEnv(tb testing.TB, alg string) *env {
	tb.Helper()
	envMu.Lock()
	defer envMu.Unlock()
	if e, ok := envs[alg]; ok {
		return e
	}
	if err, ok := envErrs[alg]; ok {
		tb.Fatal(err)
	}
	e, err := newEnv(alg)
	if err != nil {
		envErrs[alg] = err
		tb.Fatal(err)
	}
	envs[alg] = e
	return e
}

func newEnv(alg string) (*env, error) {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:               "bench",
		Algorithm:           alg,
		AccessTokenLifespan: 24 * time.Hour,
		Clients: []keycloaktest.Client{{
			ID: "worker", Secret: "s", ServiceAccount: true, Audiences: []string{audience},
			ServiceAccountRealmRoles:  []string{"user", "offline_access"},
			ServiceAccountClientRoles: map[string][]string{audience: {"reader"}},
		}},
	})
	if err != nil {
		return nil, err
	}
	// The server stays up for the whole test binary: keygate's key
	// source may refetch from it.
	src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	if err != nil {
		return nil, err
	}
	if err := src.Refresh(context.Background()); err != nil {
		return nil, err
	}
	e := &env{
		alg:    alg,
		issuer: idp.Issuer(),
		src:    src,
		keys:   map[string]crypto.PublicKey{},
		pub:    idp.PublicKey(idp.ActiveKeyID(alg)),
		bad:    map[string]string{},
	}
	for _, k := range src.Keys().Keys() {
		e.keys[k.ID] = k.Public
	}
	if len(e.keys) == 0 {
		return nil, errors.New("published JWKS holds no usable key")
	}
	for range pool {
		tok, err := idp.MintToken(keycloaktest.Token{})
		if err != nil {
			return nil, err
		}
		e.toks = append(e.toks, tok)
	}
	now := time.Now()
	mint := func(name string, claims map[string]any) error {
		tok, err := idp.MintToken(keycloaktest.Token{Claims: claims})
		e.bad[name] = tok
		return err
	}
	if err := errors.Join(
		mint("expired", map[string]any{"iat": now.Add(-20 * time.Minute), "exp": now.Add(-10 * time.Minute)}),
		mint("wrong-audience", map[string]any{"aud": "billing-api"}),
		mint("wrong-issuer", map[string]any{"iss": "https://evil.example.com/realms/bench"}),
	); err != nil {
		return nil, err
	}
	// A valid signature over other claims: token 1's header and payload
	// with token 0's signature.
	e.bad["bad-signature"] = e.toks[1][:strings.LastIndexByte(e.toks[1], '.')] +
		e.toks[0][strings.LastIndexByte(e.toks[0], '.'):]
	return e, nil
}

// verifyFunc checks one token completely and reports why it was rejected.
type verifyFunc func(tok string) error

// newVerifier returns library's verifier for e. cache only matters to
// keygate, the one library with a cache of verified tokens.
func newVerifier(tb testing.TB, e *env, library string, cache bool) verifyFunc {
	tb.Helper()
	var (
		f   verifyFunc
		err error
	)
	switch library {
	case "floor":
		f = floorVerifier(e)
	case "keygate":
		f, err = keygateVerifier(e, cache)
	case "golang-jwt":
		f = golangJWTVerifier(e)
	case "go-jose":
		f = goJoseVerifier(e)
	case "go-oidc":
		f = goOIDCVerifier(e)
	case "jwx":
		f, err = jwxVerifier(e)
	default:
		err = fmt.Errorf("unknown library %q", library)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// floorVerifier is the least work any verifier must do: decode the
// signature, hash the signing input and check the signature with the
// standard library. It reads no header and checks no claim, so it is a
// floor, not a peer.
func floorVerifier(e *env) verifyFunc {
	return func(tok string) error {
		if !stdlibFloor(tok, e.pub) {
			return errors.New("floor: signature does not verify")
		}
		return nil
	}
}

// stdlibFloor is the floor of the library's own benchmarks (bench_test.go
// in the main module), copied because test files cannot be imported.
func stdlibFloor(tok string, pub crypto.PublicKey) bool {
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		return false
	}
	digest := sha256.Sum256([]byte(tok[:dot]))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, digest[:], r, s)
	}
	return false
}

// keygateVerifier verifies signature, typ, exp/nbf/iat, iss and aud, and
// decodes the claims into a Principal (roles, scopes, authorities).
func keygateVerifier(e *env, cache bool) (verifyFunc, error) {
	cfg := keygate.Config{
		Issuer:     e.issuer,
		Audiences:  []string{audience},
		Keys:       e.src,
		Algorithms: []string{e.alg},
		CacheSize:  -1,
	}
	if cache {
		cfg.CacheSize = 0 // the default cache
	}
	v, err := keygate.NewVerifier(cfg)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	return func(tok string) error {
		_, err := v.Verify(ctx, tok)
		return err
	}, nil
}

// golangJWTClaims decodes the registered claims and the Keycloak ones in
// one pass.
type golangJWTClaims struct {
	golangjwt.RegisteredClaims
	keycloakClaims
}

// golangJWTVerifier: the key is picked by the header's kid in the Keyfunc;
// the parser checks alg against WithValidMethods, requires exp and checks
// exp/nbf (iat only with WithIssuedAt, left off as by default), iss and aud.
func golangJWTVerifier(e *env) verifyFunc {
	p := golangjwt.NewParser(
		golangjwt.WithValidMethods([]string{e.alg}),
		golangjwt.WithIssuer(e.issuer),
		golangjwt.WithAudience(audience),
		golangjwt.WithExpirationRequired(),
		golangjwt.WithLeeway(leeway),
	)
	keyfunc := func(t *golangjwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := e.keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	return func(tok string) error {
		var c golangJWTClaims
		_, err := p.ParseWithClaims(tok, &c, keyfunc)
		return err
	}
}

// goJoseClaims decodes the registered claims and the Keycloak ones in one
// pass.
type goJoseClaims struct {
	josejwt.Claims
	keycloakClaims
}

// goJoseVerifier: ParseSigned checks alg against the allowlist, Claims
// checks the signature with the key for the header's kid and decodes, and
// Validate checks iss, aud, exp, nbf and iat. Validate skips an absent exp,
// so its presence is checked here.
func goJoseVerifier(e *env) verifyFunc {
	algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(e.alg)}
	want := josejwt.Expected{Issuer: e.issuer, AnyAudience: josejwt.Audience{audience}}
	return func(tok string) error {
		t, err := josejwt.ParseSigned(tok, algs)
		if err != nil {
			return err
		}
		key, ok := e.keys[t.Headers[0].KeyID]
		if !ok {
			return fmt.Errorf("unknown kid %q", t.Headers[0].KeyID)
		}
		var c goJoseClaims
		if err := t.Claims(key, &c); err != nil {
			return err
		}
		if c.Expiry == nil {
			return errors.New("token has no exp")
		}
		return c.ValidateWithLeeway(want.WithTime(time.Now()), leeway)
	}
}

// goOIDCVerifier: Verify checks alg against SupportedSigningAlgs, the
// signature (StaticKeySet tries its keys in turn, ignoring kid), iss, aud
// (ClientID), and exp (with no leeway; an absent exp fails) and nbf. It
// decodes the claims into its own struct; Claims decodes them again into
// ours, as a resource server reading roles must.
func goOIDCVerifier(e *env) verifyFunc {
	ks := &oidc.StaticKeySet{}
	for _, k := range e.keys {
		ks.PublicKeys = append(ks.PublicKeys, k)
	}
	v := oidc.NewVerifier(e.issuer, ks, &oidc.Config{ClientID: audience, SupportedSigningAlgs: []string{e.alg}})
	ctx := context.Background()
	return func(tok string) error {
		idt, err := v.Verify(ctx, tok)
		if err != nil {
			return err
		}
		var c keycloakClaims
		return idt.Claims(&c)
	}
}

// jwxVerifier: the key set holds each key with its kid and alg, so the key
// is picked by kid and alg must match it; Parse then validates exp, nbf,
// iat, iss and aud (exp required). Parse decodes every claim into its
// token: registered ones into fields, the others (realm_access, ...) into
// a map[string]any.
func jwxVerifier(e *env) (verifyFunc, error) {
	alg, ok := jwa.LookupSignatureAlgorithm(e.alg)
	if !ok {
		return nil, fmt.Errorf("jwx: unknown algorithm %s", e.alg)
	}
	set := jwk.NewSet()
	for kid, pub := range e.keys {
		k, err := jwk.Import(pub)
		if err != nil {
			return nil, err
		}
		if err := errors.Join(k.Set(jwk.KeyIDKey, kid), k.Set(jwk.AlgorithmKey, alg)); err != nil {
			return nil, err
		}
		if err := set.AddKey(k); err != nil {
			return nil, err
		}
	}
	opts := []jwxjwt.ParseOption{
		jwxjwt.WithKeySet(set),
		jwxjwt.WithValidate(true),
		jwxjwt.WithIssuer(e.issuer),
		jwxjwt.WithAudience(audience),
		jwxjwt.WithRequiredClaim(jwxjwt.ExpirationKey),
		jwxjwt.WithAcceptableSkew(leeway),
	}
	return func(tok string) error {
		_, err := jwxjwt.Parse([]byte(tok), opts...)
		return err
	}, nil
}

// TestPeersAgree proves each configuration does real checks: every
// library accepts a valid token and rejects an expired one, one for
// another audience, one from another issuer and one whose signature is
// over other claims. The floor checks only the signature.
func TestPeersAgree(t *testing.T) {
	for _, alg := range algs {
		e := getEnv(t, alg)
		for _, lib := range libraries {
			for _, cached := range []bool{false, true} {
				if cached && lib != "keygate" {
					continue
				}
				name := alg + "/" + lib
				if cached {
					name += "/cached"
				}
				t.Run(name, func(t *testing.T) {
					verify := newVerifier(t, e, lib, cached)
					for i := range 2 { // twice, so a cache answers the second time
						if err := verify(e.toks[0]); err != nil {
							t.Fatalf("valid token rejected (try %d): %v", i+1, err)
						}
					}
					for _, c := range []string{"expired", "wrong-audience", "wrong-issuer", "bad-signature"} {
						if lib == "floor" && c != "bad-signature" {
							continue
						}
						err := verify(e.bad[c])
						if err == nil {
							t.Errorf("%s token accepted", c)
							continue
						}
						t.Logf("%s: %v", c, err)
					}
				})
			}
		}
	}
}

// BenchmarkPeers compares keygate with other Go JWT libraries, each doing
// a resource server's full job on a Keycloak access token: signature with
// the key for the token's kid, exp, iss and aud. "unique" cycles through
// 512 distinct tokens (keygate's cache off), "repeated" verifies the same
// token every time (keygate's default cache on; the peers have none).
func BenchmarkPeers(b *testing.B) {
	for _, alg := range algs {
		e := getEnv(b, alg)
		for _, lib := range libraries {
			b.Run(alg+"/"+lib+"/unique", func(b *testing.B) {
				verify := newVerifier(b, e, lib, false)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := verify(e.toks[i%pool]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run(alg+"/"+lib+"/repeated", func(b *testing.B) {
				verify := newVerifier(b, e, lib, true)
				tok := e.toks[0]
				if err := verify(tok); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := verify(tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
