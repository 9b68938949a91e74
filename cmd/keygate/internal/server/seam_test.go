package server_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/keycloaktest"
)

// spoof marks every value a test client makes up, so that a test can
// tell whether any of them reached the upstream.
const spoof = "SPOOF"

// header is one header line, its name spelled exactly as sent.
type header struct{ name, value string }

// spoofCases are the header lines of issue #7 points 1 and 5: names the
// upstream may read as keygate's identity headers once '_' and '-' are
// folded and case ignored, and headers other stacks trust for routing
// or identity. Each case is sent alone.
func spoofCases() []struct {
	name    string
	headers []header
} {
	one := func(name string) []header { return []header{{name, "admin," + spoof}} }
	return []struct {
		name    string
		headers []header
	}{
		{"X_Auth_Username", one("X_Auth_Username")},
		{"x_auth_roles", one("x_auth_roles")},
		{"X-Auth_Subject", one("X-Auth_Subject")},
		{"X-AUTH-ROLES", one("X-AUTH-ROLES")},
		{"x-auth-email", one("x-auth-email")},
		{"X_AUTH_CLIENT", one("X_AUTH_CLIENT")},
		{"x-Auth_Scopes", one("x-Auth_Scopes")},
		{"X-Auth-Username", one("X-Auth-Username")},
		{"duplicates and mixed spellings", []header{
			{"X-Auth-Roles", "admin," + spoof}, {"X-Auth-Roles", "root," + spoof},
			{"x_auth_roles", "admin," + spoof}, {"X-AUTH_ROLES", "admin," + spoof}, {"x-auth-ROLES", spoof},
		}},
		{"X-Original-URL", one("X-Original-URL")},
		{"X-Rewrite-URL", one("X-Rewrite-URL")},
		{"X-Original-URI", one("X-Original-URI")},
		{"X_Original_Method", one("X_Original_Method")},
		{"X-HTTP-Method-Override", one("X-HTTP-Method-Override")},
		{"x-http-method", one("x-http-method")},
		{"X-Method-Override", one("X-Method-Override")},
		{"X-Forwarded-User", one("X-Forwarded-User")},
		{"X_Forwarded_Email", one("X_Forwarded_Email")},
		{"X-Forwarded-Preferred-Username", one("X-Forwarded-Preferred-Username")},
		{"X-Forwarded-Groups", one("X-Forwarded-Groups")},
		{"X-Forwarded-Access-Token", one("X-Forwarded-Access-Token")},
		{"X-Auth-Request-User", one("X-Auth-Request-User")},
		{"x_auth_request_email", one("x_auth_request_email")},
		{"X-Auth-Request-Preferred-Username", one("X-Auth-Request-Preferred-Username")},
		{"X-Auth-Request-Groups", one("X-Auth-Request-Groups")},
		{"X-Auth-Request-Access-Token", one("X-Auth-Request-Access-Token")},
		{"Remote-User", one("Remote-User")},
		{"remote_user", one("remote_user")},
		{"X-Remote-User", one("X-Remote-User")},
		{"X-Forwarded-Prefix", one("X-Forwarded-Prefix")},
		{"X_Forwarded_For", one("X_Forwarded_For")},
		{"x_forwarded_proto", one("x_forwarded_proto")},
		{"X_Forwarded_Host", one("X_Forwarded_Host")},
		{"X-Forwarded-Uri", one("X-Forwarded-Uri")},
		{"X_Forwarded_Method", one("X_Forwarded_Method")},
		// Forwarding headers: frameworks build URLs and decide whether a
		// request is local or secure from them.
		{"Forwarded", one("Forwarded")},
		{"X-Forwarded-Host", one("X-Forwarded-Host")},
		{"X-Forwarded-Port", one("X-Forwarded-Port")},
		{"x-forwarded-ssl", one("x-forwarded-ssl")},
		{"X-Forwarded-Scheme", one("X-Forwarded-Scheme")},
		{"X-Forwarded-Server", one("X-Forwarded-Server")},
		{"X-Real-IP", one("X-Real-IP")},
		{"X_Real_IP", one("X_Real_IP")},
		{"X-Client-IP", one("X-Client-IP")},
		{"True-Client-IP", one("True-Client-IP")},
		{"X-Original-Host", one("X-Original-Host")},
		{"X-Envoy-Original-Path", one("X-Envoy-Original-Path")},
		{"x_forwarded_server", one("x_forwarded_server")},
	}
}

// refusedByForwardAuth reports whether forward-auth must refuse a
// subrequest carrying hs: one of them is an identity header in any
// spelling, or is spelled with '_' (every name of spoofCases is an
// identity, strip-list or forward-auth input name).
func refusedByForwardAuth(hs []header) bool {
	for _, h := range hs {
		if strings.Contains(h.name, "_") || slices.Contains(config.DefaultIdentityHeaderNames(), http.CanonicalHeaderKey(h.name)) {
			return true
		}
	}
	return false
}

// send sends a GET with the header lines spelled as given (the map is
// set directly, so Go does not canonicalize the names on the wire).
func send(tb testing.TB, client *http.Client, url string, hs ...header) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range hs {
		req.Header[h.name] = append(req.Header[h.name], h.value)
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestProxyHeaderHygiene checks that no spoofed header, in any spelling,
// reaches the upstream through the proxy, on a public and on a
// protected route, over plain HTTP and TLS; and that keygate's own
// identity and X-Forwarded-* headers arrive once, with their true
// values.
func TestProxyHeaderHygiene(t *testing.T) {
	iss := issuer(t)
	up := echo(t)
	alice := token(t, iss, "alice")
	certFile, keyFile, pool := writeTestCert(t, t.TempDir())

	plain := baseConfig(iss, up.URL)
	withTLS := baseConfig(iss, up.URL)
	withTLS.TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile}
	listeners := []struct {
		name   string
		cfg    config.Config
		client *http.Client
		proto  string
	}{
		{"plain", plain, &http.Client{Transport: &http.Transport{}}, "http"},
		{"tls", withTLS, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, "https"},
	}
	routes := []struct {
		name  string
		path  string
		token string
		want  map[string]string // identity headers; "" means absent
	}{
		{"public anonymous", "/public/x", "", map[string]string{
			"X-Auth-Username": "", "X-Auth-Roles": "", "X-Auth-Subject": "", "X-Auth-Email": "", "X-Auth-Client": "", "X-Auth-Scopes": ""}},
		{"protected alice", "/api/x", alice, map[string]string{
			"X-Auth-Username": "alice", "X-Auth-Roles": "user", "X-Auth-Subject": iss.Subject("alice"),
			"X-Auth-Email": "alice@example.com", "X-Auth-Client": "app", "X-Auth-Scopes": "profile email"}},
	}
	for _, l := range listeners {
		t.Run(l.name, func(t *testing.T) {
			s, _ := start(t, l.cfg)
			for _, rt := range routes {
				for _, sc := range spoofCases() {
					t.Run(rt.name+"/"+sc.name, func(t *testing.T) {
						hs := sc.headers
						if rt.token != "" {
							hs = append([]header{{"Authorization", "Bearer " + rt.token}}, hs...)
						}
						resp, body := send(t, l.client, s.URL()+rt.path, hs...)
						if resp.StatusCode != 200 {
							t.Fatalf("GET %s = %d %s; want 200", rt.path, resp.StatusCode, body)
						}
						var e echoed
						if err := json.Unmarshal([]byte(body), &e); err != nil {
							t.Fatal(err)
						}
						for name, vs := range e.Headers {
							for _, v := range vs {
								if strings.Contains(v, spoof) {
									t.Errorf("upstream saw %s: %q", name, v)
								}
							}
						}
						for name, want := range rt.want {
							got := e.Headers.Values(name)
							if want == "" && len(got) > 0 || want != "" && (len(got) != 1 || got[0] != want) {
								t.Errorf("upstream saw %s = %q; want %q", name, got, want)
							}
						}
						if got := e.Headers.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "127.0.0.1" {
							t.Errorf("upstream saw X-Forwarded-For = %q; want [127.0.0.1]", got)
						}
						if got := e.Headers.Values("X-Forwarded-Proto"); len(got) != 1 || got[0] != l.proto {
							t.Errorf("upstream saw X-Forwarded-Proto = %q; want [%s]", got, l.proto)
						}
						if got := e.Headers.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != s.Addr().String() {
							t.Errorf("upstream saw X-Forwarded-Host = %q; want [%s]", got, s.Addr())
						}
					})
				}
			}
		})
	}
}

// TestProxyConnectionHeader checks that a client's Connection header
// cannot take keygate's identity headers away (review of issue #7, M4):
// the proxy drops the headers it names before it sets its own. A
// Connection-listed Authorization does not hide the token from the
// decision either.
func TestProxyConnectionHeader(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, baseConfig(iss, echo(t).URL))
	alice := token(t, iss, "alice")
	for _, conn := range []string{
		"X-Auth-Roles, X-Auth-Subject, X-Auth-Username",
		"keep-alive, X-Auth-Roles",
		"Authorization",
		"close, Authorization, X-Auth-Username",
	} {
		raw := fmt.Sprintf("GET /api/x HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer %s\r\nConnection: %s\r\n\r\n", alice, conn)
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("Connection: %s: %v", conn, err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != 200 {
			t.Errorf("Connection: %s: GET /api/x = %d %s; want 200", conn, resp.StatusCode, body)
			continue
		}
		var e echoed
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"X-Auth-Username": "alice", "X-Auth-Roles": "user", "X-Auth-Subject": iss.Subject("alice")} {
			if got := e.Headers.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("Connection: %s: upstream saw %s = %q; want [%s]", conn, name, got, want)
			}
		}
	}
}

// TestStripHeadersConfig checks that strip_headers replaces the default
// list, and that identity headers are stripped whatever the list.
func TestStripHeadersConfig(t *testing.T) {
	iss := issuer(t)
	up := echo(t)
	tests := []struct {
		name     string
		strip    []string
		stripped []string // sent, must not arrive
		kept     []string // sent, must arrive
	}{
		{"default", nil, []string{"X-Original-URL", "Remote_User", "X-Auth-Username"}, []string{"X-Custom-Trust"}},
		{"own list", []string{"X-Custom-Trust"}, []string{"X_Custom_Trust", "x-custom-trust", "X_Auth_Username"}, []string{"X-Original-URL"}},
		{"empty list", []string{}, []string{"X_Auth_Roles"}, []string{"X-Original-URL", "Remote-User"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig(iss, up.URL)
			cfg.StripHeaders = tt.strip
			s, _ := start(t, cfg)
			var hs []header
			for _, n := range append(append([]string(nil), tt.stripped...), tt.kept...) {
				hs = append(hs, header{n, spoof})
			}
			resp, body := send(t, http.DefaultClient, s.URL()+"/public/x", hs...)
			if resp.StatusCode != 200 {
				t.Fatalf("GET = %d %s", resp.StatusCode, body)
			}
			var e echoed
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatal(err)
			}
			for _, n := range tt.stripped {
				for k, v := range e.Headers {
					if config.NormalizeHeaderName(k) == config.NormalizeHeaderName(n) {
						t.Errorf("upstream saw %s = %q; want %s stripped", k, v, n)
					}
				}
			}
			for _, n := range tt.kept {
				if v := e.Headers.Values(n); len(v) != 1 || v[0] != spoof {
					t.Errorf("upstream saw %s = %q; want it passed on", n, v)
				}
			}
		})
	}
}

// TestForwardAuthRefusesSpoofedHeaders checks that forward-auth refuses
// a subrequest carrying an identity header in any spelling, or a
// strip-list header or forward-auth input spelled with '_'; accepts the
// plain spelling of strip-list names (the front proxy clears them for
// the application, and sets some on its subrequest) and of its own
// inputs; and names the header in the log, not in the answer.
func TestForwardAuthRefusesSpoofedHeaders(t *testing.T) {
	iss := issuer(t)
	s, logs := start(t, baseConfig(iss, ""))
	alice := token(t, iss, "alice")
	orig := []header{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/public/x"}}
	for _, route := range []struct {
		name string
		uri  string
		auth []header
	}{
		{"public anonymous", "/public/x", nil},
		{"protected alice", "/api/x", []header{{"Authorization", "Bearer " + alice}}},
	} {
		for _, sc := range spoofCases() {
			if sc.name == "X-Forwarded-Uri" || sc.name == "X-Original-URI" {
				continue // the protocol's own inputs, canonical: below
			}
			t.Run(route.name+"/"+sc.name, func(t *testing.T) {
				hs := append([]header{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", route.uri}}, route.auth...)
				resp, body := send(t, http.DefaultClient, s.URL()+"/auth", append(hs, sc.headers...)...)
				if !refusedByForwardAuth(sc.headers) {
					if resp.StatusCode != 200 {
						t.Fatalf("/auth = %d %s; want 200: a strip-list name in its plain spelling is the front proxy's to clear", resp.StatusCode, body)
					}
					return
				}
				if resp.StatusCode != 400 {
					t.Fatalf("/auth = %d %s; want 400", resp.StatusCode, body)
				}
				if !strings.Contains(body, `"error":"invalid_request"`) || !strings.Contains(body, "the request carries a header that keygate sets") {
					t.Errorf("body = %s; want invalid_request with the fixed description", body)
				}
				if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
					t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
				}
				if resp.Header.Get("X-Auth-Username") != "" {
					t.Errorf("refusal carries X-Auth-Username %q", resp.Header.Get("X-Auth-Username"))
				}
				if strings.Contains(body, spoof) || strings.Contains(body, sc.headers[0].name) {
					t.Errorf("the answer echoes the client's header: %s", body)
				}
			})
		}
	}

	accepted := []struct {
		name    string
		headers []header
	}{
		{"caddy's inputs", append(orig, header{"X-Forwarded-Host", "example.com"}, header{"X-Forwarded-Proto", "https"}, header{"X-Forwarded-For", "10.0.0.1"})},
		{"lower case is the same canonical name", []header{{"x-forwarded-method", "GET"}, {"x-forwarded-uri", "/public/x"}, {"x-forwarded-host", "example.com"}}},
		{"nginx's inputs", []header{{"X-Original-Method", "GET"}, {"X-Original-URI", "/public/x"}}},
		{"nginx's X-Real-IP", []header{{"X-Original-Method", "GET"}, {"X-Original-URI", "/public/x"}, {"X-Real-IP", "10.0.0.1"}}},
		{"traefik's inputs and X-Forwarded-Prefix", append(orig, header{"X-Forwarded-Host", "example.com"}, header{"X-Forwarded-Port", "443"},
			header{"X-Forwarded-Server", "traefik"}, header{"X-Real-Ip", "10.0.0.1"}, header{"X-Forwarded-Prefix", "/app"})},
	}
	for _, tt := range accepted {
		t.Run("accepted/"+tt.name, func(t *testing.T) {
			if resp, body := send(t, http.DefaultClient, s.URL()+"/auth", tt.headers...); resp.StatusCode != 200 {
				t.Fatalf("/auth = %d %s; want 200", resp.StatusCode, body)
			}
		})
	}
	refused := []struct {
		name    string
		headers []header
	}{
		{"underscore input", []header{{"X_Forwarded_Method", "GET"}, {"X_Forwarded_Uri", "/public/x"}}},
		{"underscore host next to canonical inputs", append(orig, header{"X_Forwarded_Host", "evil.example"})},
		{"nginx pair with underscore", []header{{"X_Original_Method", "GET"}, {"X-Original-URI", "/public/x"}}},
		{"X_Real_IP next to nginx's inputs", []header{{"X-Original-Method", "GET"}, {"X-Original-URI", "/public/x"}, {"X_Real_IP", "127.0.0.1"}}},
		{"identity header next to traefik's inputs", append(orig, header{"X-Forwarded-Prefix", "/app"}, header{"X-Auth-Roles", "admin"})},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			if resp, body := send(t, http.DefaultClient, s.URL()+"/auth", tt.headers...); resp.StatusCode != 400 {
				t.Fatalf("/auth = %d %s; want 400", resp.StatusCode, body)
			}
		})
	}
	if !strings.Contains(logs.String(), "forward-auth request carries the header X_auth_username") {
		t.Errorf("the log does not name the header:\n%.2000s", logs)
	}
}

// TestConnectionLimit checks limits.max_connections: connections busy
// with a request hold their slots, and the next connection waits; a full
// listener closes connections idle between keep-alive requests, and
// connections that send nothing past their first second, so that
// neither kind of flood can lock a client out.
func TestConnectionLimit(t *testing.T) {
	iss := issuer(t)
	const limit = 3
	// The upstream holds /public/slow until release is closed.
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/public/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	cfg := baseConfig(iss, up.URL)
	cfg.Limits.MaxConnections = limit
	// Long enough that the server never closes a connection on a timeout
	// during the test: only the limiter may.
	cfg.Timeouts.ReadHeader = 5 * time.Minute
	cfg.Timeouts.Idle = 5 * time.Minute
	s, _ := start(t, cfg)

	// request sends one keep-alive request on c and reads the answer.
	request := func(c net.Conn, br *bufio.Reader, path string) (int, error) {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: keygate\r\n\r\n"); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(60 * time.Second))
		t.Cleanup(func() { c.Close() })
		return c
	}
	// extra dials one more connection and reports on the channel when its
	// request was answered.
	extra := func(t *testing.T) <-chan error {
		c := dial(t)
		answered := make(chan error, 1)
		go func() {
			status, err := request(c, bufio.NewReader(c), "/public/x")
			if err == nil && status != 200 {
				err = fmt.Errorf("status %d", status)
			}
			answered <- err
		}()
		return answered
	}
	// closedByServer counts the connections of held that the server
	// closed. An eviction happens before the extra connection is
	// accepted, so a closed one reads EOF at once; the deadline only ends
	// the reads of the ones left open.
	closedByServer := func(held []net.Conn) int {
		n := 0
		for _, c := range held {
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := io.Copy(io.Discard, c); err == nil {
				n++ // EOF
			}
		}
		return n
	}

	t.Run("busy connections hold their slots", func(t *testing.T) {
		held := make([]net.Conn, limit)
		for i := range held {
			held[i] = dial(t)
			io.WriteString(held[i], "GET /public/slow HTTP/1.1\r\nHost: keygate\r\n\r\n")
		}
		answered := extra(t)
		select {
		case err := <-answered:
			t.Fatalf("the connection past the limit was served (err %v) while %d requests were in progress", err, limit)
		case <-time.After(2 * server.MinNewAge):
			// Not served, also past the age at which a silent connection
			// would be closed. (A slow machine could only hide a failure
			// here, never cause one.)
		}
		close(release) // the requests end; their slots free up
		if err := <-answered; err != nil {
			t.Fatalf("after the requests ended: %v; want 200", err)
		}
		for _, c := range held {
			c.Close()
		}
	})

	t.Run("silent connections make room", func(t *testing.T) {
		held := make([]net.Conn, limit)
		for i := range held {
			held[i] = dial(t)
			if i == 0 {
				io.WriteString(held[i], "GET /public/x HTTP/1.1\r\n") // a header that never ends
			}
		}
		// Nobody closes a held connection, and the header timeout is 5
		// minutes: keygate must close one to serve this.
		if err := <-extra(t); err != nil {
			t.Fatalf("the connection past the limit: %v; want 200 after a silent one was closed", err)
		}
		if closedByServer(held) == 0 {
			t.Error("no silent connection was closed, yet the one past the limit was served")
		}
	})

	t.Run("idle keep-alive connections make room", func(t *testing.T) {
		held := make([]net.Conn, limit)
		for i := range held {
			held[i] = dial(t)
			if status, err := request(held[i], bufio.NewReader(held[i]), "/public/x"); err != nil || status != 200 {
				t.Fatalf("connection %d: %d, %v; want 200", i, status, err)
			}
		}
		if err := <-extra(t); err != nil {
			t.Fatalf("the connection past the limit: %v; want 200 after idle ones were closed", err)
		}
		if closedByServer(held) == 0 {
			t.Error("no idle connection was closed, yet the one past the limit was served")
		}
	})
}

// TestRefusedBodyIsNotRead: a refused request that announced a large body
// it sends slowly must not hold its connection while net/http drains the
// body: with every slot held that way, no other client could connect.
// (Found by the second review of issue #7.)
func TestRefusedBodyIsNotRead(t *testing.T) {
	iss := issuer(t)
	cfg := baseConfig(iss, echo(t).URL)
	const limit = 2
	cfg.Limits.MaxConnections = limit
	cfg.Timeouts.Read = 5 * time.Minute // only keygate's own closing may free a slot
	cfg.Timeouts.ReadHeader = 5 * time.Minute
	s, _ := start(t, cfg)

	for i := range limit {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(60 * time.Second))
		// No token on a protected route, a body announced and barely begun.
		io.WriteString(c, "POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\na")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !resp.Close {
			t.Fatalf("connection %d: %d, close %v; want 401 and Connection: close", i, resp.StatusCode, resp.Close)
		}
	}
	// Both slow bodies stay open on the client's side; a new client must
	// still be served.
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a new client while refused bodies trickle: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("new client: %d; want 200", resp.StatusCode)
	}
}

// TestLogValuesClipped checks that client-chosen values (an 11 kB path,
// an 11 kB kid quoted by the verifier's error) are cut in the log.
func TestLogValuesClipped(t *testing.T) {
	iss := issuer(t)
	s, logs := start(t, baseConfig(iss, echo(t).URL))
	long := strings.Repeat("k", 11000)
	kidToken := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", Header: map[string]any{"kid": long}})

	if resp, body := do(t, "GET", s.URL()+"/api/"+long); resp.StatusCode != 401 {
		t.Fatalf("long path = %d %s; want 401", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", s.URL()+"/api/x", "Authorization: Bearer "+kidToken); resp.StatusCode != 401 {
		t.Fatalf("long kid = %d %s; want 401", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", s.URL()+"/auth", "X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/"+long); resp.StatusCode != 401 {
		t.Fatalf("long forward-auth URI = %d %s; want 401", resp.StatusCode, body)
	}

	var refusals int
	for line := range strings.Lines(logs.String()) {
		if !strings.Contains(line, `"msg":"request refused"`) {
			continue
		}
		refusals++
		if len(line) > 2048 {
			t.Errorf("a refusal logged %d bytes: %.300s...", len(line), line)
		}
		if strings.Contains(line, strings.Repeat("k", 300)) {
			t.Errorf("the log holds more than 256 bytes of a client value: %.300s...", line)
		}
	}
	if refusals != 3 {
		t.Errorf("%d refusals logged; want 3:\n%.3000s", refusals, logs)
	}
	if !strings.Contains(logs.String(), "…(11005 bytes)") {
		t.Errorf("no clip marker with the path's length in the log:\n%.3000s", logs)
	}
}
