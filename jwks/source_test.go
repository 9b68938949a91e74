package jwks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// clock is a settable time source for MaxStale and rate-limit tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newSource(t *testing.T, cfg jwks.Config) *jwks.Source {
	t.Helper()
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Second}
	}
	s, err := jwks.NewSource(cfg)
	if err != nil {
		t.Fatalf("NewSource() = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitReady(t *testing.T, s *jwks.Source) {
	t.Helper()
	select {
	case <-s.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("source not ready; status %+v", s.Status())
	}
}

func TestDiscovery(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	s := newSource(t, jwks.Config{Issuer: idp.Issuer()})
	s.Start()
	waitReady(t, s)
	kid := idp.ActiveKeyID("RS256")
	k, err := s.Key(context.Background(), kid)
	if err != nil {
		t.Fatalf("Key(%q) = %v", kid, err)
	}
	if k.ID != kid || k.Type != "RSA" || k.Algorithm != "RS256" {
		t.Errorf("Key() = %+v; want kid %q, RSA, RS256", k, kid)
	}
	st := s.Status()
	if !st.Ready || st.URL != idp.JWKSURL() || st.LastError != nil || st.LastSuccess.IsZero() {
		t.Errorf("Status() = %+v; want ready from %s", st, idp.JWKSURL())
	}
	// Keycloak publishes an RSA-OAEP encryption key: skipped, and reported
	// as not for signatures.
	if len(st.KeyIDs) != 1 || len(st.Skipped) != 1 || !st.Skipped[0].NotForSignatures {
		t.Errorf("Status() kids %v skipped %+v; want the signing key, and the encryption key skipped", st.KeyIDs, st.Skipped)
	}
	if n := idp.Requests(keycloaktest.EndpointDiscovery); n != 1 {
		t.Errorf("discovery requests = %d; want 1", n)
	}
}

func TestDirectURLSkipsDiscovery(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	// The issuer in tokens may be a public name the service cannot reach;
	// with URL set it is never contacted.
	s := newSource(t, jwks.Config{Issuer: "https://public.example.com/realms/test", URL: idp.JWKSURL()})
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh() = %v", err)
	}
	if n := idp.Requests(keycloaktest.EndpointDiscovery); n != 0 {
		t.Errorf("discovery requests = %d; want 0", n)
	}
	if _, err := s.Key(context.Background(), idp.ActiveKeyID("RS256")); err != nil {
		t.Errorf("Key() = %v", err)
	}
}

func TestDiscoveryFailures(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"issuer mismatch", `{"issuer":"https://evil.example.com/realms/test","jwks_uri":"%ISS%/protocol/openid-connect/certs"}`, "does not equal the configured issuer"},
		{"trailing slash is a mismatch", `{"issuer":"%ISS%/","jwks_uri":"%ISS%/protocol/openid-connect/certs"}`, "does not equal the configured issuer"},
		{"no jwks_uri", `{"issuer":"%ISS%"}`, "no jwks_uri"},
		{"garbage", `<html>`, "not a JSON discovery document"},
		{"http jwks_uri elsewhere", `{"issuer":"%ISS%","jwks_uri":"http://keys.example.com/certs"}`, "plain http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := keycloaktest.New(t, keycloaktest.Config{})
			iss := idp.Issuer()
			idp.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Status: 200, Body: []byte(strings.ReplaceAll(tt.doc, "%ISS%", iss))})
			s := newSource(t, jwks.Config{Issuer: iss})
			err := s.Refresh(context.Background())
			var fe *jwks.FetchError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Refresh() = %v; want a FetchError containing %q", err, tt.want)
			}
			if _, err := s.Key(context.Background(), "x"); !errors.Is(err, jwks.ErrUnavailable) {
				t.Errorf("Key() = %v; want ErrUnavailable", err)
			}
		})
	}
}

func TestFetchFaultsKeepLastGoodSet(t *testing.T) {
	tests := []struct {
		name  string
		fault keycloaktest.Fault
		want  string
	}{
		{"500", keycloaktest.Fault{Status: 500, Body: []byte("oops")}, "HTTP 500"},
		{"garbage", keycloaktest.Fault{Status: 200, Body: []byte("{{{{")}, "not a JSON key set"},
		{"no keys member", keycloaktest.Fault{Status: 200, Body: []byte(`{"foo":[]}`)}, `no "keys" array`},
		{"only unusable keys", keycloaktest.Fault{Status: 200, Body: []byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`)}, "no usable signature key"},
		{"oversized", keycloaktest.Fault{Status: 200, Body: []byte(`{"keys":[` + strings.Repeat(" ", 2<<20) + `]}`)}, "larger than"},
		{"hang", keycloaktest.Fault{Hang: true}, "Timeout"},
		{"dropped connection", keycloaktest.Fault{Drop: true}, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := keycloaktest.New(t, keycloaktest.Config{})
			s := newSource(t, jwks.Config{URL: idp.JWKSURL(), HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
			ctx := context.Background()
			if err := s.Refresh(ctx); err != nil {
				t.Fatalf("first Refresh() = %v", err)
			}
			kid := idp.ActiveKeyID("RS256")
			before, _ := s.Key(ctx, kid)
			f := tt.fault
			idp.SetFault(keycloaktest.EndpointCerts, &f)
			err := s.Refresh(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Refresh() = %v; want an error containing %q", err, tt.want)
			}
			after, err := s.Key(ctx, kid)
			if err != nil || after != before {
				t.Fatalf("Key() after failed refresh = %v, %v; want the last good key", after, err)
			}
			st := s.Status()
			if st.LastError == nil || st.Failures != 1 || !st.Ready {
				t.Errorf("Status() = %+v; want ready with one failure recorded", st)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	s := newSource(t, jwks.Config{URL: idp.JWKSURL(), Now: clk.Now})
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	oldKid := idp.ActiveKeyID("RS256")
	oldKey, _ := s.Key(ctx, oldKid)

	newKid, err := idp.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	fetches := idp.Requests(keycloaktest.EndpointCerts)
	k, err := s.Key(ctx, newKid)
	if err != nil || k.ID != newKid {
		t.Fatalf("Key(new kid) = %v, %v; want the new key after one refetch", k, err)
	}
	if got := idp.Requests(keycloaktest.EndpointCerts) - fetches; got != 1 {
		t.Errorf("certs requests for a new kid = %d; want 1", got)
	}
	if again, _ := s.Key(ctx, oldKid); again != oldKey || oldKey.Retired() {
		t.Errorf("old key after refetch = %p (retired %v); want the same, live key %p", again, oldKey.Retired(), oldKey)
	}

	idp.RemoveKey(oldKid)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !oldKey.Retired() {
		t.Error("removed key not retired after refresh")
	}
	clk.Advance(time.Minute) // past the refetch limit: the refetch happens and still misses
	if _, err := s.Key(ctx, oldKid); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Errorf("Key(removed kid) = %v; want ErrUnknownKey", err)
	}
}

func TestUnknownKidFlood(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	s := newSource(t, jwks.Config{URL: idp.JWKSURL(), Now: clk.Now, MinRefetchInterval: 10 * time.Second})
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	before := idp.Requests(keycloaktest.EndpointCerts)

	const n = 200
	var wg sync.WaitGroup
	var unknown atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kid := "attacker-" + string(rune('a'+i%26))
			if _, err := s.Key(ctx, kid); errors.Is(err, jwks.ErrUnknownKey) {
				unknown.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := idp.Requests(keycloaktest.EndpointCerts) - before; got != 1 {
		t.Errorf("certs requests during a flood of %d unknown kids = %d; want 1", n, got)
	}
	if unknown.Load() != n {
		t.Errorf("ErrUnknownKey answers = %d; want %d", unknown.Load(), n)
	}

	clk.Advance(9 * time.Second)
	s.Key(ctx, "still-limited")
	if got := idp.Requests(keycloaktest.EndpointCerts) - before; got != 1 {
		t.Errorf("certs requests inside the window = %d; want 1", got)
	}
	clk.Advance(2 * time.Second)
	s.Key(ctx, "next-window")
	if got := idp.Requests(keycloaktest.EndpointCerts) - before; got != 2 {
		t.Errorf("certs requests after the window = %d; want 2", got)
	}
	if st := s.Status(); st.KidFetches != 2 {
		t.Errorf("Status().KidFetches = %d; want 2", st.KidFetches)
	}
}

func TestDownAtStart(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	// The provider hangs, and the client waits an hour: were Start to wait
	// for the first fetch, this test would hang until go test's timeout.
	idp.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Hang: true})
	s := newSource(t, jwks.Config{Issuer: idp.Issuer(), HTTPClient: &http.Client{Timeout: time.Hour}})
	s.Start()
	ctx := context.Background()
	for idp.Requests(keycloaktest.EndpointDiscovery) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Key(ctx, "any"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Fatalf("Key() while the provider hangs = %v; want ErrUnavailable", err)
	}
	// Now it answers 503: the hung fetch is cancelled by Close at the end;
	// a source with the usual client retries until the provider is back.
	s.Close()
	idp.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Status: 503})
	s = newSource(t, jwks.Config{Issuer: idp.Issuer()})
	s.Start()
	for idp.Requests(keycloaktest.EndpointDiscovery) < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Key(ctx, "any"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Fatalf("Key() while the provider is down = %v; want ErrUnavailable", err)
	}
	if s.Status().Ready {
		t.Error("Status().Ready = true while no keys were fetched")
	}
	idp.SetFault(keycloaktest.EndpointDiscovery, nil)
	waitReady(t, s) // the background retry recovers without any request's help
	if _, err := s.Key(ctx, idp.ActiveKeyID("RS256")); err != nil {
		t.Errorf("Key() after recovery = %v", err)
	}
}

func TestDownLaterServesStaleKeysUntilMaxStale(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	s := newSource(t, jwks.Config{URL: idp.JWKSURL(), Now: clk.Now, MaxStale: time.Hour})
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	kid := idp.ActiveKeyID("RS256")
	key, _ := s.Key(ctx, kid)
	idp.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 502})

	clk.Advance(59 * time.Minute)
	if err := s.Refresh(ctx); err == nil {
		t.Fatal("Refresh() = nil while the provider is down")
	}
	if k, err := s.Key(ctx, kid); err != nil || k != key {
		t.Fatalf("Key() with 59-minute-old keys = %v, %v; want the cached key", k, err)
	}
	clk.Advance(2 * time.Minute)
	if _, err := s.Key(ctx, kid); !errors.Is(err, jwks.ErrUnavailable) {
		t.Fatalf("Key() past MaxStale = %v; want ErrUnavailable", err)
	}
	s.Refresh(ctx) // fails again and drops the expired set
	if !key.Retired() || s.Status().Ready {
		t.Errorf("after a failed refresh past MaxStale: retired %v, ready %v; want true, false", key.Retired(), s.Status().Ready)
	}

	idp.SetFault(keycloaktest.EndpointCerts, nil)
	if err := s.Refresh(ctx); err != nil {
		t.Fatalf("Refresh() after recovery = %v", err)
	}
	k, err := s.Key(ctx, kid)
	if err != nil || k.Retired() {
		t.Fatalf("Key() after recovery = %v, %v; want a live key", k, err)
	}
}

func TestConditionalGet(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	var inm []string
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inm = append(inm, r.Header.Get("If-None-Match"))
		mu.Unlock()
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, idp.JWKSURL(), nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 32<<10)
		n, _ := resp.Body.Read(buf)
		w.Write(buf[:n])
	}))
	t.Cleanup(proxy.Close)
	s := newSource(t, jwks.Config{URL: proxy.URL})
	ctx := context.Background()
	for range 2 {
		if err := s.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(inm) != 2 || inm[0] != "" || inm[1] == "" {
		t.Errorf("If-None-Match sent = %q; want none, then the ETag", inm)
	}
	if st := s.Status(); st.Failures != 0 || !st.Ready {
		t.Errorf("Status() after a 304 = %+v; want ready, no failures", st)
	}
}

func TestNewSourceChecksConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  jwks.Config
		want string // "" means valid
	}{
		{"empty", jwks.Config{}, "Config.Issuer and URL are both empty"},
		{"https", jwks.Config{Issuer: "https://kc.example.com/realms/a"}, ""},
		{"loopback http", jwks.Config{URL: "http://127.0.0.1:8080/certs"}, ""},
		{"localhost http", jwks.Config{URL: "http://localhost:8080/certs"}, ""},
		{"a name under .localhost is not loopback", jwks.Config{URL: "http://evil.localhost:8080/certs"}, "plain http"},
		{"ipv6 loopback http", jwks.Config{URL: "http://[::1]:8080/certs"}, ""},
		{"remote http", jwks.Config{URL: "http://kc.internal/certs"}, "plain http"},
		{"remote http allowed", jwks.Config{URL: "http://kc.internal/certs", InsecureAllowHTTP: true}, ""},
		{"ftp", jwks.Config{URL: "ftp://kc.example.com/certs"}, "must start with https://"},
		{"no host", jwks.Config{URL: "https:///certs"}, "no host"},
		{"negative", jwks.Config{URL: "https://a/b", MaxStale: -1}, "Config.MaxStale is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := jwks.NewSource(tt.cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("NewSource() = %v; want %q", err, tt.want)
			}
			var ce *jwks.ConfigError
			if err != nil && !errors.As(err, &ce) {
				t.Errorf("NewSource() error is %T; want *jwks.ConfigError", err)
			}
		})
	}
}

func TestCloseWithoutStart(t *testing.T) {
	s, err := jwks.NewSource(jwks.Config{URL: "https://kc.example.com/certs"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
}
