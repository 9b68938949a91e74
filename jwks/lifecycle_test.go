package jwks_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

// funcHandler is a slog.Handler that hands each record to a function.
type funcHandler struct{ fn func(slog.Record) }

func (h funcHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h funcHandler) Handle(_ context.Context, r slog.Record) error { h.fn(r); return nil }
func (h funcHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h funcHandler) WithGroup(string) slog.Handler                 { return h }

// recordText renders a log record with its attributes, for searching.
func recordText(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	return b.String()
}

// waitFor polls cond until it holds; the deadline only guards against a
// hang and is not a measurement.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An unknown kid whose refetch cannot reach the provider is an outage, not
// a forgery: ErrUnavailable (503), never ErrUnknownKey (401), until the
// provider answers again; then the new key resolves within one
// MinRefetchInterval.
func TestRotationDuringOutage(t *testing.T) {
	tests := []struct {
		name  string
		fault keycloaktest.Fault
	}{
		{"503", keycloaktest.Fault{Status: 503}},
		{"hang", keycloaktest.Fault{Hang: true}},
		{"garbage", keycloaktest.Fault{Status: 200, Body: []byte("<html>")}},
		{"dropped connection", keycloaktest.Fault{Drop: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := keycloaktest.New(t, keycloaktest.Config{})
			clk := newClock()
			const interval = 10 * time.Second
			// The client timeout ends the hung fetch; it is not measured.
			s := newSource(t, jwks.Config{URL: idp.JWKSURL(), Now: clk.Now, MinRefetchInterval: interval,
				HTTPClient: &http.Client{Timeout: time.Second}})
			ctx := context.Background()
			if err := s.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			k2, err := idp.AddKey("RS256")
			if err != nil {
				t.Fatal(err)
			}
			f := tt.fault
			idp.SetFault(keycloaktest.EndpointCerts, &f)

			_, err = s.Key(ctx, k2)
			if !errors.Is(err, jwks.ErrUnavailable) || errors.Is(err, jwks.ErrUnknownKey) || !strings.Contains(err.Error(), k2) {
				t.Fatalf("Key(new kid) while the refetch fails = %v; want ErrUnavailable naming %q", err, k2)
			}
			// Rate limited while the last fetch failed: still an outage.
			_, err = s.Key(ctx, k2)
			if !errors.Is(err, jwks.ErrUnavailable) || errors.Is(err, jwks.ErrUnknownKey) {
				t.Fatalf("Key(new kid) rate limited after a failed fetch = %v; want ErrUnavailable", err)
			}

			idp.SetFault(keycloaktest.EndpointCerts, nil)
			clk.Advance(interval)
			k, err := s.Key(ctx, k2)
			if err != nil || k.ID != k2 {
				t.Fatalf("Key(new kid) one MinRefetchInterval after the provider came back = %v, %v; want the key", k, err)
			}

			// A kid a successful fetch lacks is a forgery, rate limited or not.
			clk.Advance(interval)
			if _, err := s.Key(ctx, "forged"); !errors.Is(err, jwks.ErrUnknownKey) {
				t.Errorf("Key(forged) after a successful refetch = %v; want ErrUnknownKey", err)
			}
			if _, err := s.Key(ctx, "forged-too"); !errors.Is(err, jwks.ErrUnknownKey) {
				t.Errorf("Key(forged) rate limited after a successful fetch = %v; want ErrUnknownKey", err)
			}
		})
	}
}

func TestKeyErrorCapsKid(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	s := newSource(t, jwks.Config{URL: idp.JWKSURL(), Now: clk.Now})
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	kid := strings.Repeat("k", 10_000)
	for _, down := range []bool{false, true} {
		if down {
			idp.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 503})
		}
		clk.Advance(time.Hour)
		_, err := s.Key(ctx, kid)
		if err == nil || len(err.Error()) > 1000 || !strings.Contains(err.Error(), kid[:64]) {
			t.Errorf("Key(10 KB kid), provider down %v = %d-byte error; want under 1000 bytes quoting the kid's start", down, len(err.Error()))
		}
	}
}

// A waiter gives up with its ctx while the shared refetch hangs, and Close
// ends that refetch and waits for it: nothing logs after Close returns.
func TestCloseWaitsForRefetch(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	var closed atomic.Bool
	var logs atomic.Int32
	logger := slog.New(funcHandler{func(r slog.Record) {
		if closed.Load() {
			t.Errorf("logged after Close returned: %s", recordText(r))
		}
		logs.Add(1)
	}})
	// No timeout short enough to end the hang: only Close does.
	s, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL(), Logger: logger, HTTPClient: &http.Client{Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	k2, err := idp.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	idp.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Hang: true})

	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := s.Key(ctx, k2)
		res <- err
	}()
	waitFor(t, "the refetch to reach the provider", func() bool { return idp.Requests(keycloaktest.EndpointCerts) == 2 })
	cancel()
	if err := <-res; !errors.Is(err, jwks.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Key() given up while the refetch hangs = %v; want ErrUnavailable wrapping context.Canceled", err)
	}

	s.Close()
	closed.Store(true)
	if st := s.Status(); st.Fetches != 2 {
		t.Errorf("Status().Fetches after Close = %d; want 2: Close must wait for the hung refetch to end", st.Fetches)
	}
	if err := s.Refresh(context.Background()); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("Refresh() after Close = %v; want ErrUnavailable", err)
	}
	if _, err := s.Key(context.Background(), "other"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("Key(unknown) after Close = %v; want ErrUnavailable", err)
	}
	if n := idp.Requests(keycloaktest.EndpointCerts); n != 2 {
		t.Errorf("certs requests after Close = %d; want no new fetch", n)
	}
	s.Start() // after Close: does nothing
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

// Close also waits for the background loop's fetch, and a source closed
// while started logs nothing afterwards.
func TestCloseWhileStarted(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	idp.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Hang: true})
	var closed atomic.Bool
	logger := slog.New(funcHandler{func(r slog.Record) {
		if closed.Load() {
			t.Errorf("logged after Close returned: %s", recordText(r))
		}
	}})
	s, err := jwks.NewSource(jwks.Config{Issuer: idp.Issuer(), Logger: logger, HTTPClient: &http.Client{Timeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	waitFor(t, "the first fetch to reach the provider", func() bool { return idp.Requests(keycloaktest.EndpointDiscovery) == 1 })
	s.Close()
	closed.Store(true)
	if st := s.Status(); st.Fetches != 1 {
		t.Errorf("Status().Fetches after Close = %d; want 1", st.Fetches)
	}
}

// roundTripper answers requests with a handler, without a network.
type roundTripper struct{ h http.Handler }

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	rt.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// The client's Timeout is the only timeout: no hidden cap shortens it, and
// a client without one gets DefaultTimeout.
func TestTimeoutIsTheClientTimeout(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		min, max time.Duration // bounds of the request's deadline from now
	}{
		{"an hour", time.Hour, 50 * time.Minute, time.Hour},
		{"zero means the default", 0, time.Nanosecond, jwks.DefaultTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var deadline time.Time
			var ok bool
			rt := roundTripper{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				deadline, ok = r.Context().Deadline()
				w.WriteHeader(503)
			})}
			s := newSource(t, jwks.Config{URL: "https://kc.example.com/certs", HTTPClient: &http.Client{Transport: rt, Timeout: tt.timeout}})
			before := time.Now()
			s.Refresh(context.Background())
			after := time.Now()
			if !ok {
				t.Fatalf("request had no deadline; want one %v from now", tt.max)
			}
			if deadline.Sub(before) < tt.min || deadline.Sub(after) > tt.max {
				t.Errorf("request deadline %v from the start of Refresh; want within [%v, %v]", deadline.Sub(before), tt.min, tt.max)
			}
		})
	}
}

// keysHandler serves the JWK set of idp at every path.
func keysHandler(t *testing.T, idp *keycloaktest.Server) http.Handler {
	t.Helper()
	resp, err := http.Get(idp.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
}

// Every redirect target obeys the scheme rule of the first URL, and a
// client's own CheckRedirect still runs.
func TestRedirects(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	keys := keysHandler(t, idp)
	errNoRedirects := errors.New("no redirects here")
	tests := []struct {
		name     string
		to       string
		insecure bool
		check    func(*http.Request, []*http.Request) error
		want     string // "" means the keys are fetched
	}{
		{"https to https", "https://keys.example.com/certs", false, nil, ""},
		{"https to remote http", "http://keys.example.com/certs", false, nil, "plain http"},
		{"https to remote http with credentials", "http://user:s3cret@keys.example.com/certs?sig=t0ken", false, nil, "plain http"},
		{"https to remote http allowed", "http://keys.example.com/certs", true, nil, ""},
		{"https to loopback http", "http://127.0.0.1:8080/certs", false, nil, ""},
		{"https to another scheme", "ftp://keys.example.com/certs", true, nil, "must start with https://"},
		{"own CheckRedirect kept", "https://keys.example.com/certs", false,
			func(*http.Request, []*http.Request) error { return errNoRedirects }, errNoRedirects.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := roundTripper{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Host == "idp.example.com" {
					http.Redirect(w, r, tt.to, http.StatusFound)
					return
				}
				keys.ServeHTTP(w, r)
			})}
			var logged strings.Builder
			var mu sync.Mutex
			logger := slog.New(funcHandler{func(r slog.Record) {
				mu.Lock()
				logged.WriteString(recordText(r) + "\n")
				mu.Unlock()
			}})
			s := newSource(t, jwks.Config{
				URL:               "https://idp.example.com/realms/test/protocol/openid-connect/certs",
				InsecureAllowHTTP: tt.insecure,
				HTTPClient:        &http.Client{Transport: rt, Timeout: 10 * time.Second, CheckRedirect: tt.check},
				Logger:            logger,
			})
			err := s.Refresh(context.Background())
			if tt.want == "" {
				if err != nil || s.Keys() == nil {
					t.Fatalf("Refresh() = %v; want the keys fetched", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || s.Keys() != nil {
				t.Fatalf("Refresh() = %v, keys %v; want an error containing %q and no keys", err, s.Keys(), tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, secret := range []string{"s3cret", "t0ken"} {
				for what, text := range map[string]string{"error": err.Error(), "log": logged.String()} {
					if strings.Contains(text, secret) {
						t.Errorf("%s shows %q: %s", what, secret, text)
					}
				}
			}
		})
	}
}

// URLs show without userinfo and query wherever the source prints them;
// the credentials are still sent.
func TestURLsRedacted(t *testing.T) {
	var auth atomic.Value
	rt := roundTripper{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		auth.Store(user + ":" + pass + "?" + r.URL.RawQuery)
		w.WriteHeader(503)
	})}
	var logged strings.Builder
	var mu sync.Mutex
	logger := slog.New(funcHandler{func(r slog.Record) {
		mu.Lock()
		logged.WriteString(recordText(r) + "\n")
		mu.Unlock()
	}})
	s := newSource(t, jwks.Config{
		URL:        "https://keys:s3cret@kc.example.com/certs?sig=t0ken",
		HTTPClient: &http.Client{Transport: rt, Timeout: 10 * time.Second},
		Logger:     logger,
	})
	err := s.Refresh(context.Background())
	if err == nil {
		t.Fatal("Refresh() = nil; want HTTP 503")
	}
	if got := auth.Load(); got != "keys:s3cret?sig=t0ken" {
		t.Errorf("request sent credentials and query %q; want them as configured", got)
	}
	st := s.Status()
	if st.URL != "https://kc.example.com/certs" {
		t.Errorf("Status().URL = %q; want https://kc.example.com/certs", st.URL)
	}
	var fe *jwks.FetchError
	if !errors.As(err, &fe) || fe.URL != st.URL {
		t.Errorf("Refresh() = %v; want a FetchError for %s", err, st.URL)
	}
	_, badErr := jwks.NewSource(jwks.Config{URL: "https://keys:s3cret@kc.example.com:port/certs?sig=t0ken"})
	if badErr == nil {
		t.Fatal("NewSource(bad port) = nil")
	}
	mu.Lock()
	defer mu.Unlock()
	for what, text := range map[string]string{
		"Refresh error":      err.Error(),
		"Status().LastError": st.LastError.Error(),
		"log":                logged.String(),
		"NewSource error":    badErr.Error(),
	} {
		if strings.Contains(text, "s3cret") || strings.Contains(text, "t0ken") {
			t.Errorf("%s shows a secret: %s", what, text)
		}
	}
	if !strings.Contains(logged.String(), "kc.example.com/certs") {
		t.Errorf("log = %q; want the redacted URL", logged.String())
	}
}
