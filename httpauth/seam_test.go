package httpauth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
)

// The tests in this file cover the request seam of issue #7: what the
// rules decide must be what the handler or upstream serves.

const (
	descMethod     = "the request method is not a valid method"
	descStart      = "the request path must start with /"
	descChar       = "the request path holds a forbidden character"
	descTwice      = "the request path is encoded twice (%25)"
	descUTF8       = "the request path is not valid UTF-8"
	descCanonical  = "the request path is not canonical"
	descEncodedSep = "the request path holds an encoded slash"
	descNotAllowed = "the request method is not allowed"
	descSegmentEnd = "the request path has a segment ending in a dot or a space"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		name   string
		method string
		target string // parsed with url.ParseRequestURI, as net/http and forward-auth do
		want   string // Description of the refusal; "" accepts
	}{
		{"plain", "GET", "/admin/x", ""},
		{"root", "GET", "/", ""},
		{"query passes unchanged", "GET", "/admin?a=%2e%2e/../x;y", ""},
		{"hash in the query", "GET", "/admin?x#y", ""},
		{"trailing slash", "GET", "/settings/", ""},
		{"id with trailing slash", "DELETE", "/orders/7/", ""},
		{"upper case path", "GET", "/ADMIN/x", ""},
		{"encoded letters", "GET", "/%61dmin/x", ""},
		{"encoded space", "GET", "/a%20b", ""},
		{"UTF-8", "GET", "/caf%C3%A9", ""},
		{"raw UTF-8", "GET", "/café", ""},
		{"absolute form", "GET", "http://example.com/admin/x", ""},

		// Methods: RFC 9110 tokens of 1 to 32 bytes, any case, and
		// (review of #7) one of the seven methods StrictHttpFirewall
		// allows: any other may be routed like GET past a GET rule.
		{"lower-case method", "delete", "/orders/7", ""},
		{"mixed-case method", "Delete", "/orders/7", ""},
		{"every allowed method", "OPTIONS", "/", ""},
		{"PATCH", "patch", "/", ""},
		{"extension method", "M-SEARCH", "/", descNotAllowed},
		{"made-up method", "FOO", "/reports/q3", descNotAllowed},
		{"GET lookalike", "GETS", "/reports/q3", descNotAllowed},
		{"WebDAV", "PROPFIND", "/reports/q3", descNotAllowed},
		{"TRACE", "TRACE", "/", descNotAllowed},
		{"CONNECT", "CONNECT", "/", descNotAllowed},
		{"tchar method", "!#$%&'*+-.^_`|~09az", "/", descNotAllowed},
		{"32-byte method", strings.Repeat("A", 32), "/", descNotAllowed},
		{"33-byte method", strings.Repeat("A", 33), "/", descMethod},
		{"11 kB method", strings.Repeat("A", 11<<10), "/", descMethod},
		{"empty method", "", "/", descMethod},
		{"method with a trailing space", "GET ", "/", descMethod},
		{"method with a leading space", " GET", "/", descMethod},
		{"method with a space inside", "DE LETE", "/", descMethod},
		{"method with a tab", "GET\t", "/", descMethod},
		{"method with CRLF", "GET\r\nX-A: b", "/", descMethod},
		{"method with NUL", "GET\x00", "/", descMethod},
		{"method with a slash", "GET/1.1", "/", descMethod},
		{"method with a colon", "GET:", "/", descMethod},
		{"method with parentheses", "(GET)", "/", descMethod},
		{"non-ASCII method", "GÉT", "/", descMethod},
		{"long s method", "PO\u017fT", "/", descMethod},
		{"fullwidth method", "ＧＥＴ", "/", descMethod},

		// Issue #7 point 2: "#" in the target.
		{"raw hash", "GET", "/admin#x", descChar},
		{"raw hash at the end", "GET", "/admin#", descChar},
		{"raw hash after a slash", "GET", "/public/#/../admin", descChar},
		{"encoded hash", "GET", "/admin%23x", descChar},
		{"encoded hash, lower case", "GET", "/admin%23", descChar},

		// Review of #7: an encoded "?" is the same class as "#".
		{"encoded question mark", "GET", "/admin%3Fx", descChar},
		{"encoded question mark, then a segment", "GET", "/admin%3F/users", descChar},
		{"encoded question mark, lower case", "GET", "/admin%3f", descChar},

		// Review of #7: segments that Windows servers trim.
		{"segment ending in a dot", "GET", "/admin./x", descSegmentEnd},
		{"path ending in a dot", "GET", "/admin.", descSegmentEnd},
		{"segment ending in dots", "GET", "/admin.../x", descSegmentEnd},
		{"segment ending in a space", "GET", "/admin%20/x", descSegmentEnd},
		{"path ending in a space", "GET", "/settings%20", descSegmentEnd},
		{"dot inside a segment", "GET", "/v1.2/x", ""},
		{"leading dot", "GET", "/.well-known/openid-configuration", ""},
		{"space inside a segment", "GET", "/a%20b/c", ""},

		// Issue #7 point 5: double encoding.
		{"double-encoded hash", "GET", "/admin%2523x", descTwice},
		{"double-encoded dots", "GET", "/public/%252e%252e/admin", descTwice},
		{"double-encoded dots, upper case", "GET", "/public/%252E%252E/admin", descTwice},
		{"double-encoded slash", "GET", "/admin%252fx", descTwice},
		{"double-encoded backslash", "GET", "/admin%255cx", descTwice},
		{"double-encoded percent", "GET", "/a%2525", descTwice},
		{"encoded percent", "GET", "/100%25", descTwice},
		{"encoded percent alone", "GET", "/%25", descTwice},

		// Refused before #7, still refused.
		{"asterisk", "OPTIONS", "*", descStart},
		{"dot dot", "GET", "/public/../admin", descCanonical},
		{"dot", "GET", "/./admin", descCanonical},
		{"trailing dot", "GET", "/admin/.", descCanonical},
		{"encoded dot dot", "GET", "/public/%2e%2e/admin", descCanonical},
		{"encoded dot dot, upper case", "GET", "/public/%2E%2E/admin", descCanonical},
		{"half-encoded dot dot", "GET", "/public/.%2e/admin", descCanonical},
		{"double slash", "GET", "//admin", descCanonical},
		{"double slash inside", "GET", "/public//admin", descCanonical},
		{"two trailing slashes", "GET", "/settings//", descCanonical},
		{"encoded slash", "GET", "/admin%2Fx", descEncodedSep},
		{"encoded slash, lower case", "GET", "/admin%2fx", descEncodedSep},
		{"encoded dot dot slash", "GET", "/public/..%2Fadmin", descCanonical},
		{"encoded backslash", "GET", "/admin%5Cx", descChar},
		{"raw backslash", "GET", "/admin\\x", descChar},
		{"semicolon", "GET", "/admin;x=1/users", descChar},
		{"encoded semicolon", "GET", "/admin%3Bx", descChar},
		{"NUL", "GET", "/admin%00", descChar},
		{"newline", "GET", "/admin%0Ax", descChar},
		{"carriage return", "GET", "/admin%0D", descChar},
		{"tab", "GET", "/admin%09", descChar},
		{"DEL", "GET", "/admin%7F", descChar},

		// Not UTF-8 once decoded.
		{"invalid byte", "GET", "/admin%FF", descUTF8},
		{"truncated sequence", "GET", "/caf%C3", descUTF8},
		{"overlong slash", "GET", "/admin%C0%AFx", descUTF8},
		{"overlong dot", "GET", "/%C0%AE%C0%AE/admin", descUTF8},
		{"surrogate", "GET", "/a%ED%A0%80", descUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.target)
			if err != nil {
				t.Fatalf("url.ParseRequestURI(%q) = %v", tt.target, err)
			}
			checkTargetResult(t, tt.method, u, tt.want)
		})
	}
}

// checkTargetResult checks CheckTarget(method, u) against want, the
// Description of the refusal or "" for none.
func checkTargetResult(t *testing.T, method string, u *url.URL, want string) {
	t.Helper()
	err := httpauth.CheckTarget(method, u)
	if want == "" {
		if err != nil {
			t.Errorf("CheckTarget(%q, %q) = %v; want nil", method, u, err)
		}
		return
	}
	var e *httpauth.Error
	if !errors.As(err, &e) {
		t.Fatalf("CheckTarget(%q, %q) = %v (%T); want a *httpauth.Error", method, u, err, err)
	}
	if e.Status != 400 || e.Code != "invalid_request" || e.Description != want || e.Err != nil {
		t.Errorf("CheckTarget(%q, %q) = %d %s %q (cause %v); want 400 invalid_request %q", method, u, e.Status, e.Code, e.Description, e.Err, want)
	}
}

func TestCheckTargetURLShapes(t *testing.T) {
	// The same target reaches CheckTarget in other shapes than a parsed
	// request line: url.Parse splits a fragment off, and callers build
	// URLs by hand.
	parse := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name string
		u    *url.URL
		want string
	}{
		{"url.Parse fragment", parse("/admin#x"), descChar},
		{"url.Parse empty fragment", parse("/admin#"), ""}, // nothing follows the "#"; Path is /admin
		{"url.Parse encoded fragment", parse("/admin#%2e"), descChar},
		{"url.Parse clean", parse("/admin/x?y=1"), ""},
		{"nil URL", nil, descStart},
		{"relative", &url.URL{Path: "admin"}, descStart},
		{"empty path", &url.URL{}, descStart},
		{"opaque", parse("mailto:a@b"), descStart},
		{"path with hash", &url.URL{Path: "/admin#x"}, descChar},
		{"path with percent", &url.URL{Path: "/a%2e"}, descTwice},
		{"path with NUL", &url.URL{Path: "/a\x00"}, descChar},
		{"path not UTF-8", &url.URL{Path: "/a\xff"}, descUTF8},
		{"raw path with encoded slash", &url.URL{Path: "/a/b", RawPath: "/a%2Fb"}, descEncodedSep},
		{"raw path double-encoded", &url.URL{Path: "/a", RawPath: "/a%252e"}, descTwice},
		{"raw fragment", &url.URL{Path: "/a", RawFragment: "%2e"}, descChar},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkTargetResult(t, "GET", tt.u, tt.want) })
	}
}

// seamRules are the rules of issue #7.
func seamRules(fold bool) authz.Config {
	return authz.Config{
		Rules: []authz.Rule{
			{Path: "/public/**", Require: authz.PermitAll()},
			{Path: "/orders/{id}", Methods: []string{"DELETE"}, Require: authz.Role("admin")},
			{Path: "/settings", Require: authz.Role("admin")},
			{Path: "/admin/**", Require: authz.Role("admin")},
		},
		Default:              authz.Authenticated(),
		CaseInsensitivePaths: fold,
	}
}

// TestAuthorizeSeam decides the inputs of issue #7 points 2 to 5 as
// forward-auth does: method and URI from headers, the URI parsed with
// url.ParseRequestURI.
func TestAuthorizeSeam(t *testing.T) {
	e := newEnv(t)
	alice := e.token(t, "alice", nil)
	admin := e.token(t, "admin", nil)
	tests := []struct {
		name        string
		fold        bool
		method, uri string
		tok         string
		want        int // 0: allowed
	}{
		{"hash", false, "GET", "/admin#x", alice, 400},
		{"hash, admin", false, "GET", "/admin#x", admin, 400},
		{"encoded hash", false, "GET", "/admin%23x", alice, 400},
		{"double-encoded hash", false, "GET", "/admin%2523x", alice, 400},
		{"hash on a public route", false, "GET", "/public/x#/../../admin", "", 400},
		{"hash after the admin path", false, "GET", "/admin/x#y", alice, 400},
		{"admin path", false, "GET", "/admin", alice, 403},

		{"DELETE", false, "DELETE", "/orders/7", alice, 403},
		{"delete", false, "delete", "/orders/7", alice, 403},
		{"Delete", false, "Delete", "/orders/7", alice, 403},
		{"dElEtE with trailing slash", false, "dElEtE", "/orders/7/", alice, 403},
		{"delete by admin", false, "delete", "/orders/7", admin, 0},
		{"GET on the DELETE rule's path", false, "get", "/orders/7", alice, 0},
		{"method with a space", false, "DELETE ", "/orders/7", alice, 400},
		{"unicode method", false, "DELETÉ", "/orders/7", alice, 400},

		{"settings", false, "GET", "/settings", alice, 403},
		{"settings/", false, "GET", "/settings/", alice, 403},
		{"settings//", false, "GET", "/settings//", alice, 400},
		{"orders/7/", false, "DELETE", "/orders/7/", alice, 403},
		{"settings/ by admin", false, "GET", "/settings/", admin, 0},

		{"double-encoded dots", false, "GET", "/public/%252e%252e/admin/x", "", 400},
		{"double-encoded slash", false, "GET", "/public%252fadmin", "", 400},
		{"encoded percent", false, "GET", "/public/100%25", "", 400},

		{"ADMIN, case-sensitive", false, "GET", "/ADMIN/x", alice, 0}, // the default: a case-sensitive upstream has no /ADMIN
		{"ADMIN, case-insensitive", true, "GET", "/ADMIN/x", alice, 403},
		{"Admin/, case-insensitive", true, "GET", "/Admin/", alice, 403},
		{"SETTINGS/, case-insensitive", true, "GET", "/SETTINGS/", alice, 403},
		{"ADMIN by admin, case-insensitive", true, "GET", "/ADMIN/x", admin, 0},
		{"PUBLIC, case-insensitive", true, "GET", "/PUBLIC/x", "", 0},
		{"PUBLIC, case-sensitive", false, "GET", "/PUBLIC/x", "", 401},
	}
	policies := map[bool]*authz.Policy{}
	for _, fold := range []bool{false, true} {
		p, err := authz.Compile(seamRules(fold))
		if err != nil {
			t.Fatal(err)
		}
		policies[fold] = p
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := httpauth.New(httpauth.Config{Verifier: e.verifier, Policy: policies[tt.fold]})
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.ParseRequestURI(tt.uri)
			if err != nil {
				t.Fatalf("url.ParseRequestURI(%q) = %v", tt.uri, err)
			}
			r := httptest.NewRequest("GET", "/auth", nil)
			if tt.tok != "" {
				r.Header.Set("Authorization", "Bearer "+tt.tok)
			}
			_, refusal := m.Authorize(r, tt.method, u)
			got := 0
			if refusal != nil {
				var e *httpauth.Error
				if !errors.As(refusal, &e) {
					t.Fatalf("Authorize error is %T; want *httpauth.Error", refusal)
				}
				got = e.Status
			}
			if got != tt.want {
				t.Errorf("Authorize(%q, %q) = %d (%v); want %d", tt.method, tt.uri, got, refusal, tt.want)
			}
		})
	}
}

func TestTokenStatus(t *testing.T) {
	// RFC 6750 as Spring Security answers it: a present but malformed
	// token is 401 invalid_token; 400 invalid_request is for malformed
	// requests.
	e := newEnv(t)
	alice := e.token(t, "alice", nil)
	const malformed = `Bearer realm="keygate", error="invalid_token", error_description="malformed token"`
	tests := []struct {
		name      string
		query     bool
		target    string
		auth      []string
		status    int
		challenge string // "" skips the check
	}{
		{"Bearer alone", false, "/api/x", []string{"Bearer"}, 401, malformed},
		{"Bearer and a space", false, "/api/x", []string{"Bearer "}, 401, malformed},
		{"Bearer and spaces", false, "/api/x", []string{"Bearer    "}, 401, malformed},
		{"lower-case bearer alone", false, "/api/x", []string{"bearer"}, 401, malformed},
		{"token with a space", false, "/api/x", []string{"Bearer abc def"}, 401, malformed},
		{"token with a quote", false, "/api/x", []string{`Bearer abc"def`}, 401, malformed},
		{"token with a comma", false, "/api/x", []string{"Bearer a,b"}, 401, malformed},
		{"token with padding inside", false, "/api/x", []string{"Bearer a=b"}, 401, malformed},
		{"token of padding", false, "/api/x", []string{"Bearer ==="}, 401, malformed},
		{"non-ASCII token", false, "/api/x", []string{"Bearer tökén"}, 401, malformed},
		{"token with a tab", false, "/api/x", []string{"Bearer a\tb"}, 401, malformed},
		{"11 kB of garbage", false, "/api/x", []string{"Bearer " + strings.Repeat("!", 11<<10)}, 401, malformed},
		{"not a JWS", false, "/api/x", []string{"Bearer abc.def"}, 401,
			`Bearer realm="keygate", error="invalid_token", error_description="malformed token"`},
		{"query token malformed", true, "/api/x?access_token=a%20b", nil, 401, malformed},
		{"query token empty", true, "/api/x?access_token=", nil, 401, malformed},
		{"malformed token on a public route", false, "/public/x", []string{"Bearer a b"}, 200, ""},

		{"two Authorization headers", false, "/api/x", []string{"Bearer " + alice, "Bearer " + alice}, 400,
			`Bearer realm="keygate", error="invalid_request", error_description="more than one Authorization header"`},
		{"two malformed Authorization headers", false, "/api/x", []string{"Bearer", "Bearer"}, 400, ""},
		{"header and query token", true, "/api/x?access_token=" + alice, []string{"Bearer " + alice}, 400,
			`Bearer realm="keygate", error="invalid_request", error_description="more than one access token in the request"`},
		{"two query tokens", true, "/api/x?access_token=a&access_token=b", nil, 400, ""},
		{"bad path with a good token", false, "/api/%252e", []string{"Bearer " + alice}, 400, ""},
		{"bad path with a bad token", false, "/api/%252e", []string{"Bearer"}, 400, ""},

		{"good token", false, "/api/x", []string{"Bearer " + alice}, 200, ""},
		{"other scheme", false, "/api/x", []string{"Basic YTpi"}, 401, `Bearer realm="keygate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := httpauth.New(httpauth.Config{Verifier: e.verifier, Policy: e.policy, AllowQueryToken: tt.query})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Header["Authorization"] = tt.auth
			w := httptest.NewRecorder()
			m.Wrap(echo).ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status = %d; want %d (body %s)", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); tt.challenge != "" && got != tt.challenge {
				t.Errorf("WWW-Authenticate = %s\n                    want %s", got, tt.challenge)
			}
		})
	}
}

func TestMalformedTokenError(t *testing.T) {
	e := newEnv(t)
	m, _ := httpauth.New(httpauth.Config{Verifier: e.verifier})
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer a b")
	_, refusal := m.Authorize(r, "GET", r.URL)
	if refusal == nil || !errors.Is(refusal, keygate.ErrMalformed) || strings.Contains(refusal.Error(), "a b") {
		t.Errorf("Authorize(Bearer a b) = %v; want a refusal that is keygate.ErrMalformed and does not quote the token", refusal)
	}
}

// errVerifier fails every token with err.
type errVerifier struct{ err error }

func (v errVerifier) Verify(context.Context, string) (*keygate.Principal, error) { return nil, v.err }

func TestLogCaps(t *testing.T) {
	// Issue #7 point 7: an 11 kB attacker-chosen value must not become
	// an 11 kB log line.
	const n = 11 << 10
	big := strings.Repeat("k", n)
	kidErr := &keygate.Error{Kind: keygate.ErrUnknownKey, Detail: fmt.Sprintf("kid %q", big)}
	tests := []struct {
		name   string
		method string
		target string
		field  string // the attribute that must be cut
		full   int    // its full length
	}{
		{"error quoting a kid", "GET", "/api/x", "error", len(kidErr.Error())},
		{"path", "GET", "/api/" + big, "path", len("/api/") + n},
		{"method", big, "/api/x", "method", n},
		{"method with multi-byte letters", "x" + strings.Repeat("é", n/2), "/api/x", "method", 1 + n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			m, err := httpauth.New(httpauth.Config{Verifier: errVerifier{kidErr}, Logger: newJSONLogger(&buf)})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Method = tt.method
			r.Header.Set("Authorization", "Bearer abc")
			m.Wrap(echo).ServeHTTP(httptest.NewRecorder(), r)
			if buf.Len() > 2048 {
				t.Errorf("log line is %d bytes; want at most 2048", buf.Len())
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			got, _ := line[tt.field].(string)
			marker := fmt.Sprintf("…(%d bytes)", tt.full)
			if !strings.HasSuffix(got, marker) || len(got) > 256+len(marker) || len(got) < 250 {
				t.Errorf("%s = %d bytes ending %q; want at most 256 bytes and the marker %q", tt.field, len(got), got[max(0, len(got)-40):], marker)
			}
			if strings.ContainsRune(got, '\uFFFD') {
				t.Errorf("%s was cut inside a character", tt.field)
			}
		})
	}
	// Short values are logged whole, with no marker.
	var buf bytes.Buffer
	m, _ := httpauth.New(httpauth.Config{Verifier: errVerifier{errors.New("short")}, Logger: newJSONLogger(&buf)})
	r := httptest.NewRequest("GET", "/api/x", nil)
	r.Header.Set("Authorization", "Bearer abc")
	m.Wrap(echo).ServeHTTP(httptest.NewRecorder(), r)
	if !strings.Contains(buf.String(), `"error":"short"`) || !strings.Contains(buf.String(), `"path":"/api/x"`) {
		t.Errorf("log = %s; want the short values whole", buf.String())
	}
}

// seen is what a handler saw of one request.
type seen struct {
	Method, Path, RawPath, RequestURI string
}

// recorder is a handler that records what it sees, and the caller.
type recorder struct {
	mu   sync.Mutex
	last *seen
}

func (h *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.last = &seen{r.Method, r.URL.Path, r.URL.RawPath, r.RequestURI}
	h.mu.Unlock()
	w.Write([]byte("served"))
}

func (h *recorder) take() *seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.last
	h.last = nil
	return s
}

// rawRequest sends the request line line, the Authorization header auth
// if not empty, and Connection: close to addr over a plain connection,
// so that no client normalizes the target, and returns the answer's
// status.
func rawRequest(t *testing.T, addr, line, auth string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	b.WriteString(line + "\r\nHost: upstream.test\r\n")
	if auth != "" {
		b.WriteString("Authorization: " + auth + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: reading the answer: %v", line, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// upstreamViews returns the requests an upstream behind the middleware
// may take s for: the method upper-cased as frameworks do; the path as
// decoded, decoded once more, cut at "#" or ";" as a front proxy or a
// servlet container would, without its trailing slash and, for a
// case-insensitive upstream, in lower case.
func upstreamViews(s *seen, fold bool) (methods, paths []string) {
	methods = []string{s.Method, strings.ToUpper(s.Method)}
	paths = []string{s.Path}
	if p, err := url.PathUnescape(s.Path); err == nil {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if i := strings.IndexAny(p, "#;"); i >= 0 {
			paths = append(paths, p[:i])
		}
	}
	for _, p := range paths {
		if q := strings.TrimSuffix(p, "/"); q != "" && q != p {
			paths = append(paths, q)
		}
	}
	if fold {
		for _, p := range paths {
			paths = append(paths, strings.ToLower(p))
		}
	}
	return methods, paths
}

// TestServerSeam sends raw request lines to a real http.Server behind the
// middleware. For every request the handler serves, each way an upstream
// may read what the handler saw must be allowed by the rules for the
// caller: the rules and the upstream never disagree about the route.
func TestServerSeam(t *testing.T) {
	e := newEnv(t)
	alice := "Bearer " + e.token(t, "alice", nil)
	tests := []struct {
		line   string
		auth   string
		fold   bool
		status int
	}{
		{"GET /admin#x HTTP/1.1", alice, false, 400},
		{"GET /admin/x#y HTTP/1.1", alice, false, 400},
		{"GET /admin%23x HTTP/1.1", alice, false, 400},
		{"GET /admin%2523x HTTP/1.1", alice, false, 400},
		{"GET /public/x#/../../admin HTTP/1.1", "", false, 400},
		{"GET /admin?#x HTTP/1.1", alice, false, 403},
		{"GET /public/x?y#/admin HTTP/1.1", "", false, 200},

		{"delete /orders/7 HTTP/1.1", alice, false, 403},
		{"Delete /orders/7 HTTP/1.1", alice, false, 403},
		{"DELETE /orders/7/ HTTP/1.1", alice, false, 403},
		{"delete /orders/7/ HTTP/1.1", alice, false, 403},
		{"GET /orders/7/ HTTP/1.1", alice, false, 200},

		{"GET /settings HTTP/1.1", alice, false, 403},
		{"GET /settings/ HTTP/1.1", alice, false, 403},
		{"GET /settings// HTTP/1.1", alice, false, 400},
		{"GET /settings%2F HTTP/1.1", alice, false, 400},

		{"GET /public/%252e%252e/admin/x HTTP/1.1", "", false, 400},
		{"GET /public/%2e%2e/admin/x HTTP/1.1", "", false, 400},
		{"GET /public/..%2fadmin/x HTTP/1.1", "", false, 400},
		{"GET /public/..%5cadmin/x HTTP/1.1", "", false, 400},
		{"GET /public%252fadmin HTTP/1.1", "", false, 400},
		{"GET /public/%25 HTTP/1.1", "", false, 400},
		{"GET /public/a%00 HTTP/1.1", "", false, 400},
		{"GET /public/a%ff HTTP/1.1", "", false, 400},
		{"GET /public/a;b HTTP/1.1", "", false, 400},
		{"GET //admin/x HTTP/1.1", alice, false, 400},
		{"GET * HTTP/1.1", alice, false, 400},
		{"GET http://upstream.test/admin/x HTTP/1.1", alice, false, 403},
		{"GET /public/%61dmin HTTP/1.1", "", false, 200},
		{"GET /%61dmin/x HTTP/1.1", alice, false, 403},

		{"GET /ADMIN/x HTTP/1.1", alice, true, 403},
		{"GET /Admin/ HTTP/1.1", alice, true, 403},
		{"GET /SETTINGS/ HTTP/1.1", alice, true, 403},
		{"DeLeTe /ORDERS/7/ HTTP/1.1", alice, true, 403},
		{"GET /PUBLIC/x HTTP/1.1", "", true, 200},
		{"GET /ADMIN/x HTTP/1.1", alice, false, 200}, // case-sensitive upstream: /ADMIN/x is not /admin/x

		{"GET /public/x HTTP/1.1", "Bearer", false, 200},
		{"GET /api/x HTTP/1.1", "Bearer", false, 401},
		{"GET /api/x HTTP/1.1", "Bearer a b", false, 401},
	}
	for _, fold := range []bool{false, true} {
		policy, err := authz.Compile(seamRules(fold))
		if err != nil {
			t.Fatal(err)
		}
		m, err := httpauth.New(httpauth.Config{Verifier: e.verifier, Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		h := &recorder{}
		srv := httptest.NewServer(m.Wrap(h))
		addr := srv.Listener.Addr().String()
		caller := map[string]*keygate.Principal{"": nil}
		p, verr := e.verifier.Verify(context.Background(), strings.TrimPrefix(alice, "Bearer "))
		if verr != nil {
			t.Fatal(verr)
		}
		caller[alice] = p
		for _, tt := range tests {
			if tt.fold != fold {
				continue
			}
			got := rawRequest(t, addr, tt.line, tt.auth)
			s := h.take()
			if got != tt.status {
				t.Errorf("fold %v: %q = %d; want %d (handler saw %+v)", fold, tt.line, got, tt.status, s)
			}
			if (s != nil) != (got == 200) {
				t.Errorf("fold %v: %q = %d, but the handler saw %+v", fold, tt.line, got, s)
			}
			if s == nil {
				continue
			}
			who := caller[tt.auth]
			methods, paths := upstreamViews(s, fold)
			for _, method := range methods {
				for _, path := range paths {
					req, rule := policy.Match(method, path)
					if !req.Allows(who) && !req.Public() {
						t.Errorf("fold %v: %q reached the handler as %+v, but the rules refuse the upstream's reading %s %s (rule %d, %s)",
							fold, tt.line, *s, method, path, rule, req)
					}
				}
			}
		}
		srv.Close()
	}
}

// TestExtraMethods: a method outside the seven is refused unless
// Config.ExtraMethods names it, in any case; then the rules decide it.
func TestExtraMethods(t *testing.T) {
	e := newEnv(t)
	alice := e.token(t, "alice", nil)
	tests := []struct {
		name   string
		extra  []string
		method string
		status int
	}{
		{"refused by default", nil, "PROPFIND", 400},
		{"named", []string{"PROPFIND"}, "PROPFIND", 200},
		{"named in another case", []string{"propfind"}, "PropFind", 200},
		{"another one still refused", []string{"PROPFIND"}, "MKCOL", 400},
		{"the seven need no naming", nil, "PATCH", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := httpauth.New(httpauth.Config{Verifier: e.verifier, Policy: e.policy, ExtraMethods: tt.extra})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(tt.method, "/api/x", nil)
			r.Header.Set("Authorization", "Bearer "+alice)
			w := httptest.NewRecorder()
			m.Wrap(echo).ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Errorf("%s /api/x with ExtraMethods %q = %d; want %d", tt.method, tt.extra, w.Code, tt.status)
			}
		})
	}
}

// BenchmarkCheckTarget is the request-target check on the path of every
// request, for a Keycloak-shaped API path.
func BenchmarkCheckTarget(b *testing.B) {
	u, err := url.ParseRequestURI("/api/orders/7c1d4e2a/items?page=2")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := httpauth.CheckTarget("GET", u); err != nil {
			b.Fatal(err)
		}
	}
}
