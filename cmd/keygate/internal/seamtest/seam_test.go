package seamtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/keycloaktest"
)

// rules are the rules of issue #7: alice has the realm role user only.
const rules = `default: authenticated
rules:
  - {path: /public/**, require: permit_all}
  - {path: "/orders/{id}", methods: [DELETE], require: {role: admin}}
  - {path: /settings, require: {role: admin}}
  - {path: /admin/**, require: {role: admin}}
`

// owned are the normalized names (ASCII lower case, "_" as "-") of the
// identity headers keygate sets; stripped are those of the default strip
// list (SEAM-SPEC section 4), which other stacks trust for routing or
// identity, but X-Forwarded-Host, which keygate's proxy sets itself.
var (
	owned    = []string{"x-auth-subject", "x-auth-username", "x-auth-email", "x-auth-roles", "x-auth-client", "x-auth-scopes"}
	stripped = []string{"x-original-url", "x-rewrite-url", "x-original-uri", "x-original-method",
		"x-http-method-override", "x-http-method", "x-method-override", "x-forwarded-user", "x-forwarded-email",
		"x-forwarded-preferred-username", "x-forwarded-groups", "x-forwarded-access-token", "x-auth-request-user",
		"x-auth-request-email", "x-auth-request-preferred-username", "x-auth-request-groups",
		"x-auth-request-access-token", "remote-user", "x-remote-user", "x-forwarded-prefix",
		"forwarded", "x-forwarded-port", "x-forwarded-ssl", "x-forwarded-scheme", "x-forwarded-server",
		"x-real-ip", "x-client-ip", "true-client-ip", "x-original-host", "x-envoy-original-path"}
)

// normalize is SEAM-SPEC's normalized header name.
func normalize(name string) string { return strings.ReplaceAll(strings.ToLower(name), "_", "-") }

// variant is one generated request.
type variant struct {
	caller  string // "" (anonymous) or "alice"
	method  string // sent as is
	target  string // the request target, sent as is
	headers []string
}

func (v variant) String() string {
	s := fmt.Sprintf("%s %s", v.method, v.target)
	if v.caller != "" {
		s += " as " + v.caller
	}
	if len(v.headers) > 0 {
		s += fmt.Sprintf(" with %q", v.headers)
	}
	return s
}

// variants generates the request targets, methods and headers of the
// differential test: each issue #7 class, applied to requests the rules
// allow and deny.
func variants() []variant {
	bases := []struct{ method, path string }{
		{"GET", "/admin/users"}, {"GET", "/admin"}, {"GET", "/settings"},
		{"DELETE", "/orders/7"}, {"GET", "/public/x"}, {"GET", "/api/x"},
	}
	hexOf := func(c byte) string { return fmt.Sprintf("%%%02X", c) }
	forms := []func(p string) string{
		func(p string) string { return p },
		func(p string) string { return p + "/" },
		func(p string) string { return p + "//" },
		func(p string) string { return "/" + p },
		func(p string) string { return strings.ToUpper(p) },
		func(p string) string { return "/" + strings.ToUpper(p[1:2]) + p[2:] },
		func(p string) string { return p + "#x" },
		func(p string) string { return p + "#/../x" },
		func(p string) string { return p + "%23x" },
		func(p string) string { return p + "%2523x" },
		func(p string) string { return p + ";x" },
		func(p string) string { // ;x after the first segment
			if i := strings.IndexByte(p[1:], '/'); i >= 0 {
				return p[:i+1] + ";x" + p[i+1:]
			}
			return p + ";x/"
		},
		func(p string) string { return "/public/.." + p },
		func(p string) string { return "/public/%2e%2e" + p },
		func(p string) string { return "/public/%2E%2e" + p },
		func(p string) string { return "/public/.%2e" + p },
		func(p string) string { return "/public/%252e%252e" + p },
		func(p string) string { return "/public/%25252e%25252e" + p },
		func(p string) string { return "/public/..%2f" + p[1:] },
		func(p string) string { return "/public/..%252f" + p[1:] },
		func(p string) string { return "/public/%2e%2e%2f" + p[1:] },
		func(p string) string { return "/public/..;" + p },
		func(p string) string { return `/public\..` + p },
		func(p string) string { return "/public/..%5c" + p[1:] },
		func(p string) string { return "/public/..%255c" + p[1:] },
		func(p string) string { return "/public/%c0%ae%c0%ae" + p },
		func(p string) string { return "/." + p },
		func(p string) string { return p + "/." },
		func(p string) string { return p + "/%2e" },
		func(p string) string { return p + "/x/.." },
		func(p string) string { return "/" + hexOf(p[1]) + p[2:] },
		func(p string) string { return "/%25" + fmt.Sprintf("%02X", p[1]) + p[2:] },
		func(p string) string { return p + "?x=1" },
		func(p string) string { return "/public/x?" + p },
		func(p string) string { return p + "%00" },
		func(p string) string { return p + "%0a" },
		func(p string) string { return strings.Replace(p, "s", "%C5%BF", 1) },     // ſ: upper case is S
		func(p string) string { return strings.Replace(p, "i", "%C4%B1", 1) },     // ı: upper case is I
		func(p string) string { return strings.Replace(p, "n", "%E2%80%8Bn", 1) }, // zero-width space
		func(p string) string { return "http://keygate.test" + p },                // absolute form
		func(p string) string { return strings.Replace(p, "/", "/%2F", 1) },       // leading encoded slash
		func(p string) string { return strings.ReplaceAll(p, "/", "%2F") },        // every slash encoded
		func(p string) string { return p + "%20" },                                // trailing space
		func(p string) string { return strings.Replace(p, "/", "/%09", 2) },       // tab
	}
	var out []variant
	for _, b := range bases {
		for _, f := range forms {
			for _, who := range []string{"", "alice"} {
				out = append(out, variant{caller: who, method: b.method, target: f(b.path)})
			}
		}
	}
	// Methods: case variants of DELETE and GET on the protected routes.
	for _, m := range []string{"delete", "Delete", "dElEtE", "DELETE "} {
		for _, p := range []string{"/orders/7", "/orders/7/", "/ORDERS/7", "/orders/7#x", "/orders/%37"} {
			out = append(out, variant{caller: "alice", method: m, target: p})
		}
	}
	for _, m := range []string{"get", "Get", "gEt", "head", "post"} {
		for _, p := range []string{"/settings", "/admin/users", "/settings/"} {
			out = append(out, variant{caller: "alice", method: m, target: p})
		}
	}
	// Method overrides, in several spellings.
	for _, h := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X_HTTP_Method_Override", "x-http-method_override"} {
		for _, p := range []string{"/orders/7", "/public/x"} {
			out = append(out, variant{caller: "alice", method: "POST", target: p, headers: []string{h + ": DELETE"}})
		}
	}
	// Duplicate and lookalike identity and routing headers.
	headerSets := [][]string{
		{"X_Auth_Username: admin"}, {"x_auth_roles: admin"}, {"X-Auth_Subject: x"}, {"X-AUTH-ROLES: admin"},
		{"X-Auth-Roles: admin", "X-Auth-Roles: root"}, {"x-auth-client: evil"}, {"X_Auth_Email: a@example.com"},
		{"X-Auth-Username: admin", "X_Auth_Username: root"}, {"X-aUtH-rOlEs: admin"}, {"X-Auth-Scopes: admin"},
		{"X-Original-URL: /admin/users"}, {"X-Rewrite-URL: /settings"}, {"X_Original_URL: /admin/users"},
		{"X-Original-URI: /admin/users"}, {"Remote-User: admin"}, {"Remote_User: admin"}, {"X-Remote-User: admin"},
		{"X-Forwarded-User: admin"}, {"X-Forwarded-Email: admin@example.com"}, {"X-Forwarded-Groups: admin"},
		{"X-Forwarded-Prefix: /admin"}, {"X-Auth-Request-User: admin"}, {"X-Forwarded-Preferred-Username: admin"},
		{"X-Forwarded-Access-Token: x"},
		{"Forwarded: for=127.0.0.1;host=admin.internal;proto=https"}, {"X-Real-IP: 127.0.0.1"}, {"X_Real_IP: 127.0.0.1"},
		{"X-Forwarded-Port: 443", "X-Forwarded-Ssl: on", "X-Forwarded-Scheme: https"}, {"X-Forwarded-Server: admin"},
		{"X-Client-IP: 127.0.0.1", "True-Client-IP: 127.0.0.1"}, {"X-Original-Host: admin"},
		{"X-Envoy-Original-Path: /admin/users"}, {"x_forwarded_port: 443"},
	}
	for _, hs := range headerSets {
		for _, p := range []string{"/public/x", "/api/x"} {
			for _, who := range []string{"", "alice"} {
				out = append(out, variant{caller: who, method: "GET", target: p, headers: hs})
			}
		}
	}
	return out
}

// upstream is what the recording upstream saw: the request line as it
// arrived and every header field under the name it was sent with.
type upstream struct {
	Seam    bool        `json:"seam"`
	Method  string      `json:"method"`
	URI     string      `json:"uri"`
	Headers http.Header `json:"headers"`
}

// newRecorder starts the recording upstream: it answers every request
// with what it saw, as JSON.
func newRecorder(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(upstream{Seam: true, Method: r.Method, URI: r.RequestURI, Headers: r.Header})
	}))
	t.Cleanup(up.Close)
	return up
}

// served is how a permissive framework reads a request.
type served struct {
	method   string
	route    string
	identity map[string][]string // owned normalized name -> values, every spelling merged
	trusted  []string            // strip-list names present
}

// interpret reads a request the way the upstream stacks of issue #7 do,
// all at once: the method upper-cased (WSGI, Rails, werkzeug), a
// method-override header on POST (Rack, Symfony), a routing header
// (X-Original-URL, X-Rewrite-URL: Symfony's IIS support), the path
// decoded until stable (behind a decoding hop), cut at "#" (URL parsers
// drop the fragment), ";" parameters dropped (servlet containers), dot
// segments and "//" resolved, a trailing slash ignored (Express, Flask's
// strict_slashes=False), and, with fold, case folded with Unicode simple
// case mapping (.NET's OrdinalIgnoreCase, Java's equalsIgnoreCase). Header
// names are read with "_" and "-" the same, in any case (CGI, WSGI).
func interpret(method, uri string, h http.Header, fold bool) served {
	byName := map[string][]string{}
	for k, vs := range h {
		n := normalize(k)
		byName[n] = append(byName[n], vs...)
	}
	s := served{method: strings.ToUpper(method), identity: map[string][]string{}}
	if s.method == "POST" {
		for _, n := range []string{"x-http-method-override", "x-http-method", "x-method-override"} {
			if vs := byName[n]; len(vs) > 0 {
				s.method = strings.ToUpper(strings.TrimSpace(vs[0]))
				break
			}
		}
	}
	p := uri
	for _, n := range []string{"x-original-url", "x-rewrite-url"} {
		if vs := byName[n]; len(vs) > 0 {
			p = vs[0]
			break
		}
	}
	if u, err := url.Parse(p); err == nil && u.IsAbs() {
		p = u.RawPath
		if p == "" {
			p = u.Path
		}
	}
	p, _, _ = strings.Cut(p, "#")
	p, _, _ = strings.Cut(p, "?")
	for range 5 {
		d, err := url.PathUnescape(p)
		if err != nil || d == p {
			break
		}
		p = d
	}
	p, _, _ = strings.Cut(p, "#")
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		segs[i], _, _ = strings.Cut(seg, ";")
	}
	p = path.Clean("/" + strings.Join(segs, "/"))
	if fold {
		p = strings.ToLower(strings.ToUpper(p))
	}
	s.route = p
	for n, vs := range byName {
		switch {
		case slices.Contains(owned, n):
			s.identity[n] = vs
		case slices.Contains(stripped, n):
			s.trusted = append(s.trusted, n)
		}
	}
	return s
}

// exchange sends raw on a new connection to addr and reads one answer.
// The deadline only keeps a broken server from hanging the test.
func exchange(addr, raw string) (*http.Response, []byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestDifferential sends every variant through keygate, in proxy mode
// and as a forward-auth question, and checks each request that reaches
// the upstream against the rules keygate applied, read the way the
// upstream read the request. It runs twice: with the default
// (case-sensitive) rules and a case-sensitive upstream, and with
// case_insensitive_paths and an upstream that folds case.
func TestDifferential(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{
		Realm:            "dev",
		OmitDefaultRoles: true,
		Clients:          []keycloaktest.Client{{ID: "demo-app", DirectAccessGrants: true, Audiences: []string{"demo-api"}}},
		Users:            []keycloaktest.User{{Username: "alice", Password: "alice", RealmRoles: []string{"user"}}},
	})
	alice := idp.MustMint(t, keycloaktest.Token{Client: "demo-app", User: "alice"})
	principals := map[string]*keygate.Principal{
		"":      nil,
		"alice": {Username: "alice", Subject: idp.Subject("alice"), Roles: []string{"user"}},
	}
	tokens := map[string]string{"": "", "alice": alice}
	up := newRecorder(t)
	vs := variants()

	for _, tc := range []struct {
		name string
		fold bool
	}{{"case-sensitive", false}, {"case-insensitive", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rulesYAML := "access:\n" + indent(rules, "  ")
			if tc.fold {
				rulesYAML += "  case_insensitive_paths: true\n"
			}
			f, err := config.Load("seam.yaml", []byte(fmt.Sprintf(`listen: 127.0.0.1:0
upstream: %s
forward_auth: {path: /auth}
issuer: %s
audiences: [demo-api]
timeouts: {shutdown: 5s}
%s`, up.URL, idp.Issuer(), rulesYAML)), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("keygate does not load the configuration: %v", err)
			}
			// The oracle: the same rules, compiled on their own.
			oracle, err := authz.Compile(*f.Config.Access)
			if err != nil {
				t.Fatal(err)
			}
			s, err := server.New(f.Config, server.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s.Shutdown(ctx)
			})
			select {
			case <-s.KeysReady():
			case <-time.After(10 * time.Second):
				t.Fatal("keygate has no keys")
			}
			addr := s.Addr().String()
			d := &differential{addr: addr, fold: tc.fold, oracle: oracle, principals: principals, tokens: tokens}
			d.baseline(t)

			var (
				mu         sync.Mutex
				violations []string
				reached    int
				wg         sync.WaitGroup
			)
			type job struct {
				v    variant
				mode string
			}
			jobs := make(chan job)
			for range 4 {
				wg.Go(func() {
					for j := range jobs {
						r, bad := d.check(j.v, j.mode)
						mu.Lock()
						if r {
							reached++
						}
						for _, b := range bad {
							violations = append(violations, fmt.Sprintf("%s %s: %s", j.mode, j.v, b))
						}
						mu.Unlock()
					}
				})
			}
			for _, v := range vs {
				jobs <- job{v, "proxy"}
				jobs <- job{v, "forward-auth"}
			}
			close(jobs)
			wg.Wait()
			slices.Sort(violations)
			t.Logf("%d variants, each in proxy mode and as a forward-auth question: %d requests, %d reached the upstream, %d violations",
				len(vs), 2*len(vs), reached, len(violations))
			for i, v := range violations {
				if i == 60 {
					t.Errorf("... and %d more violations", len(violations)-i)
					break
				}
				t.Errorf("VIOLATION %s", v)
			}
		})
	}
}

// differential is one keygate under test and how to judge its answers.
type differential struct {
	addr       string
	fold       bool
	oracle     *authz.Policy
	principals map[string]*keygate.Principal
	tokens     map[string]string
	identity   map[string][]string // what the upstream sees for alice: owned name -> values
}

// baseline records the identity headers keygate sends for alice on a
// plain allowed request; every other request of alice's that reaches the
// upstream must carry exactly these.
func (d *differential) baseline(t *testing.T) {
	t.Helper()
	resp, body, err := exchange(d.addr, fmt.Sprintf("GET /api/x HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", d.addr, d.tokens["alice"]))
	if err != nil {
		t.Fatal(err)
	}
	var up upstream
	if resp.StatusCode != 200 || json.Unmarshal(body, &up) != nil || !up.Seam {
		t.Fatalf("alice's GET /api/x = %d %q; want the upstream's answer", resp.StatusCode, body)
	}
	d.identity = interpret(up.Method, up.URI, up.Headers, d.fold).identity
	if got := d.identity["x-auth-username"]; !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("the upstream saw X-Auth-Username %q for alice; want alice", got)
	}
}

// check sends v in mode ("proxy" or "forward-auth") and returns whether
// it reached the upstream and what went wrong.
func (d *differential) check(v variant, mode string) (reached bool, bad []string) {
	var b strings.Builder
	if mode == "proxy" {
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", v.method, v.target)
	} else {
		fmt.Fprintf(&b, "GET /auth HTTP/1.1\r\nX-Forwarded-Method: %s\r\nX-Forwarded-Uri: %s\r\n", v.method, v.target)
	}
	fmt.Fprintf(&b, "Host: %s\r\n", d.addr)
	if tok := d.tokens[v.caller]; tok != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", tok)
	}
	for _, h := range v.headers {
		b.WriteString(h + "\r\n")
	}
	if v.method != "GET" && mode == "proxy" {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	resp, body, err := exchange(d.addr, b.String())
	if err != nil {
		// A connection keygate's HTTP server closes without an answer
		// (a request line it cannot parse) reaches nothing.
		return false, nil
	}
	if resp.StatusCode >= 500 {
		return false, []string{fmt.Sprintf("keygate answered %d %.120q", resp.StatusCode, body)}
	}
	var seen served
	switch mode {
	case "proxy":
		var up upstream
		if json.Unmarshal(body, &up) != nil || !up.Seam {
			return false, nil
		}
		seen = interpret(up.Method, up.URI, up.Headers, d.fold)
	default:
		if resp.StatusCode/100 != 2 {
			return false, nil
		}
		// A front proxy that, like the Caddy example, removes the
		// client's identity and strip-list headers by their exact name
		// (any case; '_' spellings pass, and keygate refuses those) and
		// passes the request on with keygate's identity answer.
		h := http.Header{}
		for _, line := range v.headers {
			k, val, _ := strings.Cut(line, ":")
			if n := strings.ToLower(k); slices.Contains(owned, n) || slices.Contains(stripped, n) {
				continue
			}
			h[k] = append(h[k], strings.TrimSpace(val))
		}
		for k, vals := range resp.Header {
			if slices.Contains(owned, strings.ToLower(k)) {
				h[k] = vals
			}
		}
		seen = interpret(v.method, v.target, h, d.fold)
	}
	req, _ := d.oracle.Match(seen.method, seen.route)
	if !req.Allows(d.principals[v.caller]) {
		bad = append(bad, fmt.Sprintf("the upstream served %s %s, which the rules deny (%v)", seen.method, seen.route, req))
	}
	want := map[string][]string{}
	if v.caller != "" {
		want = d.identity
	}
	for _, n := range owned {
		if !slices.Equal(seen.identity[n], want[n]) {
			bad = append(bad, fmt.Sprintf("the upstream read %s %q; want %q", n, seen.identity[n], want[n]))
		}
	}
	for _, n := range seen.trusted {
		bad = append(bad, fmt.Sprintf("the upstream received %s", n))
	}
	return true, bad
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
