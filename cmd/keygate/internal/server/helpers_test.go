package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/keycloaktest"
)

// issuer starts a test realm with a user client, alice (role user) and
// admin (roles user, admin).
func issuer(tb testing.TB) *keycloaktest.Server {
	tb.Helper()
	return keycloaktest.New(tb, keycloaktest.Config{
		OmitDefaultRoles: true,
		Clients: []keycloaktest.Client{
			{ID: "app", DirectAccessGrants: true, Audiences: []string{"api"}},
			{ID: "other", Audiences: []string{"elsewhere"}},
		},
		Users: []keycloaktest.User{
			{Username: "alice", Email: "alice@example.com", RealmRoles: []string{"user"}},
			{Username: "admin", RealmRoles: []string{"user", "admin"}},
		},
	})
}

func token(tb testing.TB, iss *keycloaktest.Server, user string) string {
	tb.Helper()
	return iss.MustMint(tb, keycloaktest.Token{Client: "app", User: user})
}

func testRules() *authz.Config {
	return &authz.Config{
		Rules: []authz.Rule{
			{Path: "/public/**", Require: authz.PermitAll()},
			{Path: "/admin/**", Require: authz.Role("admin")},
		},
		Default: authz.Role("user"),
	}
}

// baseConfig proxies to upstream (may be "") with forward-auth on /auth.
func baseConfig(iss *keycloaktest.Server, upstream string) config.Config {
	return config.Config{
		Listen:      "127.0.0.1:0",
		Upstream:    upstream,
		ForwardAuth: &config.ForwardAuth{},
		Issuer:      iss.Issuer(),
		Audiences:   []string{"api"},
		Access:      testRules(),
		Timeouts:    config.Timeouts{Shutdown: 5 * time.Second},
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start provisions and starts a server for cfg, waits for its keys and
// shuts it down at the end of the test.
func start(tb testing.TB, cfg config.Config) (*server.Server, *logBuffer) {
	tb.Helper()
	logs := new(logBuffer)
	s, err := server.New(cfg, server.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		tb.Fatalf("server.New: %v", err)
	}
	if err := s.Start(); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	select {
	case <-s.KeysReady():
	case <-time.After(10 * time.Second):
		tb.Fatal("no keys after 10s")
	}
	return s, logs
}

// echo is an upstream that answers with the headers it received.
func echo(tb testing.TB) *httptest.Server {
	tb.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": r.Header})
	}))
	tb.Cleanup(up.Close)
	return up
}

type echoed struct {
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
}

// do sends a request with the given headers (a key may repeat by using
// several "Name: value" lines) and returns the response and its body.
func do(tb testing.TB, method, url string, headers ...string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
