package keycloaktest_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/keycloaktest"
)

func TestDiscovery(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{Realm: "acme"})
	status, doc := getJSON(t, s, s.DiscoveryURL())
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if want := s.URL() + "/realms/acme"; s.Issuer() != want {
		t.Fatalf("Issuer() = %q, want %q", s.Issuer(), want)
	}
	for _, tc := range []struct{ field, want string }{
		{"issuer", s.Issuer()},
		{"jwks_uri", s.JWKSURL()},
		{"jwks_uri", s.Issuer() + "/protocol/openid-connect/certs"},
		{"token_endpoint", s.TokenURL()},
		{"token_endpoint", s.Issuer() + "/protocol/openid-connect/token"},
		{"introspection_endpoint", s.Issuer() + "/protocol/openid-connect/token/introspect"},
		{"authorization_endpoint", s.Issuer() + "/protocol/openid-connect/auth"},
	} {
		if got := doc[tc.field]; got != tc.want {
			t.Errorf("%s = %v, want %q", tc.field, got, tc.want)
		}
	}
	for _, tc := range []struct{ field, want string }{
		{"grant_types_supported", "client_credentials"},
		{"grant_types_supported", "password"},
		{"id_token_signing_alg_values_supported", "RS256"},
		{"id_token_signing_alg_values_supported", "ES256"},
		{"id_token_signing_alg_values_supported", "EdDSA"},
		{"response_types_supported", "code"},
		{"subject_types_supported", "public"},
		{"token_endpoint_auth_methods_supported", "client_secret_basic"},
		{"token_endpoint_auth_methods_supported", "client_secret_post"},
		{"scopes_supported", "openid"},
	} {
		if got := strs(doc[tc.field]); !slices.Contains(got, tc.want) {
			t.Errorf("%s = %v, want it to contain %q", tc.field, got, tc.want)
		}
	}
}

func TestUnknownRealmAndPath(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{})
	for _, path := range []string{
		"/realms/other/.well-known/openid-configuration",
		"/realms/other/protocol/openid-connect/certs",
		"/realms/test/protocol/openid-connect/nope",
		"/",
	} {
		resp, err := s.Client().Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
	}
	for _, e := range []keycloaktest.Endpoint{keycloaktest.EndpointDiscovery, keycloaktest.EndpointCerts} {
		if n := s.Requests(e); n != 0 {
			t.Errorf("Requests(%v) = %d after requests for another realm, want 0", e, n)
		}
	}
}

func TestCerts(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{})
	keys := fetchJWKS(t, s)
	if len(keys) != 2 {
		t.Fatalf("got %d keys, want 2: %+v", len(keys), keys)
	}
	var sig, enc []testJWK
	for _, k := range keys {
		if len(k.Kid) != 43 {
			t.Errorf("kid %q has length %d, want 43", k.Kid, len(k.Kid))
		}
		switch k.Use {
		case "sig":
			sig = append(sig, k)
		case "enc":
			enc = append(enc, k)
		}
	}
	if len(sig) != 1 || sig[0].Kty != "RSA" || sig[0].Alg != "RS256" || sig[0].Kid != s.ActiveKeyID("RS256") {
		t.Errorf("signing keys = %+v, want one RS256 key %s", sig, s.ActiveKeyID("RS256"))
	}
	if len(enc) != 1 || enc[0].Kty != "RSA" || enc[0].Alg != "RSA-OAEP" || enc[0].N == "" || enc[0].E != "AQAB" {
		t.Errorf("encryption keys = %+v, want one RSA-OAEP key", enc)
	}
	if got := s.KeyIDs(); !slices.Equal(got, []string{sig[0].Kid}) {
		t.Errorf("KeyIDs() = %v, want [%s]", got, sig[0].Kid)
	}
	if pub, err := sig[0].publicKey(); err != nil {
		t.Error(err)
	} else if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(s.PublicKey(sig[0].Kid)) {
		t.Error("published key differs from PublicKey()")
	}
}

func TestCertsETag(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{})
	get := func(inm string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.JWKSURL(), nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	first := get("")
	etag := first.Header.Get("ETag")
	if etag == "" || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag = %q", etag)
	}
	if cc := first.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", cc)
	}
	if ct := first.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, tc := range []struct {
		inm  string
		want int
	}{
		{etag, http.StatusNotModified},
		{"W/" + etag, http.StatusNotModified},
		{`"other", ` + etag, http.StatusNotModified},
		{"*", http.StatusNotModified},
		{`"other"`, http.StatusOK},
	} {
		resp := get(tc.inm)
		if resp.StatusCode != tc.want {
			t.Errorf("If-None-Match %s: status %d, want %d", tc.inm, resp.StatusCode, tc.want)
		}
		if resp.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: ETag %q, want %q", tc.inm, resp.Header.Get("ETag"), etag)
		}
	}
	if n := s.Requests(keycloaktest.EndpointCerts); n != 6 {
		t.Errorf("Requests(EndpointCerts) = %d, want 6", n)
	}

	if _, err := s.AddKey("ES256"); err != nil {
		t.Fatal(err)
	}
	resp := get(etag)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag {
		t.Errorf("after AddKey: status %d, ETag %q; want 200 and a new ETag", resp.StatusCode, resp.Header.Get("ETag"))
	}
}

func TestLifecycle(t *testing.T) {
	s, err := keycloaktest.NewUnstartedServer(keycloaktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q before Start", s.URL())
	}
	if _, err := s.MintToken(keycloaktest.Token{}); err != nil {
		t.Errorf("MintToken before Start: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	fetchJWKS(t, s)
	s.Close()
	s.Close()
	if err := s.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
	if _, err := http.Get(s.JWKSURL()); err == nil {
		t.Error("request after Close succeeded")
	}

	// Closing an unstarted server releases its listener.
	u, err := keycloaktest.NewUnstartedServer(keycloaktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
}

func TestFixedAddrAndBaseURL(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{Addr: "0.0.0.0:0", BaseURL: "https://sso.example.com/"})
	if got, want := s.Issuer(), "https://sso.example.com/realms/test"; got != want {
		t.Errorf("Issuer() = %q, want %q", got, want)
	}
	// The server is reachable on loopback, and its documents use BaseURL.
	status, doc := getJSON(t, s, "http://"+s.Addr().String()+"/realms/test/.well-known/openid-configuration")
	if status != http.StatusOK || doc["jwks_uri"] != "https://sso.example.com/realms/test/protocol/openid-connect/certs" {
		t.Errorf("status %d, jwks_uri %v", status, doc["jwks_uri"])
	}
	_, claims := decodeJWT(t, s.MustMint(t, keycloaktest.Token{}))
	if claims["iss"] != s.Issuer() {
		t.Errorf("iss = %v", claims["iss"])
	}

	// With an unspecified listen host and no BaseURL, URL uses loopback.
	s2 := keycloaktest.New(t, keycloaktest.Config{Addr: "0.0.0.0:0"})
	if !strings.HasPrefix(s2.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q", s2.URL())
	}
	fetchJWKS(t, s2)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  keycloaktest.Config
	}{
		{"bad realm alg", keycloaktest.Config{Algorithm: "HS256"}},
		{"bad client alg", keycloaktest.Config{Clients: []keycloaktest.Client{{ID: "a", Algorithm: "none"}}}},
		{"empty client ID", keycloaktest.Config{Clients: []keycloaktest.Client{{}}}},
		{"duplicate client", keycloaktest.Config{Clients: []keycloaktest.Client{{ID: "a"}, {ID: "a"}}}},
		{"empty username", keycloaktest.Config{Users: []keycloaktest.User{{}}}},
		{"duplicate user", keycloaktest.Config{Users: []keycloaktest.User{{Username: "Bob"}, {Username: "bob"}}}},
		{"negative lifespan", keycloaktest.Config{AccessTokenLifespan: -time.Second}},
		{"bad BaseURL", keycloaktest.Config{BaseURL: "sso.example.com"}},
		{"bad Addr", keycloaktest.Config{Addr: "256.0.0.1:0"}},
		{"SigningKeys of wrong type", keycloaktest.Config{SigningKeys: map[string]crypto.Signer{"RS256": ed25519.NewKeyFromSeed(make([]byte, 32))}}},
		{"SigningKeys on wrong curve", keycloaktest.Config{SigningKeys: map[string]crypto.Signer{"ES384": mustECKey(t)}}},
		{"SigningKeys nil key", keycloaktest.Config{SigningKeys: map[string]crypto.Signer{"ES256": nil}}},
		{"SigningKeys bad alg", keycloaktest.Config{SigningKeys: map[string]crypto.Signer{"HS256": mustECKey(t)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := keycloaktest.NewServer(tc.cfg); err == nil {
				s.Close()
				t.Error("NewServer succeeded")
			}
		})
	}
}

func mustECKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSigningKeys(t *testing.T) {
	es, ed := mustECKey(t), ed25519.NewKeyFromSeed(make([]byte, 32))
	cfg := keycloaktest.Config{
		Algorithm:   "ES256",
		SigningKeys: map[string]crypto.Signer{"ES256": es, "EdDSA": ed},
		Clients:     []keycloaktest.Client{{ID: "app", Algorithm: "ES384"}},
	}
	a, b := keycloaktest.New(t, cfg), keycloaktest.New(t, cfg)
	if a.ActiveKeyID("ES256") == b.ActiveKeyID("ES256") {
		t.Error("servers sharing a key share its key ID")
	}
	for _, s := range []*keycloaktest.Server{a, b} {
		if !es.PublicKey.Equal(s.PublicKey(s.ActiveKeyID("ES256"))) {
			t.Error("active ES256 key is not SigningKeys[ES256]")
		}
		if !ed.Public().(ed25519.PublicKey).Equal(s.PublicKey(s.ActiveKeyID("EdDSA"))) {
			t.Error("active EdDSA key is not SigningKeys[EdDSA]")
		}
		if len(s.KeyIDs()) != 3 || s.ActiveKeyID("ES384") == "" {
			t.Errorf("KeyIDs() = %v, want ES256, ES384 (generated) and EdDSA keys", s.KeyIDs())
		}
		keys := fetchJWKS(t, s)
		for _, tok := range []keycloaktest.Token{{}, {Client: "app"}, {Algorithm: "EdDSA"}} {
			if err := verifyJWT(s.MustMint(t, tok), keys); err != nil {
				t.Errorf("%+v: %v", tok, err)
			}
		}
	}
}

func TestFaults(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{})
	get := func(ctx context.Context) (*http.Response, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.JWKSURL(), nil)
		resp, err := s.Client().Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	isJWKS := func(body []byte) bool {
		var set struct{ Keys []testJWK }
		return json.Unmarshal(body, &set) == nil && len(set.Keys) > 0
	}

	for _, tc := range []struct {
		name       string
		fault      keycloaktest.Fault
		timeout    time.Duration
		wantErr    bool
		wantStatus int
		wantBody   string // "" for a valid JWK set
		wantCT     string
	}{
		{name: "status", fault: keycloaktest.Fault{Status: 503}, wantStatus: 503, wantBody: "-"},
		{name: "garbage", fault: keycloaktest.Fault{Body: []byte("{not json")}, wantStatus: 200, wantBody: "{not json", wantCT: "application/json"},
		{name: "html error page", fault: keycloaktest.Fault{
			Status: 502, Body: []byte("<html>Bad Gateway</html>"), Header: http.Header{"Content-Type": {"text/html"}},
		}, wantStatus: 502, wantBody: "<html>Bad Gateway</html>", wantCT: "text/html"},
		{name: "drop", fault: keycloaktest.Fault{Drop: true}, wantErr: true},
		{name: "short delay", fault: keycloaktest.Fault{Delay: 50 * time.Millisecond}, wantStatus: 200},
		{name: "delay beyond client timeout", fault: keycloaktest.Fault{Delay: time.Hour}, timeout: 100 * time.Millisecond, wantErr: true},
		{name: "hang", fault: keycloaktest.Fault{Hang: true}, timeout: 100 * time.Millisecond, wantErr: true},
		{name: "delay then status", fault: keycloaktest.Fault{Delay: 20 * time.Millisecond, Status: 500}, wantStatus: 500, wantBody: "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.SetFault(keycloaktest.EndpointCerts, &tc.fault)
			defer s.SetFault(keycloaktest.EndpointCerts, nil)
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			resp, body, err := get(ctx)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("request succeeded with status %d", resp.StatusCode)
				}
				if tc.timeout > 0 && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want deadline exceeded", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			switch tc.wantBody {
			case "":
				if !isJWKS(body) {
					t.Errorf("body %q is not a JWK set", body)
				}
			case "-":
				if len(body) != 0 {
					t.Errorf("body %q, want empty", body)
				}
			default:
				if string(body) != tc.wantBody {
					t.Errorf("body %q, want %q", body, tc.wantBody)
				}
			}
			if tc.wantCT != "" && resp.Header.Get("Content-Type") != tc.wantCT {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.wantCT)
			}
			if tc.fault.Delay > 0 && time.Since(start) < tc.fault.Delay {
				t.Errorf("answered after %v, before the delay %v", time.Since(start), tc.fault.Delay)
			}
		})
	}

	// After clearing, the endpoint serves normally again, and other
	// endpoints were never affected.
	if _, body, err := get(t.Context()); err != nil || !isJWKS(body) {
		t.Errorf("after clearing: %v, %q", err, body)
	}
}

func TestFaultCount(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{})
	s.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Status: 503, Count: 2})
	var got []int
	for range 4 {
		resp, err := s.Client().Get(s.DiscoveryURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	if want := []int{503, 503, 200, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	// Faults are per endpoint.
	fetchJWKS(t, s)
}

func TestFaultIsCopied(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{})
	f := &keycloaktest.Fault{Status: 503, Body: []byte("down")}
	s.SetFault(keycloaktest.EndpointCerts, f)
	f.Status, f.Body[0] = 200, 'X'
	resp, err := s.Client().Get(s.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(body) != "down" {
		t.Errorf("got %d %q, want 503 \"down\"", resp.StatusCode, body)
	}
}

func TestCloseEndsHangingRequests(t *testing.T) {
	s, err := keycloaktest.NewServer(keycloaktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Hang: true})
	s.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Delay: time.Hour})

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, u := range []string{s.JWKSURL(), s.DiscoveryURL()} {
		wg.Go(func() {
			resp, err := s.Client().Get(u) // no client timeout
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Requests(keycloaktest.EndpointCerts) == 0 || s.Requests(keycloaktest.EndpointDiscovery) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("requests did not arrive")
		}
		time.Sleep(5 * time.Millisecond)
	}

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on delayed requests")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Error("hanging request got a response")
		}
	}
}

func TestRequests(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{
		Clients: []keycloaktest.Client{{ID: "svc", Secret: "x", ServiceAccount: true}},
	})
	for range 3 {
		fetchJWKS(t, s)
	}
	getJSON(t, s, s.DiscoveryURL())
	mustToken(t, s, url.Values{"grant_type": {"client_credentials"}}, []string{"svc", "x"})
	tokenRequest(t, s, url.Values{"grant_type": {"client_credentials"}}, []string{"svc", "wrong"})
	s.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 500})
	resp, err := s.Client().Get(s.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for e, want := range map[keycloaktest.Endpoint]int{
		keycloaktest.EndpointCerts:     4,
		keycloaktest.EndpointDiscovery: 1,
		keycloaktest.EndpointToken:     2,
	} {
		if got := s.Requests(e); got != want {
			t.Errorf("Requests(%v) = %d, want %d", e, got, want)
		}
	}
}

func TestEndpointString(t *testing.T) {
	for e, want := range map[keycloaktest.Endpoint]string{
		keycloaktest.EndpointDiscovery: "discovery",
		keycloaktest.EndpointCerts:     "certs",
		keycloaktest.EndpointToken:     "token",
		keycloaktest.Endpoint(42):      "Endpoint(42)",
	} {
		if got := e.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(e), got, want)
		}
	}
}

// TestConcurrentUse exercises serving, minting, key rotation and faults at
// once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{
		Algorithm: "ES256",
		Clients:   []keycloaktest.Client{{ID: "svc", Secret: "x", ServiceAccount: true}},
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				resp, err := s.Client().Get(s.JWKSURL())
				if err == nil {
					resp.Body.Close()
				}
				resp, err = s.Client().PostForm(s.TokenURL(), url.Values{
					"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {"x"},
				})
				if err != nil {
					t.Error(err)
				} else {
					resp.Body.Close()
				}
				if _, err := s.MintToken(keycloaktest.Token{}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			kid, err := s.AddKey("ES256")
			if err != nil {
				t.Error(err)
				return
			}
			s.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Delay: time.Millisecond})
			s.KeyIDs()
			s.RemoveKey(kid)
			s.SetFault(keycloaktest.EndpointDiscovery, nil)
			s.Requests(keycloaktest.EndpointCerts)
		}
	})
	wg.Wait()
	if n := s.Requests(keycloaktest.EndpointCerts); n != 40 {
		t.Errorf("Requests(EndpointCerts) = %d, want 40", n)
	}
}
