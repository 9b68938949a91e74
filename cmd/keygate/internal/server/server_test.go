package server_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/keycloaktest"
)

func TestProxyDecisions(t *testing.T) {
	iss := issuer(t)
	s, logs := start(t, baseConfig(iss, echo(t).URL))
	alice, admin := token(t, iss, "alice"), token(t, iss, "admin")
	idToken := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", Claims: map[string]any{"typ": "ID", "aud": "app"}})
	tampered := alice[:len(alice)-4] + "AAAA"
	if tampered == alice {
		tampered = alice[:len(alice)-4] + "BBBB"
	}
	tests := []struct {
		name    string
		path    string
		headers []string
		status  int
		wwwAuth string // substring of WWW-Authenticate
	}{
		{"public anonymous", "/public/x", nil, 200, ""},
		{"public with a bad token", "/public/x", []string{"Authorization: Bearer " + tampered}, 200, ""},
		{"no token", "/api/x", nil, 401, `Bearer realm="keygate"`},
		{"alice on api", "/api/x", []string{"Authorization: Bearer " + alice}, 200, ""},
		{"alice on admin", "/admin/x", []string{"Authorization: Bearer " + alice}, 403, `error="insufficient_scope"`},
		{"admin on admin", "/admin/x", []string{"Authorization: Bearer " + admin}, 200, ""},
		{"tampered", "/api/x", []string{"Authorization: Bearer " + tampered}, 401, `error="invalid_token"`},
		{"id token", "/api/x", []string{"Authorization: Bearer " + idToken}, 401, `error="invalid_token"`},
		{"two authorization headers", "/api/x", []string{"Authorization: Bearer " + alice, "Authorization: Bearer " + alice}, 400, `error="invalid_request"`},
		{"dot segment", "/public/../admin/x", []string{"Authorization: Bearer " + alice}, 400, `error="invalid_request"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "GET", s.URL()+tt.path, tt.headers...)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s = %d %s; want %d", tt.path, resp.StatusCode, body, tt.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tt.wwwAuth) {
				t.Errorf("WWW-Authenticate = %q; want it to contain %q", got, tt.wwwAuth)
			}
			if tt.status != 200 && !strings.Contains(body, `"error":`) {
				t.Errorf("body = %q; want a JSON error", body)
			}
		})
	}
	if strings.Contains(logs.String(), alice) || strings.Contains(logs.String(), tampered) {
		t.Error("the log holds a token")
	}
	if !strings.Contains(logs.String(), `"msg":"request refused"`) {
		t.Errorf("no refusal logged:\n%s", logs)
	}
}

// TestStripIdentityHeaders checks that identity headers a client sends
// never reach the upstream, on public and protected routes, whatever
// their case and however many.
func TestStripIdentityHeaders(t *testing.T) {
	iss := issuer(t)
	up := echo(t)
	alice := token(t, iss, "alice")
	spoofs := []string{
		"X-Auth-Username: root", "x-auth-username: root2", "X-Auth-Subject: 0", "X-Auth-Roles: admin",
		"X-Auth-Email: root@example.com", "X-Auth-Client: admin-cli", "X-Auth-Scopes: everything",
		"X-User: root", "Connection: X-Keep-Me",
	}
	tests := []struct {
		name    string
		headers config.IdentityHeaders
		forward bool
		path    string
		token   string
		want    map[string]string // "" means absent
	}{
		{
			name: "public anonymous", path: "/public/x",
			want: map[string]string{"X-Auth-Username": "", "X-Auth-Subject": "", "X-Auth-Roles": "", "X-Auth-Email": "", "X-Auth-Client": "", "X-Auth-Scopes": ""},
		},
		{
			name: "public with token", path: "/public/x", token: alice,
			want: map[string]string{"X-Auth-Username": "alice", "X-Auth-Roles": "user", "Authorization": ""},
		},
		{
			name: "protected", path: "/api/x", token: alice,
			want: map[string]string{"X-Auth-Username": "alice", "X-Auth-Subject": iss.Subject("alice"), "X-Auth-Roles": "user",
				"X-Auth-Email": "alice@example.com", "X-Auth-Client": "app", "X-Auth-Scopes": "profile email", "Authorization": ""},
		},
		{
			name: "forward token", path: "/api/x", token: alice, forward: true,
			want: map[string]string{"Authorization": "Bearer " + alice, "X-Auth-Username": "alice"},
		},
		{
			name:    "custom names strip defaults too",
			headers: config.IdentityHeaders{Username: "X-User", Email: config.Off},
			path:    "/api/x", token: alice,
			want: map[string]string{"X-User": "alice", "X-Auth-Username": "", "X-Auth-Email": "", "X-Auth-Subject": iss.Subject("alice")},
		},
		{
			name:    "custom names, public anonymous",
			headers: config.IdentityHeaders{Username: "X-User"},
			path:    "/public/x",
			want:    map[string]string{"X-User": "", "X-Auth-Username": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(iss, up.URL)
			cfg.IdentityHeaders = tt.headers
			cfg.ForwardToken = tt.forward
			s, _ := start(t, cfg)
			headers := append([]string(nil), spoofs...)
			if tt.token != "" {
				headers = append(headers, "Authorization: Bearer "+tt.token)
			}
			resp, body := do(t, "GET", s.URL()+tt.path, headers...)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s = %d %s", tt.path, resp.StatusCode, body)
			}
			var e echoed
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				if got := e.Headers.Values(name); want == "" && len(got) > 0 || want != "" && (len(got) != 1 || got[0] != want) {
					t.Errorf("upstream saw %s = %q; want %q", name, got, want)
				}
			}
			if e.Headers.Get("X-Forwarded-For") == "" {
				t.Error("no X-Forwarded-For")
			}
		})
	}
}

func TestForwardAuth(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, baseConfig(iss, "")) // forward-auth only
	alice := token(t, iss, "alice")
	bearer := "Authorization: Bearer " + alice
	tests := []struct {
		name    string
		headers []string
		status  int
		want    map[string]string
	}{
		{"traefik/caddy allowed", []string{bearer, "X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/orders?x=1"}, 200,
			map[string]string{"X-Auth-Username": "alice", "X-Auth-Roles": "user", "X-Auth-Subject": iss.Subject("alice")}},
		{"nginx allowed", []string{bearer, "X-Original-Method: POST", "X-Original-URI: /api/orders"}, 200,
			map[string]string{"X-Auth-Username": "alice"}},
		{"both pairs agree", []string{bearer, "X-Original-Method: GET", "X-Original-URI: /api/a", "X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/a"}, 200, nil},
		{"both pairs disagree", []string{bearer, "X-Original-Method: GET", "X-Original-URI: /public/a", "X-Forwarded-Method: GET", "X-Forwarded-Uri: /admin/a"}, 400, nil},
		{"forbidden", []string{bearer, "X-Forwarded-Method: GET", "X-Forwarded-Uri: /admin/x"}, 403, nil},
		{"no token", []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/x"}, 401, nil},
		{"public anonymous", []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /public/x"}, 200,
			map[string]string{"X-Auth-Username": ""}},
		{"no headers", []string{bearer}, 400, nil},
		{"method without uri", []string{bearer, "X-Forwarded-Method: GET"}, 400, nil},
		{"uri twice", []string{bearer, "X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/a", "X-Forwarded-Uri: /admin/a"}, 400, nil},
		{"relative uri", []string{bearer, "X-Forwarded-Method: GET", "X-Forwarded-Uri: api/x"}, 400, nil},
		{"bad method", []string{bearer, "X-Forwarded-Method: G(T", "X-Forwarded-Uri: /api/x"}, 400, nil},
		{"not canonical", []string{bearer, "X-Forwarded-Method: GET", "X-Forwarded-Uri: /public/../admin/x"}, 400, nil},
		{"encoded slash", []string{bearer, "X-Forwarded-Method: GET", "X-Forwarded-Uri: /public%2F..%2Fadmin"}, 400, nil},
		{"spoofed identity headers are refused", []string{"X-Auth-Username: root", "X-Forwarded-Method: GET", "X-Forwarded-Uri: /public/x"}, 400,
			map[string]string{"X-Auth-Username": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "GET", s.URL()+"/auth", tt.headers...)
			if resp.StatusCode != tt.status {
				t.Fatalf("/auth = %d %s; want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status != 200 {
				if resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(body, `"error"`) {
					t.Errorf("refusal without challenge or JSON body: %v %q", resp.Header, body)
				}
			}
			for name, want := range tt.want {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s = %q; want %q", name, got, want)
				}
			}
		})
	}
	t.Run("other paths are 404 without upstream", func(t *testing.T) {
		if resp, _ := do(t, "GET", s.URL()+"/api/x", bearer); resp.StatusCode != 404 {
			t.Errorf("GET /api/x = %d; want 404", resp.StatusCode)
		}
	})
}

func TestStreamingSSE(t *testing.T) {
	iss := issuer(t)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "data: second\n\n")
	}))
	t.Cleanup(up.Close)
	defer close(release)
	s, _ := start(t, baseConfig(iss, up.URL))

	req, _ := http.NewRequest("GET", s.URL()+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, iss, "alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "data: first\n" {
			t.Errorf("first line = %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not arrive while the upstream was still streaming")
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	iss := issuer(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("X-Auth-Username") != "alice" {
			http.Error(w, "want an upgrade from alice", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo until the client closes
	}))
	t.Cleanup(up.Close)
	s, _ := start(t, baseConfig(iss, up.URL))

	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /api/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\nX-Auth-Username: root\r\n\r\n", token(t, iss, "alice"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade = %d %s; want 101", resp.StatusCode, b)
	}
	io.WriteString(conn, "ping over the tunnel")
	buf := make([]byte, len("ping over the tunnel"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping over the tunnel" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	iss := issuer(t)
	entered := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(500 * time.Millisecond)
		io.WriteString(w, "slow and done")
	}))
	t.Cleanup(up.Close)
	cfg := baseConfig(iss, up.URL)
	s, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	<-s.KeysReady()
	for s.Addr() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	url := s.URL()

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", url+"/api/slow", nil)
		req.Header.Set("Authorization", "Bearer "+token(t, iss, "alice"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-entered
	cancel() // as SIGTERM does in keygate serve
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "slow and done" {
		t.Fatalf("in-flight request = %d %q %v; want 200 and the whole body", r.status, r.body, r.err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
		t.Error("the listener still accepts connections after shutdown")
	}
}

func TestUpstreamDown(t *testing.T) {
	iss := issuer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	s, logs := start(t, baseConfig(iss, dead))
	resp, body := do(t, "GET", s.URL()+"/public/x")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, `"error":"bad_gateway"`) {
		t.Fatalf("GET = %d %q; want 502 with a JSON body", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), `"msg":"upstream error"`) {
		t.Errorf("no upstream error logged:\n%s", logs)
	}
}

func TestAdmin(t *testing.T) {
	iss := issuer(t)
	iss.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 503, Count: 1})
	cfg := baseConfig(iss, echo(t).URL)
	cfg.Admin = &config.Admin{Listen: "127.0.0.1:0"}
	s, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	admin := "http://" + s.AdminAddr().String()

	if resp, _ := do(t, "GET", admin+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("/healthz = %d; want 200", resp.StatusCode)
	}
	// The first key fetch fails: not ready, and the status says why.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := do(t, "GET", admin+"/readyz")
		if resp.StatusCode == 503 && strings.Contains(body, `"last_error"`) {
			break
		}
		if resp.StatusCode == 200 {
			t.Fatalf("/readyz = 200 before the first fetch failed: %s", body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s; want 503 with last_error", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-s.KeysReady():
	case <-time.After(10 * time.Second):
		t.Fatal("no keys after the retry")
	}
	if resp, body := do(t, "GET", admin+"/readyz"); resp.StatusCode != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz = %d %s; want 200", resp.StatusCode, body)
	}

	do(t, "GET", s.URL()+"/api/x")
	alice := token(t, iss, "alice")
	do(t, "GET", s.URL()+"/api/x", "Authorization: Bearer "+alice)
	do(t, "GET", s.URL()+"/admin/x", "Authorization: Bearer "+alice)
	do(t, "GET", s.URL()+"/auth")
	_, metrics := do(t, "GET", admin+"/metrics")
	for _, want := range []string{
		`keygate_decisions_total{outcome="unauthorized",reason="a bearer token is required"} 1`,
		`keygate_decisions_total{outcome="allowed",reason="ok"} 1`,
		`keygate_decisions_total{outcome="forbidden",reason="the token does not grant access to this resource"} 1`,
		`keygate_decisions_total{outcome="bad_request",reason="forward-auth needs X-Forwarded-Method and X-Forwarded-Uri, or X-Original-Method and X-Original-URI"} 1`,
		`keygate_decision_duration_seconds_count{outcome="allowed"} 1`,
		"keygate_jwks_fetches_total 2",
		"keygate_jwks_fetch_failures_total 1",
		"keygate_jwks_kid_fetches_total 0",
		"keygate_jwks_ready 1",
		"keygate_jwks_keys 1",
		"keygate_jwks_age_seconds ",
		"keygate_upstream_errors_total 0",
		"keygate_token_cache_hits_total 1",
		"keygate_token_cache_misses_total 1",
		"keygate_token_cache_entries 1",
		"keygate_token_cache_capacity 4096",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestTLS(t *testing.T) {
	iss := issuer(t)
	certFile, keyFile, pool := writeTestCert(t, t.TempDir())
	cfg := baseConfig(iss, echo(t).URL)
	cfg.TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile}
	s, _ := start(t, cfg)
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL = %s; want https", s.URL())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(s.URL() + "/public/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET over TLS = %d; want 200", resp.StatusCode)
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files and returns a pool that trusts it.
func writeTestCert(tb testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "keygate test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
