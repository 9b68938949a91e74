//go:build proxies

package frontproxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/keycloaktest"
)

// seamRules are the rules of issue #7: alice has the realm role user only.
const seamRules = `default: authenticated
rules:
  - {path: /public/**, require: permit_all}
  - {path: "/orders/{id}", methods: [DELETE], require: {role: admin}}
  - {path: /settings, require: {role: admin}}
  - {path: /admin/**, require: {role: admin}}
`

// upstreamStack is a real application behind keygate.
type upstreamStack struct {
	name string
	// start runs the application on addr.
	start func(t *testing.T, addr string)
	// caseInsensitive: the application routes /ADMIN like /admin, so
	// keygate is configured with case_insensitive_paths.
	caseInsensitive bool
}

var upstreams = []upstreamStack{
	{name: "wsgiref", start: startWSGI},
	{name: "express", start: startExpress, caseInsensitive: true},
}

// startWSGI runs testdata/wsgi_upstream.py on Python's wsgiref server.
func startWSGI(t *testing.T, addr string) {
	t.Helper()
	py := need(t, "python3")
	run(t, exec.Command(py, filepath.Join("testdata", "wsgi_upstream.py"), addr), addr)
}

// startExpress runs testdata/express/app.js with the Express that
// scripts/proxies.sh installed (npm ci) into .cache/node, or into the
// directory KEYGATE_NODE_MODULES names.
func startExpress(t *testing.T, addr string) {
	t.Helper()
	node := need(t, "node")
	mods := os.Getenv("KEYGATE_NODE_MODULES")
	if mods == "" {
		mods = filepath.Join("..", "..", ".cache", "node", "node_modules")
	}
	mods, err := filepath.Abs(mods)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mods, "express", "package.json")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Express is not installed in %s; scripts/proxies.sh installs it with npm ci", mods)
		}
		t.Skipf("Express is not installed in %s; run make proxies, which installs it", mods)
	}
	cmd := exec.Command(node, filepath.Join("testdata", "express", "app.js"), addr)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	run(t, cmd, addr)
}

// seamCase is one request of issue #7, sent as raw bytes.
type seamCase struct {
	name    string
	caller  string   // "", "alice" or "admin"
	method  string   // sent as is
	target  string   // the request target, sent as is
	headers []string // extra header lines, sent as is
	auth    string   // an Authorization value instead of the caller's token
	want    int      // the status every front must answer; 0: not checked
	reach   bool     // a control: the application must act on it
}

var seamCases = []seamCase{
	// Controls: what the rules allow reaches the application.
	{name: "control/anonymous public", method: "GET", target: "/public/hello", want: 200, reach: true},
	{name: "control/anonymous api", method: "GET", target: "/api/orders", want: 401},
	{name: "control/alice api", caller: "alice", method: "GET", target: "/api/orders", want: 200, reach: true},
	{name: "control/alice reads order", caller: "alice", method: "GET", target: "/orders/7", want: 200, reach: true},
	{name: "control/alice settings", caller: "alice", method: "GET", target: "/settings", want: 403},
	{name: "control/admin deletes order", caller: "admin", method: "DELETE", target: "/orders/7", want: 200, reach: true},
	{name: "control/admin admin", caller: "admin", method: "GET", target: "/admin/users", want: 200, reach: true},

	// 1. Header names the application reads as keygate's.
	{name: "1/anonymous X_Auth_Username", method: "GET", target: "/public/hello",
		headers: []string{"X_Auth_Username: admin", "x_auth_roles: admin", "X-Auth_Subject: x"}},
	{name: "1/alice x_auth_roles", caller: "alice", method: "GET", target: "/api/orders",
		headers: []string{"x_auth_roles: admin"}},
	{name: "1/alice X-Auth_Username", caller: "alice", method: "GET", target: "/api/orders",
		headers: []string{"X-Auth_Username: admin", "X_AUTH_SUBJECT: x"}},
	{name: "1/alice canonical X-Auth-Roles", caller: "alice", method: "GET", target: "/api/orders",
		headers: []string{"X-Auth-Roles: admin", "X-Auth-Username: admin"}},

	// 2. A # in the request target.
	{name: "2/alice /admin#x", caller: "alice", method: "GET", target: "/admin#x"},
	{name: "2/alice /settings#x", caller: "alice", method: "GET", target: "/settings#x"},
	{name: "2/alice /admin%23x", caller: "alice", method: "GET", target: "/admin%23x"},

	// 3. Method case.
	{name: "3/alice delete", caller: "alice", method: "delete", target: "/orders/7"},
	{name: "3/alice Delete", caller: "alice", method: "Delete", target: "/orders/7"},

	// 4. Trailing slash.
	{name: "4/alice /settings/", caller: "alice", method: "GET", target: "/settings/"},
	{name: "4/alice DELETE /orders/7/", caller: "alice", method: "DELETE", target: "/orders/7/"},
	{name: "4/alice /admin/", caller: "alice", method: "GET", target: "/admin/"},

	// 5. Other equivalences: double encoding, case, routing and identity
	// headers of other stacks.
	{name: "5/alice %252e%252e", caller: "alice", method: "GET", target: "/public/%252e%252e/admin/users"},
	{name: "5/alice %252f", caller: "alice", method: "GET", target: "/public/..%252fsettings"},
	{name: "5/alice %2525", caller: "alice", method: "GET", target: "/public/%25252e%25252e/settings"},
	{name: "5/alice /ADMIN/users", caller: "alice", method: "GET", target: "/ADMIN/users"},
	{name: "5/alice /Settings", caller: "alice", method: "GET", target: "/Settings"},
	{name: "5/anonymous X-Original-URL", method: "GET", target: "/public/hello", headers: []string{"X-Original-URL: /admin/users"}},
	{name: "5/anonymous X-Rewrite-URL", method: "GET", target: "/public/hello", headers: []string{"X-Rewrite-URL: /settings"}},
	{name: "5/alice X-HTTP-Method-Override", caller: "alice", method: "POST", target: "/orders/7", headers: []string{"X-HTTP-Method-Override: DELETE"}},
	{name: "5/alice X-HTTP-Method", caller: "alice", method: "POST", target: "/orders/7", headers: []string{"X-HTTP-Method: DELETE"}},
	{name: "5/anonymous X-Forwarded-User", method: "GET", target: "/public/hello", headers: []string{"X-Forwarded-User: admin", "X-Forwarded-Email: admin@example.com"}},
	{name: "5/anonymous Remote-User", method: "GET", target: "/public/hello", headers: []string{"Remote-User: admin"}},
	{name: "5/anonymous X-Forwarded-Prefix", method: "GET", target: "/public/hello", headers: []string{"X-Forwarded-Prefix: /admin"}},
	{name: "5/anonymous forwarding headers", method: "GET", target: "/public/hello",
		headers: []string{"Forwarded: for=127.0.0.1;host=admin.internal", "X-Forwarded-Port: 443", "X-Forwarded-Ssl: on", "X-Client-IP: 127.0.0.1", "X-Envoy-Original-Path: /admin/users"}},
	{name: "5/anonymous forwarding headers with _", method: "GET", target: "/public/hello",
		headers: []string{"X_Forwarded_Server: admin", "True_Client_IP: 127.0.0.1", "X_Original_Host: admin.internal"}},

	// 6. A malformed bearer token is 401, also behind NGINX.
	{name: "6/not b64token", method: "GET", target: "/api/orders", auth: "Bearer abc$def", want: 401},
	{name: "6/bad JWS shape", method: "GET", target: "/api/orders", auth: "Bearer a.b", want: 401},
	{name: "6/empty token", method: "GET", target: "/api/orders", auth: "Bearer ", want: 401},
}

// TestSeam sends the inputs of issue #7 to a Python (wsgiref) and a Node
// (Express) application, each behind keygate's proxy mode and behind the
// NGINX and Caddy examples (forward-auth), and checks what the
// application acted on: only what the rules allow the caller, with the
// caller's verified identity and no other.
func TestSeam(t *testing.T) {
	need(t, "nginx")
	need(t, "caddy")
	idp := issuer(t)
	oracle, err := authz.ParseYAML([]byte(seamRules))
	if err != nil {
		t.Fatal(err)
	}
	callers := map[string]caller{"": {}}
	for _, u := range []struct{ name, roles string }{{"alice", "user"}, {"admin", "user,admin"}} {
		callers[u.name] = caller{
			token:     idp.MustMint(t, keycloaktest.Token{Client: "demo-app", User: u.name}),
			principal: &keygate.Principal{Username: u.name, Subject: idp.Subject(u.name), Roles: strings.Split(u.roles, ",")},
			roles:     u.roles,
		}
	}
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			appAddr := freeAddr(t)
			up.start(t, appAddr)
			rules := "access:\n" + indent(seamRules, "  ")
			if up.caseInsensitive {
				rules += "  case_insensitive_paths: true\n"
			}
			k := startKeygate(t, idp, "upstream: http://"+appAddr+"\n"+rules)
			fronts := []struct{ name, addr string }{
				{"keygate", k.addr},
				{"nginx", startNGINX(t, k.addr, appAddr)},
				{"caddy", startCaddy(t, k.addr, appAddr)},
			}
			for _, f := range fronts {
				t.Run(f.name, func(t *testing.T) {
					for _, c := range seamCases {
						t.Run(c.name, func(t *testing.T) { c.run(t, f.addr, callers, oracle) })
					}
				})
			}
		})
	}
}

// caller is who sends a seamCase: nil principal for an anonymous one.
type caller struct {
	token     string
	principal *keygate.Principal
	roles     string // X-Auth-Roles keygate sends for this caller
}

// acted is the JSON every test application answers with.
type acted struct {
	Upstream string            `json:"upstream"`
	Acted    bool              `json:"acted"`
	Name     string            `json:"name"`
	Method   string            `json:"method"`
	Route    string            `json:"route"`
	Environ  map[string]string `json:"environ"` // wsgiref
	Headers  map[string]any    `json:"headers"` // express
	Identity struct {
		User    *string `json:"user"`
		Roles   *string `json:"roles"`
		Subject *string `json:"subject"`
	} `json:"identity"`
}

// owned are the normalized names (lower case, "_" as "-") of the headers
// keygate sets, and stripped are those of the default strip list
// (SEAM-SPEC section 4) but X-Forwarded-Host and X-Real-IP, which keygate
// or the front proxy set themselves (TestFrontHeaders checks their
// values). Neither may reach an application in any spelling other than
// the identity keygate set.
var (
	owned    = []string{"x-auth-subject", "x-auth-username", "x-auth-email", "x-auth-roles", "x-auth-client", "x-auth-scopes"}
	stripped = []string{"x-original-url", "x-rewrite-url", "x-original-uri", "x-original-method",
		"x-http-method-override", "x-http-method", "x-method-override", "x-forwarded-user", "x-forwarded-email",
		"x-forwarded-preferred-username", "x-forwarded-groups", "x-forwarded-access-token", "x-auth-request-user",
		"x-auth-request-email", "x-auth-request-preferred-username", "x-auth-request-groups",
		"x-auth-request-access-token", "remote-user", "x-remote-user", "x-forwarded-prefix",
		"forwarded", "x-forwarded-port", "x-forwarded-ssl", "x-forwarded-scheme", "x-forwarded-server",
		"x-client-ip", "true-client-ip", "x-original-host", "x-envoy-original-path"}
)

func (c seamCase) run(t *testing.T, addr string, callers map[string]caller, oracle *authz.Policy) {
	who := callers[c.caller]
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", c.method, c.target, addr)
	switch {
	case c.auth != "":
		fmt.Fprintf(&b, "Authorization: %s\r\n", c.auth)
	case who.token != "":
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", who.token)
	}
	for _, h := range c.headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\nConnection: close\r\n\r\n")
	status, body, err := exchange(addr, b.String())
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.target, err)
	}
	var got acted
	reached := json.Unmarshal(body, &got) == nil && got.Upstream != ""
	if c.want != 0 && status != c.want {
		t.Errorf("%s %s = %d; want %d (body %.200q)", c.method, c.target, status, c.want, body)
	}
	if !reached || !got.Acted {
		if c.reach {
			t.Errorf("%s %s = %d; want the application to act on it (body %.200q)", c.method, c.target, status, body)
		}
		return
	}
	// The application acted: on what the rules allow this caller?
	req, _ := oracle.Match(got.Method, got.Route)
	if !req.Allows(who.principal) {
		t.Errorf("VIOLATION: %s %s by %q: the %s application acted on %s %s, which the rules deny (%v)",
			c.method, c.target, c.caller, got.Upstream, got.Method, got.Route, req)
	}
	// With the caller's verified identity and nothing else?
	wantUser, wantRoles, wantSub := "", "", ""
	if who.principal != nil {
		wantUser, wantRoles, wantSub = who.principal.Username, who.roles, who.principal.Subject
	}
	for _, f := range []struct {
		name string
		got  *string
		want string
	}{{"user", got.Identity.User, wantUser}, {"roles", got.Identity.Roles, wantRoles}, {"subject", got.Identity.Subject, wantSub}} {
		switch {
		case f.want == "" && f.got != nil:
			t.Errorf("VIOLATION: %s %s by %q: the %s application read %s %q; want none", c.method, c.target, c.caller, got.Upstream, f.name, *f.got)
		case f.want != "" && (f.got == nil || *f.got != f.want):
			t.Errorf("VIOLATION: %s %s by %q: the %s application read %s %s; want %q", c.method, c.target, c.caller, got.Upstream, f.name, quoteOrNone(f.got), f.want)
		}
	}
	// No spelling of an owned or stripped name but the canonical identity
	// headers keygate (or the front proxy, from keygate's answer) set.
	names := map[string]string{} // received name -> normalized
	for k := range got.Environ {
		names[k] = normalize(strings.TrimPrefix(k, "HTTP_"))
	}
	for k := range got.Headers {
		names[k] = normalize(k)
	}
	for k, n := range names {
		if slices.Contains(stripped, n) {
			t.Errorf("VIOLATION: %s %s by %q: the %s application received %s", c.method, c.target, c.caller, got.Upstream, k)
		}
		if slices.Contains(owned, n) && got.Headers != nil && k != n {
			t.Errorf("VIOLATION: %s %s by %q: the %s application received %s, a spelling of %s", c.method, c.target, c.caller, got.Upstream, k, n)
		}
	}
}

// exchange sends raw, one HTTP/1.1 request, on a new connection to addr
// and reads the answer. The deadline only keeps a broken server from
// hanging the test; nothing here measures time.
func exchange(addr, raw string) (status int, body []byte, err error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// TestForwardAuthProtocol asks keygate's forward-auth endpoint directly,
// as a front proxy would, about the inputs of issue #7 that travel in the
// forward-auth headers: the answer must not be 2xx for what the rules
// deny; identity headers in any spelling, and '_' spellings of the
// strip-list names, make it refuse with 400.
func TestForwardAuthProtocol(t *testing.T) {
	idp := issuer(t)
	k := startKeygate(t, idp, "access:\n"+indent(seamRules, "  "))
	alice := idp.MustMint(t, keycloaktest.Token{Client: "demo-app", User: "alice"})
	admin := idp.MustMint(t, keycloaktest.Token{Client: "demo-app", User: "admin"})
	tests := []struct {
		name    string
		token   string
		headers []string
		allowed bool // 2xx wanted; otherwise any status but 2xx
		want    int  // exact status wanted; 0: not checked
	}{
		{"control/alice api", alice, []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/orders"}, true, 200},
		{"control/admin deletes", admin, []string{"X-Forwarded-Method: DELETE", "X-Forwarded-Uri: /orders/7"}, true, 200},
		{"2/X-Original-URI /admin#x", alice, []string{"X-Original-Method: GET", "X-Original-URI: /admin#x"}, false, 0},
		{"2/X-Forwarded-Uri /settings%23x", alice, []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /settings%23x"}, false, 0},
		{"3/X-Forwarded-Method delete", alice, []string{"X-Forwarded-Method: delete", "X-Forwarded-Uri: /orders/7"}, false, 0},
		{"3/X-Original-Method Delete", alice, []string{"X-Original-Method: Delete", "X-Original-URI: /orders/7"}, false, 0},
		{"4/settings/", alice, []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /settings/"}, false, 0},
		{"4/orders/7/", alice, []string{"X-Forwarded-Method: DELETE", "X-Forwarded-Uri: /orders/7/"}, false, 0},
		{"5/%252e%252e", alice, []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /public/%252e%252e/admin"}, false, 0},
		{"1/X_Auth_Username", "", []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /public/x", "X_Auth_Username: admin"}, false, 400},
		{"1/x-auth_roles", alice, []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/x", "x-auth_roles: admin"}, false, 400},
		{"1/X_Forwarded_Method", alice, []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/x", "X_Forwarded_Method: DELETE"}, false, 400},
		{"5/Remote_User", "", []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /public/x", "Remote_User: admin"}, false, 400},
		{"5/X_HTTP_Method_Override", alice, []string{"X-Forwarded-Method: POST", "X-Forwarded-Uri: /orders/7", "X_HTTP_Method_Override: DELETE"}, false, 400},
		{"5/X_Real_IP", "", []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /public/x", "X_Real_IP: 127.0.0.1"}, false, 400},
		// The plain spelling of a strip-list name is the front proxy's
		// to clear for the application (the examples do); front proxies
		// set some on the subrequest themselves.
		{"5/X-Real-IP from NGINX", "", []string{"X-Original-Method: GET", "X-Original-URI: /public/x", "X-Real-IP: 10.0.0.1"}, true, 200},
		{"5/X-Forwarded-Prefix from Traefik", alice, []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/x", "X-Forwarded-Prefix: /app"}, true, 200},
		{"6/malformed token", "abc$def", []string{"X-Forwarded-Method: GET", "X-Forwarded-Uri: /api/x"}, false, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			fmt.Fprintf(&b, "GET /auth HTTP/1.1\r\nHost: %s\r\n", k.addr)
			if tt.token != "" {
				fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", tt.token)
			}
			for _, h := range tt.headers {
				b.WriteString(h + "\r\n")
			}
			b.WriteString("Connection: close\r\n\r\n")
			status, body, err := exchange(k.addr, b.String())
			if err != nil {
				t.Fatal(err)
			}
			if ok := status >= 200 && status < 300; ok != tt.allowed {
				t.Errorf("forward-auth %q = %d %.200q; want allowed=%v", tt.headers, status, body, tt.allowed)
			}
			if tt.want != 0 && status != tt.want {
				t.Errorf("forward-auth %q = %d %.200q; want %d", tt.headers, status, body, tt.want)
			}
		})
	}
}

// normalize is SEAM-SPEC's normalized header name: ASCII lower case with
// every "_" as "-".
func normalize(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

func quoteOrNone(s *string) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%q", *s)
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

// echoApp starts an application that answers every request with what it
// received, as JSON ({"path", "host", "headers"}), and accepts WebSocket
// style upgrades (Connection: Upgrade, Upgrade: websocket): it answers
// 101, writes the same JSON as one line on the upgraded connection, then
// echoes every line it reads. It returns the application's host:port.
func echoApp(t *testing.T) string {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ := json.Marshal(map[string]any{"path": r.URL.Path, "host": r.Host, "headers": r.Header})
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			w.Header().Set("Content-Type", "application/json")
			w.Write(seen)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n%s\n", seen)
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString(line)
			brw.Flush()
		}
	}))
	t.Cleanup(up.Close)
	return strings.TrimPrefix(up.URL, "http://")
}

// seenByApp is what echoApp answers with.
type seenByApp struct {
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Headers http.Header `json:"headers"`
}

// TestFrontHeaders sends forwarding headers and Connection-listed header
// names through keygate's proxy and the NGINX and Caddy examples (review
// of issue #7, findings L1 and M4): no value a client chose under a
// forwarding name reaches the application, and a client's Connection
// header cannot make a front proxy drop keygate's identity headers after
// it set them. WebSocket upgrades still pass.
func TestFrontHeaders(t *testing.T) {
	need(t, "nginx")
	need(t, "caddy")
	idp := issuer(t)
	app := echoApp(t)
	k := startKeygate(t, idp, "upstream: http://"+app+"\naccess:\n"+indent(seamRules, "  "))
	alice := idp.MustMint(t, keycloaktest.Token{Client: "demo-app", User: "alice"})
	fronts := []struct {
		name      string
		addr      string
		websocket bool // the example passes upgrades on
	}{
		{"keygate", k.addr, true},
		{"nginx", startNGINX(t, k.addr, app), false},
		{"caddy", startCaddy(t, k.addr, app), true},
	}
	forwarding := []string{
		"Forwarded: for=spoof;host=spoof.example;proto=https", "X-Forwarded-Host: spoof.example",
		"X-Forwarded-Port: 4430 spoof", "X-Forwarded-Ssl: on spoof", "X-Forwarded-Scheme: https spoof",
		"X-Forwarded-Server: spoof", "X-Real-IP: spoof", "X-Client-IP: spoof", "True-Client-IP: spoof",
		"X-Original-Host: spoof.example", "X-Envoy-Original-Path: /admin/spoof",
		"X-Forwarded-For: spoof", "X-Forwarded-Proto: spoof",
	}
	tests := []struct {
		name     string
		target   string
		token    string
		headers  []string
		status   []int // any of these
		identity bool  // the application must see alice's identity headers
	}{
		{"forwarding headers, anonymous", "/public/x", "", forwarding, []int{200}, false},
		{"forwarding headers, alice", "/api/x", alice, forwarding, []int{200}, true},
		// Caddy passes '_' names to keygate, which refuses them (400).
		{"forwarding headers with _", "/public/x", "", []string{"X_Forwarded_Host: spoof.example", "X_Real_IP: spoof", "x_forwarded_port: spoof"}, []int{200, 400}, false},
		{"Connection lists identity headers", "/api/x", alice, []string{"Connection: X-Auth-Roles, X-Auth-Subject, X-Auth-Username"}, []int{200}, true},
		{"Connection keep-alive and identity headers", "/api/x", alice, []string{"Connection: keep-alive, X-Auth-Roles", "Connection: X-Auth-Username"}, []int{200}, true},
		{"Connection lists Authorization", "/api/x", alice, []string{"Connection: Authorization"}, []int{200}, true},
	}
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var b strings.Builder
					fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", tt.target, f.addr)
					if tt.token != "" {
						fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", tt.token)
					}
					for _, h := range tt.headers {
						b.WriteString(h + "\r\n")
					}
					if !strings.Contains(b.String(), "Connection:") {
						b.WriteString("Connection: close\r\n")
					}
					b.WriteString("\r\n")
					status, body, err := exchange(f.addr, b.String())
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Contains(tt.status, status) {
						t.Fatalf("GET %s = %d %.300q; want one of %v", tt.target, status, body, tt.status)
					}
					if status != 200 {
						return
					}
					var seen seenByApp
					if err := json.Unmarshal(body, &seen); err != nil {
						t.Fatalf("the application's answer %.300q: %v", body, err)
					}
					checkSeen(t, seen, f.addr, tt.identity)
				})
			}
			t.Run("websocket", func(t *testing.T) {
				if !f.websocket {
					t.Skip("the example does not pass upgrades on")
				}
				for _, conn := range []string{"Upgrade", "keep-alive, Upgrade, X-Auth-Roles, X-Auth-Username"} {
					raw := fmt.Sprintf("GET /api/ws HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: %s\r\nUpgrade: websocket\r\nX-Real-IP: spoof\r\n\r\n", f.addr, alice, conn)
					c, err := net.DialTimeout("tcp", f.addr, 10*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(30 * time.Second))
					io.WriteString(c, raw)
					br := bufio.NewReader(c)
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("Connection: %s: %v", conn, err)
					}
					if resp.StatusCode != http.StatusSwitchingProtocols {
						b, _ := io.ReadAll(resp.Body)
						t.Fatalf("Connection: %s: upgrade = %d %.300q; want 101", conn, resp.StatusCode, b)
					}
					line, err := br.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					var seen seenByApp
					if err := json.Unmarshal([]byte(line), &seen); err != nil {
						t.Fatalf("the application's first line %.300q: %v", line, err)
					}
					checkSeen(t, seen, f.addr, true)
					io.WriteString(c, "ping\n")
					if echo, err := br.ReadString('\n'); err != nil || echo != "ping\n" {
						t.Errorf("Connection: %s: echo over the upgraded connection = %q, %v; want \"ping\\n\"", conn, echo, err)
					}
				}
			})
		})
	}
}

// checkSeen checks what the application received: no value a client
// chose under a forwarding name (every such value holds "spoof"), an
// X-Forwarded-Host, when present, naming the host the client asked for
// (front is its host:port), and alice's identity headers when identity
// is set, none otherwise.
func checkSeen(t *testing.T, seen seenByApp, front string, identity bool) {
	t.Helper()
	for k, vs := range seen.Headers {
		for _, v := range vs {
			if strings.Contains(strings.ToLower(v), "spoof") {
				t.Errorf("the application received %s: %q, a value the client chose", k, v)
			}
		}
	}
	host, _, _ := net.SplitHostPort(front)
	for _, v := range seen.Headers.Values("X-Forwarded-Host") {
		if v != front && v != host {
			t.Errorf("the application received X-Forwarded-Host %q; want %s", v, front)
		}
	}
	want := map[string]string{"X-Auth-Username": "", "X-Auth-Roles": "", "X-Auth-Subject": ""}
	if identity {
		want = map[string]string{"X-Auth-Username": "alice", "X-Auth-Roles": "user", "X-Auth-Subject": "*"}
	}
	for name, w := range want {
		got := seen.Headers.Values(name)
		switch {
		case w == "" && len(got) != 0:
			t.Errorf("the application received %s %q; want none", name, got)
		case w != "" && len(got) != 1:
			t.Errorf("the application received %s %q; want one (a client's Connection header must not remove it)", name, got)
		case w != "" && w != "*" && got[0] != w:
			t.Errorf("the application received %s %q; want %q", name, got, w)
		}
	}
}
