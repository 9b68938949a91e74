package keygate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/internal/jose"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// realm is the test realm most tests use: an API client, a service
// client with roles, a CLI with password grant, per-algorithm clients.
func realm() keycloaktest.Config {
	cfg := keycloaktest.Config{
		Realm: "shop",
		Clients: []keycloaktest.Client{
			{ID: "orders-api"},
			{ID: "worker", Secret: "worker-secret", ServiceAccount: true, Audiences: []string{"orders-api"},
				ServiceAccountRealmRoles: []string{"user"}, ServiceAccountClientRoles: map[string][]string{"orders-api": {"reader"}}},
			{ID: "cli", DirectAccessGrants: true, Audiences: []string{"orders-api"}},
			{ID: "stranger", Secret: "s", ServiceAccount: true},
		},
		Users: []keycloaktest.User{{
			Username: "alice", Password: "alice", Email: "alice@example.com", EmailVerified: true,
			FirstName: "Alice", LastName: "Liddell", RealmRoles: []string{"user"},
			ClientRoles: map[string][]string{"orders-api": {"reader", "writer"}}, Groups: []string{"/staff"},
		}},
	}
	for _, alg := range []string{"RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		cfg.Clients = append(cfg.Clients, keycloaktest.Client{ID: "svc-" + alg, Secret: "s", ServiceAccount: true,
			Audiences: []string{"orders-api"}, Algorithm: alg})
	}
	return cfg
}

// countingKeys counts key lookups, to tell cache hits from full checks.
type countingKeys struct {
	keygate.KeySet
	n atomic.Int32
}

func (c *countingKeys) Key(ctx context.Context, kid string) (*jwks.Key, error) {
	c.n.Add(1)
	return c.KeySet.Key(ctx, kid)
}

type fixture struct {
	idp  *keycloaktest.Server
	src  *jwks.Source
	keys *countingKeys
	v    *keygate.Verifier
	now  atomic.Int64
}

func (f *fixture) Now() time.Time          { return time.Unix(0, f.now.Load()) }
func (f *fixture) advance(d time.Duration) { f.now.Add(int64(d)) }

func newFixture(t *testing.T, edit func(*keygate.Config)) *fixture {
	t.Helper()
	f := &fixture{}
	f.now.Store(time.Now().UnixNano())
	cfg := realm()
	cfg.Now = f.Now
	f.idp = keycloaktest.New(t, cfg)
	src, err := jwks.NewSource(jwks.Config{Issuer: f.idp.Issuer(), Now: f.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.src = src
	f.keys = &countingKeys{KeySet: src}
	vc := keygate.Config{Issuer: f.idp.Issuer(), Audiences: []string{"orders-api"}, Keys: f.keys, Now: f.Now}
	if edit != nil {
		edit(&vc)
	}
	if f.v, err = keygate.NewVerifier(vc); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) mint(t *testing.T, tok keycloaktest.Token) string {
	t.Helper()
	if tok.Client == "" {
		tok.Client = "worker"
	}
	return f.idp.MustMint(t, tok)
}

// grant calls the test issuer's token endpoint.
func grant(t *testing.T, idp *keycloaktest.Server, form url.Values) map[string]any {
	t.Helper()
	resp, err := idp.Client().PostForm(idp.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token endpoint: %d %v %v", resp.StatusCode, out, err)
	}
	return out
}

func TestVerify(t *testing.T) {
	f := newFixture(t, nil)
	rsKid := f.idp.ActiveKeyID("RS256")
	esKid := f.idp.ActiveKeyID("ES256")
	now := f.Now()

	jkuHits := atomic.Int32{}
	jku := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { jkuHits.Add(1) }))
	defer jku.Close()

	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		payload, _ := jsonB64Decode(parts[1])
		payload["preferred_username"] = "mallory"
		parts[1] = jsonB64Encode(payload)
		return strings.Join(parts, ".")
	}
	swapSignature := func(tok, other string) string {
		return tok[:strings.LastIndexByte(tok, '.')] + other[strings.LastIndexByte(other, '.'):]
	}
	valid := f.mint(t, keycloaktest.Token{})
	otherValid := f.mint(t, keycloaktest.Token{Claims: map[string]any{"jti": "other"}})

	tests := []struct {
		name string
		tok  string
		want error // nil means valid
	}{
		{"valid RS256", valid, nil},
		{"exp just past, inside leeway", f.mint(t, keycloaktest.Token{Claims: map[string]any{"exp": now.Add(-30 * time.Second)}}), nil},
		{"aud as a string", f.mint(t, keycloaktest.Token{Claims: map[string]any{"aud": "orders-api"}}), nil},
		{"aud list holding ours", f.mint(t, keycloaktest.Token{Claims: map[string]any{"aud": []string{"account", "orders-api"}}}), nil},
		{"RFC 9068 at+jwt", f.mint(t, keycloaktest.Token{Header: map[string]any{"typ": "at+jwt"}, Claims: map[string]any{"typ": nil}}), nil},
		{"RFC 9068 application/at+jwt", f.mint(t, keycloaktest.Token{Header: map[string]any{"typ": "application/at+jwt"}}), nil},
		{"jku is never fetched", f.mint(t, keycloaktest.Token{Header: map[string]any{"jku": jku.URL, "x5u": jku.URL}}), nil},
		{"fractional exp", f.mint(t, keycloaktest.Token{Claims: map[string]any{"exp": float64(now.Unix()) + 100.5}}), nil},

		{"empty", "", keygate.ErrMalformed},
		{"garbage", "not-a-token", keygate.ErrMalformed},
		{"two parts", "eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ", keygate.ErrMalformed},
		{"padding", valid + "=", keygate.ErrMalformed},
		{"header not JSON", "bm90LWpzb24." + strings.SplitN(valid, ".", 2)[1], keygate.ErrMalformed},
		{"oversized", valid + strings.Repeat("A", 17<<10), keygate.ErrMalformed},
		{"crit header", f.mint(t, keycloaktest.Token{Header: map[string]any{"crit": []string{"exp"}, "exp": 1}}), keygate.ErrMalformed},
		{"exp as string", f.mint(t, keycloaktest.Token{Claims: map[string]any{"exp": "tomorrow"}}), keygate.ErrMalformed},
		{"sub as number", f.mint(t, keycloaktest.Token{Claims: map[string]any{"sub": 42}}), keygate.ErrMalformed},
		{"aud as number", f.mint(t, keycloaktest.Token{Claims: map[string]any{"aud": 7}}), keygate.ErrMalformed},
		{"negative exp", f.mint(t, keycloaktest.Token{Claims: map[string]any{"exp": -5}}), keygate.ErrMalformed},

		{"alg none", f.mint(t, keycloaktest.Token{Algorithm: keycloaktest.AlgNone}), keygate.ErrUnsupportedAlgorithm},
		{"HS256 keyed with the RSA public key", f.mint(t, keycloaktest.Token{Algorithm: "HS256", KeyID: rsKid}), keygate.ErrUnsupportedAlgorithm},
		{"PS256 with a key published for RS256", f.mint(t, keycloaktest.Token{Algorithm: "PS256", KeyID: rsKid}), keygate.ErrUnsupportedAlgorithm},
		{"RS256 header naming an EC key", f.mint(t, keycloaktest.Token{Header: map[string]any{"kid": esKid}}), keygate.ErrUnsupportedAlgorithm},

		{"unknown kid", f.mint(t, keycloaktest.Token{Header: map[string]any{"kid": "no-such-key"}}), keygate.ErrUnknownKey},
		{"tampered payload", tamper(valid), keygate.ErrBadSignature},
		{"signature of another token", swapSignature(valid, otherValid), keygate.ErrBadSignature},

		{"expired", f.mint(t, keycloaktest.Token{Claims: map[string]any{"exp": now.Add(-2 * time.Minute)}}), keygate.ErrExpired},
		{"nbf in the future", f.mint(t, keycloaktest.Token{Claims: map[string]any{"nbf": now.Add(5 * time.Minute)}}), keygate.ErrNotYetValid},
		{"iat in the future", f.mint(t, keycloaktest.Token{Claims: map[string]any{"iat": now.Add(5 * time.Minute)}}), keygate.ErrNotYetValid},
		{"no exp", f.mint(t, keycloaktest.Token{Claims: map[string]any{"exp": nil}}), keygate.ErrInvalidClaims},

		{"other issuer", f.mint(t, keycloaktest.Token{Claims: map[string]any{"iss": "https://evil.example.com/realms/shop"}}), keygate.ErrWrongIssuer},
		{"issuer with trailing slash", f.mint(t, keycloaktest.Token{Claims: map[string]any{"iss": f.idp.Issuer() + "/"}}), keygate.ErrWrongIssuer},
		{"client without audience mapper", f.mint(t, keycloaktest.Token{Client: "stranger"}), keygate.ErrWrongAudience},
		{"no aud", f.mint(t, keycloaktest.Token{Claims: map[string]any{"aud": nil}}), keygate.ErrWrongAudience},
		{"empty aud list", f.mint(t, keycloaktest.Token{Claims: map[string]any{"aud": []string{}}}), keygate.ErrWrongAudience},

		{"ID token", f.mint(t, keycloaktest.Token{Claims: map[string]any{"typ": "ID"}}), keygate.ErrWrongTokenType},
		{"refresh token", f.mint(t, keycloaktest.Token{Claims: map[string]any{"typ": "Refresh"}}), keygate.ErrWrongTokenType},
		{"offline token", f.mint(t, keycloaktest.Token{Claims: map[string]any{"typ": "Offline"}}), keygate.ErrWrongTokenType},
		{"logout token", f.mint(t, keycloaktest.Token{Claims: map[string]any{"typ": "Logout"}}), keygate.ErrWrongTokenType},
		{"no type", f.mint(t, keycloaktest.Token{Claims: map[string]any{"typ": nil}}), keygate.ErrWrongTokenType},
		{"at+jwt header with ID typ", f.mint(t, keycloaktest.Token{Header: map[string]any{"typ": "at+jwt"}, Claims: map[string]any{"typ": "ID"}}), keygate.ErrWrongTokenType},
		{"DPoP proof as token", f.mint(t, keycloaktest.Token{Header: map[string]any{"typ": "dpop+jwt"}}), keygate.ErrWrongTokenType},
		{"DPoP-bound token", f.mint(t, keycloaktest.Token{Claims: map[string]any{"cnf": map[string]string{"jkt": "abc"}}}), keygate.ErrWrongTokenType},
		{"mTLS-bound token", f.mint(t, keycloaktest.Token{Claims: map[string]any{"cnf": map[string]string{"x5t#S256": "abc"}}}), keygate.ErrWrongTokenType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.v.Verify(context.Background(), tt.tok)
			if tt.want == nil {
				if err != nil || p == nil {
					t.Fatalf("Verify() = %v, %v; want a principal", p, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify() error = %v; want %v", err, tt.want)
			}
			if p != nil {
				t.Errorf("Verify() returned a principal with error %v", err)
			}
			var ke *keygate.Error
			if !errors.As(err, &ke) || ke.Description() == "" || strings.Contains(ke.Description(), ".") {
				t.Errorf("error %v is not a *keygate.Error with a token-free description", err)
			}
		})
	}
	if jkuHits.Load() != 0 {
		t.Errorf("jku/x5u URL fetched %d times; want never", jkuHits.Load())
	}
}

func TestVerifyEveryAlgorithm(t *testing.T) {
	f := newFixture(t, nil)
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			client := "svc-" + alg
			if alg == "RS256" {
				client = "worker"
			}
			tok := grant(t, f.idp, url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {secretOf(client)}})["access_token"].(string)
			if h, _ := jsonB64Decode(strings.Split(tok, ".")[0]); h["alg"] != alg {
				t.Fatalf("token alg = %v; want %s", h["alg"], alg)
			}
			p, err := f.v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify(%s token) = %v", alg, err)
			}
			if p.Client != client || !p.ServiceAccount() {
				t.Errorf("principal client %q service account %v; want %q, true", p.Client, p.ServiceAccount(), client)
			}
		})
	}
}

func secretOf(client string) string {
	if client == "worker" {
		return "worker-secret"
	}
	return "s"
}

func TestAlgorithmAllowlist(t *testing.T) {
	f := newFixture(t, func(c *keygate.Config) { c.Algorithms = []string{"ES256"} })
	if _, err := f.v.Verify(context.Background(), f.mint(t, keycloaktest.Token{})); !errors.Is(err, keygate.ErrUnsupportedAlgorithm) {
		t.Errorf("RS256 token with allowlist [ES256]: %v; want ErrUnsupportedAlgorithm", err)
	}
	if _, err := f.v.Verify(context.Background(), f.mint(t, keycloaktest.Token{Client: "svc-ES256"})); err != nil {
		t.Errorf("ES256 token with allowlist [ES256]: %v", err)
	}
}

func TestPasswordGrantTokens(t *testing.T) {
	f := newFixture(t, func(c *keygate.Config) {
		c.Mapping = keygate.ClaimMapping{RoleClients: []string{"orders-api"}}
	})
	resp := grant(t, f.idp, url.Values{"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {"alice"}, "scope": {"openid"}})
	ctx := context.Background()

	p, err := f.v.Verify(ctx, resp["access_token"].(string))
	if err != nil {
		t.Fatalf("Verify(access token) = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Subject", p.Subject, f.idp.Subject("alice")},
		{"Username", p.Username, "alice"},
		{"Email", p.Email, "alice@example.com"},
		{"Name", p.Name, "Alice Liddell"},
		{"GivenName", p.GivenName, "Alice"},
		{"Client", p.Client, "cli"},
		{"SessionID set", p.SessionID != "", true},
		{"Issuer", p.Issuer, f.idp.Issuer()},
		{"RealmRoles has user", slices.Contains(p.RealmRoles, "user"), true},
		{"ClientRoles", p.ClientRoles["orders-api"], []string{"reader", "writer"}},
		{"Scopes has profile", slices.Contains(p.Scopes, "profile"), true},
		{"Groups", p.Groups, []string{"/staff"}},
		{"ServiceAccount", p.ServiceAccount(), false},
		{"HasRole(user)", p.HasRole("user"), true},
		{"HasRole(writer) via RoleClients", p.HasRole("writer"), true},
		{"HasRole(admin)", p.HasRole("admin"), false},
		{"HasAnyRole(admin, user)", p.HasAnyRole("admin", "user"), true},
		{"HasClientRole(orders-api, writer)", p.HasClientRole("orders-api", "writer"), true},
		{"HasClientRole(other, writer)", p.HasClientRole("other", "writer"), false},
		{"HasScope(email)", p.HasScope("email"), true},
		{"HasAuthority(ROLE_user)", p.HasAuthority("ROLE_user"), true},
		{"HasAuthority(SCOPE_email)", p.HasAuthority("SCOPE_email"), true},
		{"HasAuthority(ROLE_writer)", p.HasAuthority("ROLE_writer"), true},
		{"HasAuthority(ROLE_email)", p.HasAuthority("ROLE_email"), false},
		{"HasAuthority(SCOPE_user)", p.HasAuthority("SCOPE_user"), false},
		{"Authorities has ROLE_writer", slices.Contains(p.Authorities(), "ROLE_writer"), true},
		{"Authorities has SCOPE_openid", slices.Contains(p.Authorities(), "SCOPE_openid"), true},
		{"ExpiresAt", p.ExpiresAt.Unix(), f.Now().Add(5 * time.Minute).Unix()},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
	var verified bool
	if ok, err := p.Claim("email_verified", &verified); !ok || err != nil || !verified {
		t.Errorf("Claim(email_verified) = %v, %v, %v; want true", ok, err, verified)
	}
	var n int
	if ok, err := p.Claim("email", &n); !ok || err == nil {
		t.Errorf("Claim(email) into an int = %v, %v; want a decode error", ok, err)
	}
	if ok, _ := p.Claim("absent", &n); ok {
		t.Error("Claim(absent) reported true")
	}

	for _, name := range []string{"id_token", "refresh_token"} {
		if _, err := f.v.Verify(ctx, resp[name].(string)); !errors.Is(err, keygate.ErrWrongTokenType) {
			t.Errorf("Verify(%s) = %v; want ErrWrongTokenType", name, err)
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, ok := b.([]string)
		return ok && slices.Equal(as, bs)
	}
	return a == b
}

func TestCache(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	tok := f.mint(t, keycloaktest.Token{})
	p1, err := f.v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	lookups := f.keys.n.Load()
	p2, err := f.v.Verify(ctx, tok)
	if err != nil || p2 != p1 {
		t.Fatalf("second Verify() = %p, %v; want the cached principal %p", p2, err, p1)
	}
	// A hit asks the key set for the token's key again, and nothing more
	// (see KeySet): one lookup.
	if n := f.keys.n.Load() - lookups; n != 1 {
		t.Errorf("a cache hit made %d key lookups; want 1", n)
	}
	if st := f.v.CacheStats(); st.Hits != 1 || st.Misses != 1 || st.Size != 1 || st.Capacity != keygate.DefaultCacheSize ||
		st.Bytes < int64(len(tok)) || st.Bytes > 8<<10 || st.ByteCapacity != keygate.DefaultCacheBytes {
		t.Errorf("CacheStats() = %+v; want 1 hit, 1 miss, size 1, capacity %d, %d to 8192 bytes of %d",
			st, keygate.DefaultCacheSize, len(tok), keygate.DefaultCacheBytes)
	}

	t.Run("answers the same token only", func(t *testing.T) {
		// The cache is keyed by the token's SHA-256 digest: no other
		// string, however close to a cached token, is answered from it.
		// Every one-byte change, and the token cut or extended, misses
		// and is verified in full.
		hits := f.v.CacheStats().Hits
		var variants []string
		for i := range len(tok) {
			b := []byte(tok)
			b[i] ^= 0x01
			variants = append(variants, string(b))
		}
		variants = append(variants, tok[:len(tok)-1], tok+"A", tok+".", " "+tok)
		for _, v := range variants {
			if _, err := f.v.Verify(ctx, v); err == nil {
				t.Fatalf("Verify(%q…) accepted a changed token", v[:40])
			}
		}
		if st := f.v.CacheStats(); st.Hits != hits {
			t.Errorf("changed tokens made %d cache hits; want none", st.Hits-hits)
		}
		if p, err := f.v.Verify(ctx, tok); err != nil || p != p1 {
			t.Errorf("Verify(tok) after the changed ones = %p, %v; want the cached principal %p", p, err, p1)
		}
	})

	t.Run("ends at exp", func(t *testing.T) {
		tok := f.mint(t, keycloaktest.Token{Claims: map[string]any{"exp": f.Now().Add(time.Minute)}})
		if _, err := f.v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		f.advance(90 * time.Second) // past exp, inside the leeway: checked again, still valid
		before := f.v.CacheStats().Hits
		if _, err := f.v.Verify(ctx, tok); err != nil {
			t.Fatalf("Verify() inside leeway = %v", err)
		}
		if f.v.CacheStats().Hits != before {
			t.Error("an entry past its exp answered from the cache")
		}
		f.advance(time.Minute)
		if _, err := f.v.Verify(ctx, tok); !errors.Is(err, keygate.ErrExpired) {
			t.Errorf("Verify() past exp and leeway = %v; want ErrExpired", err)
		}
	})

	t.Run("ends when the key leaves the set", func(t *testing.T) {
		tok := f.mint(t, keycloaktest.Token{})
		if _, err := f.v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := f.idp.AddKey("RS256"); err != nil {
			t.Fatal(err)
		}
		f.idp.RemoveKey(keyOf(t, tok))
		if err := f.src.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.v.Verify(ctx, tok); !errors.Is(err, keygate.ErrUnknownKey) {
			t.Errorf("Verify() after its key was removed = %v; want ErrUnknownKey", err)
		}
	})

	t.Run("off", func(t *testing.T) {
		g := newFixture(t, func(c *keygate.Config) { c.CacheSize = -1 })
		tok := g.mint(t, keycloaktest.Token{})
		for range 3 {
			if _, err := g.v.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := g.keys.n.Load(); n != 3 {
			t.Errorf("key lookups with the cache off = %d; want 3", n)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		for _, size := range []int{1, 10, 128} {
			g := newFixture(t, func(c *keygate.Config) { c.CacheSize = size })
			toks := make([]string, size+50)
			for i := range toks {
				toks[i] = g.mint(t, keycloaktest.Token{Client: "svc-EdDSA"})
				if _, err := g.v.Verify(ctx, toks[i]); err != nil {
					t.Fatal(err)
				}
			}
			// A full cache admits a token seen once only when its
			// doorkeeper mistakes it for one seen before (rarely).
			st := g.v.CacheStats()
			if st.Size != size || st.Capacity != size || st.Evictions+st.Rejected != 50 || st.Rejected == 0 {
				t.Errorf("CacheSize %d: after %d tokens CacheStats() = %+v; want Size = Capacity = %[1]d, 50 evictions or rejections, mostly rejections", size, size+50, st)
			}
			// Seen a second time, each is admitted.
			for _, tok := range toks[size:] {
				if _, err := g.v.Verify(ctx, tok); err != nil {
					t.Fatal(err)
				}
			}
			if st2 := g.v.CacheStats(); st2.Size != size || st2.Rejected != st.Rejected {
				t.Errorf("CacheSize %d: after a second sighting CacheStats() = %+v; want Size %[1]d, still %d rejected", size, st2, st.Rejected)
			}
		}
	})

	t.Run("bounded by bytes", func(t *testing.T) {
		// 4,096 tokens with 8 KB of claims each would pin about 120 MB;
		// the default byte bound keeps the cache under 32 MiB. Each is
		// verified twice: past its first 512 tokens, the cache admits a
		// token on its second sighting only.
		g := newFixture(t, func(c *keygate.Config) { c.MaxTokenSize = 64 << 10 })
		toks := make([]string, 4096)
		for i := range toks {
			toks[i] = g.mint(t, keycloaktest.Token{Client: "svc-EdDSA", Claims: bigClaims()})
		}
		for range 2 {
			for _, tok := range toks {
				if _, err := g.v.Verify(ctx, tok); err != nil {
					t.Fatal(err)
				}
			}
		}
		st := g.v.CacheStats()
		t.Logf("after 4096 tokens of ~11 kB: %+v (%d bytes a token)", st, st.Bytes/int64(max(st.Size, 1)))
		if st.Bytes > keygate.DefaultCacheBytes || st.ByteCapacity != keygate.DefaultCacheBytes {
			t.Errorf("cache holds %d bytes; want at most %d", st.Bytes, keygate.DefaultCacheBytes)
		}
		if st.Size >= 4096/2 || st.Size < 100 || st.Evictions == 0 {
			t.Errorf("cache holds %d tokens, %d evicted; want the byte bound to evict most of 4096 and keep the rest", st.Size, st.Evictions)
		}
	})

	t.Run("too big for the byte bound", func(t *testing.T) {
		g := newFixture(t, func(c *keygate.Config) { c.CacheBytes = 4 << 10 })
		tok := g.mint(t, keycloaktest.Token{Claims: bigClaims()})
		for range 2 {
			if _, err := g.v.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if st := g.v.CacheStats(); st.Size != 0 || st.Hits != 0 || st.Bytes != 0 {
			t.Errorf("CacheStats() = %+v; want a token costing more than CacheBytes never cached", st)
		}
	})

	t.Run("off by bytes", func(t *testing.T) {
		g := newFixture(t, func(c *keygate.Config) { c.CacheBytes = -1 })
		tok := g.mint(t, keycloaktest.Token{})
		for range 2 {
			if _, err := g.v.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if n := g.keys.n.Load(); n != 2 {
			t.Errorf("key lookups with CacheBytes -1 = %d; want 2", n)
		}
	})
}

// bigClaims returns about 8 KB of claims: 100 realm roles of 40 bytes,
// a 4,000-byte custom claim and a fresh jti.
func bigClaims() map[string]any {
	roles := make([]string, 100)
	for i := range roles {
		roles[i] = fmt.Sprintf("role-%03d-%s", i, strings.Repeat("r", 31))
	}
	return map[string]any{
		"realm_access": map[string]any{"roles": roles},
		"profile":      strings.Repeat("p", 4000),
	}
}

// TestCacheCostEstimate compares the bytes the cache charges with what
// the Go heap holds for the same tokens, Principal.Claim called: the
// estimate must not be below what the tokens really pin (nor wildly
// above). It measures memory, not time.
func TestCacheCostEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	for _, tc := range []struct {
		name   string
		claims func() map[string]any
	}{
		{"Keycloak token", func() map[string]any { return nil }},
		{"8 KB of claims", bigClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *keygate.Config) { c.MaxTokenSize = 64 << 10; c.CacheBytes = 1 << 30 })
			ctx := context.Background()
			const n = 300
			toks := make([]string, n)
			for i := range toks {
				toks[i] = f.mint(t, keycloaktest.Token{Claims: tc.claims()})
			}
			// The verifier under test keeps its tokens; a second one with
			// the cache off does the same work and keeps nothing, so the
			// heap difference is what the cache pins.
			keep := make([]*keygate.Principal, n)
			heap := func() uint64 {
				runtime.GC()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				return m.HeapAlloc
			}
			before := heap()
			for i, tok := range toks {
				p, err := f.v.Verify(ctx, strings.Clone(tok))
				if err != nil {
					t.Fatal(err)
				}
				var x any
				p.Claim("sub", &x)
				keep[i] = p
			}
			keep = nil
			after := heap()
			st := f.v.CacheStats()
			real := int64(after) - int64(before)
			t.Logf("%d tokens of %d bytes: estimate %d bytes, heap %d bytes (%.2f)", n, len(toks[0]), st.Bytes, real, float64(st.Bytes)/float64(real))
			if st.Size != n || st.Bytes < real*8/10 || st.Bytes > real*2 {
				t.Errorf("estimate %d bytes for %d tokens; heap grew %d bytes: want estimate in [0.8, 2] times the heap", st.Bytes, st.Size, real)
			}
		})
	}
}

func keyOf(t *testing.T, tok string) string {
	t.Helper()
	h, err := jsonB64Decode(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return h["kid"].(string)
}

type tenantError struct{ tenant string }

func (e *tenantError) Error() string { return "tenant " + e.tenant + " not served here" }

func TestValidators(t *testing.T) {
	f := newFixture(t, func(c *keygate.Config) {
		c.Validators = []keygate.Validator{func(p *keygate.Principal) error {
			var tenant string
			if _, err := p.Claim("tenant", &tenant); err != nil {
				return err
			}
			if tenant != "acme" {
				return &tenantError{tenant}
			}
			return nil
		}}
	})
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, f.mint(t, keycloaktest.Token{Claims: map[string]any{"tenant": "acme"}})); err != nil {
		t.Errorf("Verify(acme) = %v", err)
	}
	_, err := f.v.Verify(ctx, f.mint(t, keycloaktest.Token{Claims: map[string]any{"tenant": "globex"}}))
	var te *tenantError
	if !errors.Is(err, keygate.ErrInvalidClaims) || !errors.As(err, &te) || te.tenant != "globex" {
		t.Errorf("Verify(globex) = %v; want ErrInvalidClaims wrapping *tenantError", err)
	}
}

func TestKeysUnavailable(t *testing.T) {
	idp := keycloaktest.New(t, realm())
	idp.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Status: 503})
	src, err := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.Start()
	v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: src})
	if err != nil {
		t.Fatal(err)
	}
	tok := idp.MustMint(t, keycloaktest.Token{Client: "worker"})
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, keygate.ErrKeysUnavailable) || !errors.Is(err, jwks.ErrUnavailable) {
		t.Fatalf("Verify() with the provider down = %v; want ErrKeysUnavailable", err)
	}
	idp.SetFault(keycloaktest.EndpointDiscovery, nil)
	select {
	case <-src.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("source did not recover")
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("Verify() after recovery = %v", err)
	}
}

func TestNewVerifierChecksConfig(t *testing.T) {
	keys := jwks.StaticSet()
	tests := []struct {
		name string
		cfg  keygate.Config
		want string
	}{
		{"valid", keygate.Config{Issuer: "https://i", Audiences: []string{"a"}, Keys: keys}, ""},
		{"no issuer", keygate.Config{Audiences: []string{"a"}, Keys: keys}, "Config.Issuer is empty"},
		{"no keys", keygate.Config{Issuer: "https://i", Audiences: []string{"a"}}, "Config.Keys is nil"},
		{"no audience", keygate.Config{Issuer: "https://i", Keys: keys}, "InsecureSkipAudienceCheck"},
		{"audience check off", keygate.Config{Issuer: "https://i", Keys: keys, InsecureSkipAudienceCheck: true}, ""},
		{"empty audience", keygate.Config{Issuer: "https://i", Audiences: []string{""}, Keys: keys}, "empty string"},
		{"HS256 allowed", keygate.Config{Issuer: "https://i", Audiences: []string{"a"}, Keys: keys, Algorithms: []string{"HS256"}}, "not supported"},
		{"none allowed", keygate.Config{Issuer: "https://i", Audiences: []string{"a"}, Keys: keys, Algorithms: []string{"none"}}, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keygate.NewVerifier(tt.cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("NewVerifier() = %v; want %q", err, tt.want)
			}
			var ce *keygate.ConfigError
			if err != nil && !errors.As(err, &ce) {
				t.Errorf("NewVerifier() error is %T; want *keygate.ConfigError", err)
			}
		})
	}
}

func TestSkipAudienceCheck(t *testing.T) {
	f := newFixture(t, func(c *keygate.Config) {
		c.Audiences, c.InsecureSkipAudienceCheck = nil, true
		c.AuthorizedParties = []string{"stranger"}
	})
	ctx := context.Background()
	if _, err := f.v.Verify(ctx, f.mint(t, keycloaktest.Token{Client: "stranger"})); err != nil {
		t.Errorf("Verify(stranger) with audience check off = %v", err)
	}
	if _, err := f.v.Verify(ctx, f.mint(t, keycloaktest.Token{Client: "worker"})); !errors.Is(err, keygate.ErrWrongAudience) {
		t.Errorf("Verify(worker) not in AuthorizedParties = %v; want ErrWrongAudience", err)
	}
}

// TestErrorMessagesAreBounded sends tokens whose values an error message
// quotes, each 11 kB long: the message stays short, with a marker.
func TestErrorMessagesAreBounded(t *testing.T) {
	f := newFixture(t, func(c *keygate.Config) { c.MaxTokenSize = 128 << 10 })
	g := newFixture(t, func(c *keygate.Config) { c.MaxTokenSize = 128 << 10; c.AuthorizedParties = []string{"worker"} })
	huge := strings.Repeat("K", 11<<10)
	many := make([]string, 300)
	for i := range many {
		many[i] = huge[:100]
	}
	tests := []struct {
		name string
		v    *keygate.Verifier
		tok  string
		want error
	}{
		{"kid", f.v, f.mint(t, keycloaktest.Token{Header: map[string]any{"kid": huge}}), keygate.ErrUnknownKey},
		{"alg", f.v, f.mint(t, keycloaktest.Token{Header: map[string]any{"alg": huge}}), keygate.ErrUnsupportedAlgorithm},
		{"header typ", f.v, f.mint(t, keycloaktest.Token{Header: map[string]any{"typ": huge}}), keygate.ErrWrongTokenType},
		{"typ", f.v, f.mint(t, keycloaktest.Token{Claims: map[string]any{"typ": huge}}), keygate.ErrWrongTokenType},
		{"iss", f.v, f.mint(t, keycloaktest.Token{Claims: map[string]any{"iss": huge}}), keygate.ErrWrongIssuer},
		{"aud", f.v, f.mint(t, keycloaktest.Token{Claims: map[string]any{"aud": many}}), keygate.ErrWrongAudience},
		{"azp", g.v, g.mint(t, keycloaktest.Token{Claims: map[string]any{"azp": huge}}), keygate.ErrWrongAudience},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Verify(context.Background(), tt.tok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify() = %v; want %v", err, tt.want)
			}
			if msg := err.Error(); len(msg) > 1200 || !strings.Contains(msg, " bytes)") {
				t.Errorf("error message is %d bytes; want at most 1200, with a length marker: %.300s", len(msg), msg)
			}
		})
	}
}

// swappableKeys is a KeySet over a jwks.Set that can be replaced, as a
// user's own key set configured out of band would be.
type swappableKeys struct{ set atomic.Pointer[jwks.Set] }

func (s *swappableKeys) Key(ctx context.Context, kid string) (*jwks.Key, error) {
	return s.set.Load().Key(ctx, kid)
}

// freshKeys builds a new *jwks.Key on every call, as a KeySet that parses
// its keys each time would.
type freshKeys struct{ keys *swappableKeys }

func (f freshKeys) Key(ctx context.Context, kid string) (*jwks.Key, error) {
	k, err := f.keys.Key(ctx, kid)
	if err != nil {
		return nil, err
	}
	return &jwks.Key{ID: k.ID, Algorithm: k.Algorithm, Type: k.Type, Public: k.Public}, nil
}

// TestKeySetRemovalEndsCachedTokens checks the KeySet contract for every
// kind of key set: a token served from the cache stops validating as soon
// as the key set no longer returns its key, and is served from the cache
// while it does.
func TestKeySetRemovalEndsCachedTokens(t *testing.T) {
	ctx := context.Background()
	idp := keycloaktest.New(t, realm())
	certs := func() *jwks.Set {
		resp, err := idp.Client().Get(idp.JWKSURL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, resp.Body); err != nil {
			t.Fatal(err)
		}
		s, err := jwks.Parse([]byte(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name string
		// setup returns the key set and a function that removes kid from it.
		setup func(t *testing.T, kid string) (keygate.KeySet, func())
	}{
		{"jwks.Source", func(t *testing.T, kid string) (keygate.KeySet, func()) {
			src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close() })
			if err := src.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			return src, func() {
				if _, err := idp.AddKey("RS256"); err != nil {
					t.Fatal(err)
				}
				idp.RemoveKey(kid)
				if err := src.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"jwks.Set, swapped for one without the key", func(t *testing.T, kid string) (keygate.KeySet, func()) {
			ks := &swappableKeys{}
			ks.set.Store(certs())
			return ks, func() { ks.set.Store(jwks.StaticSet()) }
		}},
		{"a key set that builds new Keys on each call", func(t *testing.T, kid string) (keygate.KeySet, func()) {
			ks := &swappableKeys{}
			ks.set.Store(certs())
			return freshKeys{ks}, func() { ks.set.Store(jwks.StaticSet()) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kid := idp.ActiveKeyID("RS256")
			keys, remove := tt.setup(t, kid)
			v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			tok := idp.MustMint(t, keycloaktest.Token{Client: "worker", KeyID: kid})
			for range 2 {
				if _, err := v.Verify(ctx, tok); err != nil {
					t.Fatal(err)
				}
			}
			if st := v.CacheStats(); st.Hits != 1 {
				t.Fatalf("CacheStats() = %+v; want the second Verify answered from the cache", st)
			}
			remove()
			if _, err := v.Verify(ctx, tok); err == nil {
				t.Error("a cached token still validates after its key left the key set")
			}
		})
	}
}

// nilKeys is a KeySet that answers (nil, nil): a buggy custom
// implementation, or one whose map lookup returns a nil *Key.
type nilKeys struct{}

func (nilKeys) Key(context.Context, string) (*jwks.Key, error) { return nil, nil }

// KeySet is an interface users implement; a (nil, nil) answer must not
// crash the request path (httpauth does not recover panics).
func TestKeySetNilKey(t *testing.T) {
	f := newFixture(t, nil)
	raw := f.mint(t, keycloaktest.Token{})
	v, err := keygate.NewVerifier(keygate.Config{Issuer: f.idp.Issuer(), Audiences: []string{"orders-api"}, Keys: nilKeys{}, Now: f.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Verify with a KeySet answering (nil, nil) panicked: %v", r)
		}
	}()
	_, err = v.Verify(context.Background(), raw)
	if !errors.Is(err, keygate.ErrKeysUnavailable) {
		t.Errorf("Verify = %v; want ErrKeysUnavailable", err)
	}
}

// A Validator's error is classed ErrInvalidClaims, and only that, whatever
// it wraps: a refused token never looks like an outage (503).
func TestValidatorErrorClass(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"wraps ErrKeysUnavailable", fmt.Errorf("tenant lookup: %w", keygate.ErrKeysUnavailable)},
		{"a *keygate.Error of class ErrKeysUnavailable", &keygate.Error{Kind: keygate.ErrKeysUnavailable}},
		{"a *keygate.Error of a foreign kind", &keygate.Error{Kind: errors.New("tenant mismatch")}},
	}
	classes := []error{keygate.ErrMalformed, keygate.ErrUnsupportedAlgorithm, keygate.ErrUnknownKey, keygate.ErrBadSignature,
		keygate.ErrExpired, keygate.ErrNotYetValid, keygate.ErrWrongIssuer, keygate.ErrWrongAudience,
		keygate.ErrWrongTokenType, keygate.ErrInvalidClaims, keygate.ErrKeysUnavailable}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *keygate.Config) {
				c.Validators = []keygate.Validator{func(*keygate.Principal) error { return tt.err }}
			})
			_, err := f.v.Verify(context.Background(), f.mint(t, keycloaktest.Token{}))
			n := 0
			for _, c := range classes {
				if errors.Is(err, c) {
					n++
				}
			}
			if !errors.Is(err, keygate.ErrInvalidClaims) || n != 1 {
				t.Errorf("Verify = %v; matches ErrInvalidClaims: %v, classes matched: %d; want ErrInvalidClaims only",
					err, errors.Is(err, keygate.ErrInvalidClaims), n)
			}
			// What a client sees.
			mw, _ := httpauth.New(httpauth.Config{Verifier: f.v})
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/x", nil)
			req.Header.Set("Authorization", "Bearer "+f.mint(t, keycloaktest.Token{Claims: map[string]any{"jti": tt.name}}))
			mw.Wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("httpauth answers %d for a token a Validator refused; want 401", rec.Code)
			}
		})
	}
}

// oneKey is a KeySet that returns the same Key literal, never put in a
// jwks.Set.
type oneKey struct{ key *jwks.Key }

func (o oneKey) Key(context.Context, string) (*jwks.Key, error) { return o.key, nil }

// TestVerifyPreparesKeyLiterals checks that the verifier checks RS256
// through the prepared path: a Key literal that never entered a set is
// prepared by its first verification, and then verifies and rejects as
// before.
func TestVerifyPreparesKeyLiterals(t *testing.T) {
	ctx := context.Background()
	idp := keycloaktest.New(t, realm())
	kid := idp.ActiveKeyID("RS256")
	key := &jwks.Key{ID: kid, Type: "RSA", Public: idp.PublicKey(kid)}
	v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: oneKey{key}, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if jose.PreparedFor(key, key.Public) {
		t.Fatal("the key is prepared before any verification")
	}
	tok := idp.MustMint(t, keycloaktest.Token{Client: "worker"})
	for range 2 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("Verify = %v", err)
		}
	}
	if !jose.PreparedFor(key, key.Public) {
		t.Error("Verify did not prepare the key: RS256 is not on the prepared path")
	}
	bad := tok[:len(tok)-3] + "AAA"
	if _, err := v.Verify(ctx, bad); !errors.Is(err, keygate.ErrBadSignature) {
		t.Errorf("Verify(tampered signature) = %v; want ErrBadSignature", err)
	}
}
