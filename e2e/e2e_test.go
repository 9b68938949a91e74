//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
)

// suite carries what one step hands to a later one.
type suite struct {
	root *testing.T

	// From Rotation, for Differential: a token signed by the key that
	// Rotation disabled, and a verifier whose key source fetched the keys
	// before that and refreshes only hourly (it still holds the key).
	disabledKeyToken string
	staleVerifier    *keygate.Verifier
}

// TestKeycloak is the whole tier, in an order that matters: the read-only
// steps first, then the steps that change Keycloak. Rotation adds a key
// provider and disables the imported one; Differential logs a session out
// and uses Rotation's disabled-key token; Outage stops and restarts
// Keycloak, which re-imports the realm with new keys, so it runs last.
// A failed step does not stop the later ones.
func TestKeycloak(t *testing.T) {
	t.Logf("Keycloak %s at %s", kc.Version, kc.URL)
	s := &suite{root: t}
	steps := []struct {
		name string
		run  func(*testing.T, *suite)
	}{
		{"Grants", testGrants},
		{"Algorithms", testAlgorithms},
		{"Refusals", testRefusals},
		{"Middleware", testMiddleware},
		{"Rotation", testRotation},
		{"Differential", testDifferential},
		{"Outage", testOutage},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) { st.run(t, s) })
	}
}

// testGrants: client_credentials and password tokens validate, and the
// principal holds what Keycloak's admin API says about the user or
// service account.
func testGrants(t *testing.T, _ *suite) {
	src := newSource(t, jwks.Config{})
	v := newVerifier(t, src, nil)

	t.Run("client_credentials", func(t *testing.T) {
		tr := mustClient(t, worker)
		p := mustVerify(t, v, tr.AccessToken)
		sa := adminAPI.serviceAccount(t, worker.id)
		if p.Subject != sa.ID {
			t.Errorf("Subject %q, admin API service-account-user id %q", p.Subject, sa.ID)
		}
		if p.Username != sa.Username || p.Username != "service-account-orders-worker" {
			t.Errorf("Username %q, admin API %q", p.Username, sa.Username)
		}
		if !p.ServiceAccount() {
			t.Error("ServiceAccount() false for a client_credentials token")
		}
		if p.Client != worker.id {
			t.Errorf("Client %q, want %q", p.Client, worker.id)
		}
		if p.SessionID != "" {
			t.Errorf("SessionID %q for a service account", p.SessionID)
		}
		checkCommon(t, p, tr, sa.ID)
		if !p.HasClientRole("orders-api", "reader") || p.HasClientRole("orders-api", "writer") {
			t.Errorf("orders-api roles %q, want [reader]", p.ClientRoles["orders-api"])
		}
	})

	for _, name := range []string{"alice", "bob"} {
		t.Run("password/"+name, func(t *testing.T) {
			tr := mustPassword(t, name)
			p := mustVerify(t, v, tr.AccessToken)
			u := adminAPI.user(t, name)
			if p.Subject != u.ID {
				t.Errorf("Subject %q, admin API user id %q", p.Subject, u.ID)
			}
			if p.Username != u.Username {
				t.Errorf("Username %q, admin API %q", p.Username, u.Username)
			}
			if p.Email != u.Email || p.GivenName != u.FirstName || p.FamilyName != u.LastName ||
				p.Name != u.FirstName+" "+u.LastName {
				t.Errorf("profile %q %q %q %q, admin API %q %q %q", p.Email, p.Name, p.GivenName, p.FamilyName,
					u.Email, u.FirstName, u.LastName)
			}
			if p.ServiceAccount() {
				t.Error("ServiceAccount() true for a user")
			}
			if p.Client != "orders-cli" {
				t.Errorf("Client %q, want orders-cli", p.Client)
			}
			if p.SessionID == "" {
				t.Error("no SessionID for a password-grant token")
			}
			if !p.HasScope("openid") {
				t.Errorf("Scopes %q lack openid", p.Scopes)
			}
			checkCommon(t, p, tr, u.ID)
			admin := name == "bob"
			if p.HasRealmRole("admin") != admin || p.HasRole("admin") != admin {
				t.Errorf("realm role admin: %v, want %v", p.HasRealmRole("admin"), admin)
			}
			if p.HasClientRole("orders-api", "writer") != admin || p.HasRole("writer") != admin {
				t.Errorf("orders-api role writer: %v, want %v", p.HasClientRole("orders-api", "writer"), admin)
			}
			if !p.HasAuthority("ROLE_reader") || !p.HasAuthority("SCOPE_profile") {
				t.Errorf("authorities %q lack ROLE_reader or SCOPE_profile", p.Authorities())
			}
		})
	}
}

// checkCommon compares what every access token carries with Keycloak's
// own view: issuer and audience, realm roles and client roles against the
// admin API's effective (composite) role mappings of userID, scopes
// against the scope the token endpoint answered.
func checkCommon(t *testing.T, p *keygate.Principal, tr tokenResponse, userID string) {
	t.Helper()
	if p.Issuer != kc.Issuer {
		t.Errorf("Issuer %q, want %q", p.Issuer, kc.Issuer)
	}
	if !slices.Contains(p.Audience, "orders-api") {
		t.Errorf("Audience %q lacks orders-api", p.Audience)
	}
	if want := adminAPI.realmRoles(t, userID); !sameSet(p.RealmRoles, want) {
		t.Errorf("RealmRoles %q, admin API %q", p.RealmRoles, want)
	}
	if len(p.ClientRoles) == 0 {
		t.Error("no ClientRoles")
	}
	for c, roles := range p.ClientRoles {
		if want := adminAPI.clientRoles(t, userID, c); !sameSet(roles, want) {
			t.Errorf("ClientRoles[%q] %q, admin API %q", c, roles, want)
		}
	}
	if want := strings.Fields(tr.Scope); len(want) == 0 || !sameSet(p.Scopes, want) {
		t.Errorf("Scopes %q, token endpoint scope %q", p.Scopes, tr.Scope)
	}
	if exp := time.Unix(time.Now().Unix()+int64(tr.ExpiresIn), 0); p.ExpiresAt.Sub(exp).Abs() > 5*time.Second {
		t.Errorf("ExpiresAt %v, token endpoint expires_in %d", p.ExpiresAt, tr.ExpiresIn)
	}
}

// testAlgorithms: RS256, ES256 and EdDSA tokens validate, each under a key
// of its alg that the realm publishes.
func testAlgorithms(t *testing.T, _ *suite) {
	src := newSource(t, jwks.Config{})
	v := newVerifier(t, src, nil)
	keys := published(t)
	for _, tc := range []struct {
		c   client
		alg string
	}{{worker, "RS256"}, {es256, "ES256"}, {eddsa, "EdDSA"}} {
		t.Run(tc.alg, func(t *testing.T) {
			tok := mustClient(t, tc.c).AccessToken
			h := headerOf(t, tok)
			if h.Alg != tc.alg {
				t.Fatalf("%s issued alg %q, want %q", tc.c.id, h.Alg, tc.alg)
			}
			if keys[h.Kid] != tc.alg {
				t.Fatalf("kid %s: published alg %q, want %q", h.Kid, keys[h.Kid], tc.alg)
			}
			p := mustVerify(t, v, tok)
			if p.Client != tc.c.id {
				t.Errorf("Client %q, want %q", p.Client, tc.c.id)
			}
			// Restricted to its own alg, the verifier still accepts it; to
			// the others, it refuses it.
			mustVerify(t, newVerifier(t, src, func(c *keygate.Config) { c.Algorithms = []string{tc.alg} }), tok)
			others := slices.DeleteFunc([]string{"RS256", "ES256", "EdDSA"}, func(a string) bool { return a == tc.alg })
			mustRefuse(t, newVerifier(t, src, func(c *keygate.Config) { c.Algorithms = others }), tok, keygate.ErrUnsupportedAlgorithm)
		})
	}
}

// testRefusals: the ID token and the refresh token of a login, a token of
// the other realm and a token without our audience are refused, each for
// its own reason.
func testRefusals(t *testing.T, _ *suite) {
	src := newSource(t, jwks.Config{})
	v := newVerifier(t, src, nil)
	login := mustPassword(t, "alice")
	mustVerify(t, v, login.AccessToken)

	t.Run("id_token", func(t *testing.T) {
		if typ := claimsOf(t, login.IDToken)["typ"]; typ != "ID" {
			t.Fatalf("ID token typ %v", typ)
		}
		mustRefuse(t, v, login.IDToken, keygate.ErrWrongTokenType)
		// Even with the audience check off (an ID token's aud is the
		// client, orders-cli), the type check refuses it.
		lax := newVerifier(t, src, func(c *keygate.Config) { c.Audiences, c.InsecureSkipAudienceCheck = nil, true })
		mustRefuse(t, lax, login.IDToken, keygate.ErrWrongTokenType)
	})
	t.Run("refresh_token", func(t *testing.T) {
		if typ := claimsOf(t, login.RefreshToken)["typ"]; typ != "Refresh" {
			t.Fatalf("refresh token typ %v", typ)
		}
		mustRefuse(t, v, login.RefreshToken, keygate.ErrWrongTokenType)
	})
	t.Run("other_realm", func(t *testing.T) {
		tok := mustOther(t)
		mustRefuse(t, v, tok, keygate.ErrWrongIssuer)
		// The same token is good for a verifier of its own realm: the
		// refusal is about the issuer, not a broken token.
		osrc := newSource(t, jwks.Config{Issuer: kc.OtherIssuer})
		ov := newVerifier(t, osrc, func(c *keygate.Config) { c.Issuer = kc.OtherIssuer })
		mustVerify(t, ov, tok)
		mustRefuse(t, ov, login.AccessToken, keygate.ErrWrongIssuer)
	})
	t.Run("no_audience", func(t *testing.T) {
		tok := mustClient(t, noAud).AccessToken
		if aud := claimsOf(t, tok)["aud"]; aud != "account" {
			t.Fatalf("no-aud-client token aud %v, want \"account\"", aud)
		}
		mustRefuse(t, v, tok, keygate.ErrWrongAudience)
		mustVerify(t, newVerifier(t, src, func(c *keygate.Config) { c.Audiences = []string{"account"} }), tok)
	})
}

// testMiddleware: real tokens through httpauth and an authz policy over
// real HTTP on loopback.
func testMiddleware(t *testing.T, _ *suite) {
	src := newSource(t, jwks.Config{})
	policy, err := authz.Compile(authz.Config{
		Rules: []authz.Rule{
			{Methods: []string{"GET"}, Path: "/orders/**", Require: authz.ClientRole("orders-api", "reader")},
			{Methods: []string{"POST"}, Path: "/orders/**", Require: authz.ClientRole("orders-api", "writer")},
			{Path: "/admin/**", Require: authz.Role("admin")},
		},
		Default: authz.Authenticated(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, newVerifier(t, src, nil), policy)

	alice, bob := mustPassword(t, "alice"), mustPassword(t, "bob")
	wk := mustClient(t, worker).AccessToken
	for _, tc := range []struct {
		name, method, path, tok string
		want                    int
		body                    string
	}{
		{"alice reads", "GET", "/orders/1", alice.AccessToken, 200, "alice"},
		{"alice cannot write", "POST", "/orders/1", alice.AccessToken, 403, ""},
		{"alice is no admin", "GET", "/admin/x", alice.AccessToken, 403, ""},
		{"bob writes", "POST", "/orders/1", bob.AccessToken, 200, "bob"},
		{"bob is admin", "GET", "/admin/x", bob.AccessToken, 200, "bob"},
		{"worker reads", "GET", "/orders", wk, 200, "service-account-orders-worker"},
		{"worker cannot write", "POST", "/orders", wk, 403, ""},
		{"no token", "GET", "/orders", "", 401, ""},
		{"ID token", "GET", "/orders", alice.IDToken, 401, ""},
		{"refresh token", "GET", "/orders", alice.RefreshToken, 401, ""},
		{"no audience", "GET", "/orders", mustClient(t, noAud).AccessToken, 401, ""},
		{"other realm", "GET", "/orders", mustOther(t), 401, ""},
	} {
		status, body, hdr := call(t, srv, tc.method, tc.path, tc.tok)
		if status != tc.want || (tc.body != "" && body != tc.body) {
			t.Errorf("%s: %s %s: %d %q, want %d %q", tc.name, tc.method, tc.path, status, body, tc.want, tc.body)
		}
		if status == 401 && tc.tok != "" && !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: WWW-Authenticate %q lacks invalid_token", tc.name, hdr.Get("WWW-Authenticate"))
		}
	}
}

// newServer serves, behind the middleware, a handler that answers the
// caller's username.
func newServer(t testing.TB, v *keygate.Verifier, policy *authz.Policy) *httptest.Server {
	t.Helper()
	mw, err := httpauth.New(httpauth.Config{Verifier: v, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := httpauth.FromContext(r.Context())
		io.WriteString(w, p.Username)
	})))
	t.Cleanup(srv.Close)
	return srv
}

func call(t testing.TB, srv *httptest.Server, method, path, tok string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// refreshInterval is the key source TTL of the rotation and outage tests.
const refreshInterval = 2 * time.Second

// testRotation rotates the realm's RS256 key through the admin REST API
// while a verifier runs, and while a load of requests with valid tokens
// goes through the middleware:
//
//  1. a new rsa-generated provider with a higher priority: new tokens
//     carry its kid and validate at once (unknown kid -> one refetch);
//  2. the old provider passive (active=false): it no longer signs but is
//     still published, so its tokens still validate;
//  3. the old provider disabled (enabled=false): it leaves the JWKS, and
//     its tokens are refused once the source's TTL has passed, also by a
//     verifier that had cached them.
//
// The load sees zero refusals: before step 3 the load drops tokens of the
// old key, which from then on are invalid by design.
func testRotation(t *testing.T, s *suite) {
	src := newSource(t, jwks.Config{RefreshInterval: refreshInterval})
	cached := newVerifier(t, src, nil) // default token cache
	fresh := newVerifier(t, src, func(c *keygate.Config) { c.CacheSize = -1 })

	before := adminAPI.keys(t)
	oldKid := before.Active["RS256"]
	var oldProvider string
	var maxPrio int64
	for _, k := range before.Keys {
		if k.Kid == oldKid {
			oldProvider = k.ProviderID
		}
		maxPrio = max(maxPrio, k.ProviderPriority)
	}
	if oldKid == "" || oldProvider == "" {
		t.Fatalf("no active RS256 key in the realm: %+v", before.Active)
	}
	oldTok := mustClient(t, worker).AccessToken
	if kid := headerOf(t, oldTok).Kid; kid != oldKid {
		t.Fatalf("token kid %s, active RS256 kid %s", kid, oldKid)
	}
	mustVerify(t, cached, oldTok)
	t.Logf("old RS256 key %s (provider %s)", oldKid, oldProvider)

	// Load: workers send requests with tokens from a pool through the
	// middleware (no token cache, so every request looks its key up);
	// a minter keeps adding fresh tokens. The load verifier shares src.
	load := startLoad(t, newServer(t, newVerifier(t, src, func(c *keygate.Config) { c.CacheSize = -1 }), nil))
	load.add(oldTok, oldKid)
	esTok := mustClient(t, es256).AccessToken
	load.add(esTok, headerOf(t, esTok).Kid)
	load.add(mustPassword(t, "alice").AccessToken, oldKid)
	load.startMinter()
	load.waitSent(t, 50)

	// 1. New provider with a higher priority.
	resp := adminAPI.do(t, http.MethodPost, "/components", map[string]any{
		"name":         "rsa-rotated-" + strconv.FormatInt(time.Now().Unix(), 10),
		"providerId":   "rsa-generated",
		"providerType": "org.keycloak.keys.KeyProvider",
		"parentId":     adminAPI.realmID(t),
		"config": map[string][]string{
			"priority":  {strconv.FormatInt(maxPrio+100, 10)},
			"keySize":   {"2048"},
			"algorithm": {"RS256"},
		},
	}, nil, http.StatusCreated)
	t.Logf("added key provider %s", resp.Header.Get("Location"))
	var newKid string
	if !poll(10*time.Second, func() bool { newKid = adminAPI.keys(t).Active["RS256"]; return newKid != oldKid }) {
		t.Fatal("the new provider did not become the active RS256 signer")
	}
	newTok := mustClient(t, worker).AccessToken
	if kid := headerOf(t, newTok).Kid; kid != newKid {
		t.Fatalf("token after rotation has kid %s, want %s", kid, newKid)
	}
	// No restart: the unknown kid makes src refetch, unless its TTL
	// refresh already fetched the new key.
	t0, kidFetches := time.Now(), src.Status().KidFetches
	mustVerify(t, cached, newTok)
	t.Logf("new RS256 key %s: its first token validated in %v (%d refetches for an unknown kid)",
		newKid, time.Since(t0).Round(time.Microsecond), src.Status().KidFetches-kidFetches)
	if ids := src.Status().KeyIDs; !slices.Contains(ids, oldKid) || !slices.Contains(ids, newKid) {
		t.Errorf("source keys %q, want both %s and %s", ids, oldKid, newKid)
	}
	mustVerify(t, fresh, oldTok)
	load.add(newTok, newKid)
	load.waitSent(t, 50)

	// 2. Old provider passive.
	adminAPI.setComponentConfig(t, oldProvider, "active", "false")
	if !poll(10*time.Second, func() bool { return adminAPI.keys(t).keyStatus(oldKid) == "PASSIVE" }) {
		t.Fatalf("old key %s did not become PASSIVE", oldKid)
	}
	passiveAt := time.Now()
	if _, ok := published(t)[oldKid]; !ok {
		t.Errorf("passive key %s left the JWKS", oldKid)
	}
	// Wait for a refresh of src after the change, then check with the
	// cache off that old tokens still validate.
	if !poll(3*refreshInterval+5*time.Second, func() bool { return src.Status().LastSuccess.After(passiveAt) }) {
		t.Fatalf("no key refresh since the key became passive: %v", src.Status().LastError)
	}
	mustVerify(t, fresh, oldTok)
	if kid := headerOf(t, mustClient(t, worker).AccessToken).Kid; kid != newKid {
		t.Errorf("a token after the old key became passive has kid %s, want %s", kid, newKid)
	}
	load.waitSent(t, 50)

	// For Differential: a verifier whose keys were fetched now, while the
	// old key is still published, and refresh hourly.
	stale := newSourceUntil(t, s.root, jwks.Config{RefreshInterval: time.Hour})
	s.staleVerifier = newVerifier(t, stale, func(c *keygate.Config) { c.CacheSize, c.Leeway = -1, -1 })
	mustVerify(t, s.staleVerifier, oldTok)

	// 3. Old provider disabled. The load first stops using tokens of the
	// old key: they are about to become invalid.
	load.ban(t, oldKid)
	adminAPI.setComponentConfig(t, oldProvider, "enabled", "false")
	disabledAt := time.Now()
	if _, ok := published(t)[oldKid]; ok {
		t.Errorf("disabled key %s is still in the JWKS", oldKid)
	}
	var err error
	if !poll(3*refreshInterval+15*time.Second, func() bool {
		_, err = fresh.Verify(context.Background(), oldTok)
		return err != nil
	}) {
		t.Fatalf("a token of the disabled key still validates %v after the key was disabled", time.Since(disabledAt))
	}
	took := time.Since(disabledAt)
	if !errors.Is(err, keygate.ErrUnknownKey) {
		t.Errorf("token of the disabled key: %v, want ErrUnknownKey", err)
	}
	t.Logf("token of the disabled key refused %v after the key was disabled (RefreshInterval %v)", took.Round(time.Millisecond), refreshInterval)
	if took > refreshInterval+3*time.Second {
		t.Errorf("refusal took %v, more than RefreshInterval %v plus 3s", took, refreshInterval)
	}
	// The verifier that cached the token drops it with its key.
	mustRefuse(t, cached, oldTok, keygate.ErrUnknownKey)
	mustVerify(t, cached, newTok)
	if introspect(t, oldTok) {
		t.Errorf("Keycloak's introspection still says active for a token of the disabled key")
	}
	s.disabledKeyToken = oldTok
	load.waitSent(t, 50)

	sent, refused := load.stop()
	t.Logf("rotation under load: %d requests sent through the middleware, %d refused, %d tokens minted during the run",
		sent, refused, load.minted.Load())
	if n := load.mintErrs.Load(); n > 0 {
		t.Logf("%d tokens could not be minted during the run; last error: %v", n, load.lastMintErr.Load())
	}
	if refused != 0 {
		t.Errorf("%d of %d requests with valid tokens were refused during the rotation; first: %s", refused, sent, load.firstRefusal())
	}
	if sent < 200 {
		t.Errorf("only %d requests sent during the rotation", sent)
	}
}

// load sends requests with valid tokens through a server, from several
// workers, until stopped.
type load struct {
	srv    *httptest.Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	tokens []loadToken
	banned map[string]bool
	gen    int64 // bumped by ban

	workerGen     []atomic.Int64 // the pool generation each worker last drew from
	sent, refused atomic.Int64
	minted        atomic.Int64
	mintErrs      atomic.Int64
	lastMintErr   atomic.Value // string
	refusalMu     sync.Mutex
	refusals      []string
}

type loadToken struct{ tok, kid string }

const loadWorkers = 4

func startLoad(t *testing.T, srv *httptest.Server) *load {
	l := &load{srv: srv, banned: map[string]bool{}, workerGen: make([]atomic.Int64, loadWorkers)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	tr := &http.Transport{MaxIdleConnsPerHost: loadWorkers}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(func() { l.stop(); tr.CloseIdleConnections() })
	for i := range loadWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for l.ctx.Err() == nil {
				tok, gen, ok := l.pick()
				if !ok {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				l.workerGen[i].Store(gen)
				req, _ := http.NewRequestWithContext(l.ctx, http.MethodGet, srv.URL+"/orders", nil)
				req.Header.Set("Authorization", "Bearer "+tok.tok)
				resp, err := hc.Do(req)
				if l.ctx.Err() != nil {
					return // stopped mid-request: not counted
				}
				l.sent.Add(1)
				if err != nil {
					l.refuse(fmt.Sprintf("token %s (kid %s): %v", short(tok.tok), tok.kid, err))
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.refuse(fmt.Sprintf("token %s (kid %s): HTTP %d %s", short(tok.tok), tok.kid, resp.StatusCode, resp.Header.Get("WWW-Authenticate")))
				}
			}
		}()
	}
	return l
}

func (l *load) refuse(what string) {
	l.refused.Add(1)
	l.refusalMu.Lock()
	if len(l.refusals) < 5 {
		l.refusals = append(l.refusals, what)
	}
	l.refusalMu.Unlock()
}

func (l *load) firstRefusal() string {
	l.refusalMu.Lock()
	defer l.refusalMu.Unlock()
	return strings.Join(l.refusals, "; ")
}

func (l *load) pick() (loadToken, int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tokens) == 0 {
		return loadToken{}, l.gen, false
	}
	return l.tokens[rand.N(len(l.tokens))], l.gen, true
}

// add puts tok, signed by kid, in the pool (which keeps the newest 64),
// unless kid is banned.
func (l *load) add(tok, kid string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.banned[kid] {
		return
	}
	l.tokens = append(l.tokens, loadToken{tok, kid})
	if len(l.tokens) > 64 {
		l.tokens = slices.Delete(l.tokens, 0, len(l.tokens)-64)
	}
}

// ban drops the tokens of kid from the pool and waits until every worker
// has drawn a token after that, so no request with such a token is still
// under way.
func (l *load) ban(t *testing.T, kid string) {
	t.Helper()
	l.mu.Lock()
	l.banned[kid] = true
	l.tokens = slices.DeleteFunc(l.tokens, func(x loadToken) bool { return x.kid == kid })
	l.gen++
	gen := l.gen
	l.mu.Unlock()
	if !poll(30*time.Second, func() bool {
		for i := range l.workerGen {
			if l.workerGen[i].Load() < gen {
				return false
			}
		}
		return true
	}) {
		t.Fatal("load workers did not move on from the banned key's tokens")
	}
}

// startMinter adds a fresh token every 200ms, alternately of orders-worker
// and of alice: after a rotation they are signed by the new key. Failures
// to mint are counted, not fatal (this is not the test's goroutine).
func (l *load) startMinter() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.ctx.Done():
				return
			case <-tick.C:
			}
			var tr tokenResponse
			var err error
			if i%2 == 0 {
				tr, err = clientCredentials(kc.TokenURL, worker.id, worker.secret)
			} else {
				tr, err = password("alice", "alice")
			}
			var kid string
			if err == nil {
				kid, err = kidOf(tr.AccessToken)
			}
			if err != nil {
				l.mintErrs.Add(1)
				l.lastMintErr.Store(err.Error())
				continue
			}
			l.minted.Add(1)
			l.add(tr.AccessToken, kid)
		}
	}()
}

// waitSent waits until n more requests were sent.
func (l *load) waitSent(t *testing.T, n int64) {
	t.Helper()
	target := l.sent.Load() + n
	if !poll(30*time.Second, func() bool { return l.sent.Load() >= target }) {
		t.Fatalf("load stalled at %d requests", l.sent.Load())
	}
}

// stop ends the load and returns the requests sent and refused.
func (l *load) stop() (sent, refused int64) {
	l.cancel()
	l.wg.Wait()
	return l.sent.Load(), l.refused.Load()
}

// testOutage stops Keycloak while a key source runs: tokens keep
// validating from the cached keys, also tokens no verifier has seen;
// then starts it again and checks that the next refresh succeeds.
func testOutage(t *testing.T, _ *suite) {
	if !keycloakManaged() {
		t.Fatalf("the Keycloak at %s is not the one scripts/keycloak.sh runs; the outage test must stop and start it", kc.URL)
	}
	src := newSource(t, jwks.Config{RefreshInterval: refreshInterval})
	cached := newVerifier(t, src, nil)
	seen := []string{mustClient(t, worker).AccessToken, mustClient(t, es256).AccessToken,
		mustClient(t, eddsa).AccessToken, mustPassword(t, "alice").AccessToken}
	for _, tok := range seen {
		mustVerify(t, cached, tok)
	}
	// Tokens no verifier has seen yet, checked during the outage with the
	// token cache off: they need the keys themselves.
	unseen := []string{mustClient(t, worker).AccessToken, mustClient(t, es256).AccessToken,
		mustClient(t, eddsa).AccessToken, mustPassword(t, "bob").AccessToken}

	stoppedAt := time.Now()
	if err := keycloakScript("stop"); err != nil {
		t.Fatalf("scripts/keycloak.sh stop: %v", err)
	}
	if keycloakReady() {
		t.Fatal("Keycloak still answers after stop")
	}
	if !poll(3*refreshInterval+5*time.Second, func() bool { return src.Status().LastError != nil }) {
		t.Fatal("no failed refresh after Keycloak stopped")
	}
	st := src.Status()
	t.Logf("refresh failed %v after the stop: %v", st.LastErrorAt.Sub(stoppedAt).Round(time.Millisecond), st.LastError)
	if !st.Ready {
		t.Error("source not Ready during the outage")
	}
	lastGood := st.LastSuccess

	// A fresh verifier on the same source, without a token cache.
	fresh := newVerifier(t, src, func(c *keygate.Config) { c.CacheSize = -1 })
	srv := newServer(t, fresh, nil)
	for _, tok := range slices.Concat(seen, unseen) {
		mustVerify(t, fresh, tok)
		if status, _, _ := call(t, srv, "GET", "/orders", tok); status != 200 {
			t.Errorf("during the outage, token %s through the middleware: HTTP %d", short(tok), status)
		}
	}
	for _, tok := range seen {
		mustVerify(t, cached, tok)
	}
	t.Logf("during the outage: %d tokens validated from the cached keys (%d never seen before, token cache off)",
		len(seen)+len(unseen), len(unseen))

	restartAt := time.Now()
	if err := keycloakScript("start"); err != nil {
		t.Fatalf("scripts/keycloak.sh start: %v", err)
	}
	t.Logf("Keycloak back after %v", time.Since(restartAt).Round(time.Second))
	if !poll(3*refreshInterval+35*time.Second, func() bool {
		st := src.Status()
		return st.LastError == nil && st.LastSuccess.After(lastGood) && st.LastSuccess.After(restartAt)
	}) {
		t.Fatalf("no successful refresh after the restart: %v", src.Status().LastError)
	}
	st = src.Status()
	t.Logf("refresh succeeded again (LastSuccess advanced by %v; %d fetches, %d failed)",
		st.LastSuccess.Sub(lastGood).Round(time.Second), st.Fetches, st.Failures)

	// The script starts Keycloak on a fresh database, which re-imports the
	// realm with NEW keys (a production Keycloak keeps its keys across a
	// restart). So the refresh that just succeeded replaced every key: the
	// tokens of before the outage are now refused as signed by an unknown
	// key, by the cache-less verifier and by the caching one alike (its
	// entries die with their keys), while new tokens validate.
	for _, tok := range slices.Concat(seen, unseen) {
		mustRefuse(t, fresh, tok, keygate.ErrUnknownKey)
	}
	for _, tok := range seen {
		mustRefuse(t, cached, tok, keygate.ErrUnknownKey)
	}
	for _, c := range []client{worker, es256, eddsa} {
		tok := mustClient(t, c).AccessToken
		mustVerify(t, fresh, tok)
		mustVerify(t, cached, tok)
	}
}
