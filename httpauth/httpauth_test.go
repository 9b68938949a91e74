package httpauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

type env struct {
	idp      *keycloaktest.Server
	verifier *keygate.Verifier
	policy   *authz.Policy
}

func newEnv(t *testing.T) *env {
	t.Helper()
	idp := keycloaktest.New(t, keycloaktest.Config{
		Realm: "shop",
		Clients: []keycloaktest.Client{
			{ID: "cli", DirectAccessGrants: true, Audiences: []string{"orders-api"}},
			{ID: "writer", Secret: "s", ServiceAccount: true, Audiences: []string{"orders-api"}, ServiceAccountRealmRoles: []string{"user"}},
		},
		Users: []keycloaktest.User{
			{Username: "alice", Password: "alice", RealmRoles: []string{"user"}},
			{Username: "admin", Password: "admin", RealmRoles: []string{"user", "admin"}},
		},
	})
	src, err := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: src})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := authz.Compile(authz.Config{Rules: []authz.Rule{
		{Path: "/public/**", Require: authz.PermitAll()},
		{Path: "/api/**", Require: authz.Role("user")},
		{Path: "/admin/**", Require: authz.Role("admin")},
		{Path: "/orders/**", Methods: []string{"POST"}, Require: authz.AllOf(authz.Role("user"), authz.Scope("orders.write"))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &env{idp: idp, verifier: v, policy: policy}
}

func (e *env) token(t *testing.T, user string, claims map[string]any) string {
	t.Helper()
	return e.idp.MustMint(t, keycloaktest.Token{Client: "cli", User: user, Claims: claims})
}

// echo answers 200 with the caller's username, or "anonymous".
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if p, ok := httpauth.FromContext(r.Context()); ok {
		w.Write([]byte(p.Username))
		return
	}
	w.Write([]byte("anonymous"))
})

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func TestMiddleware(t *testing.T) {
	e := newEnv(t)
	alice := e.token(t, "alice", nil)
	admin := e.token(t, "admin", nil)
	expired := e.token(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour)})
	idToken := e.token(t, "alice", map[string]any{"typ": "ID"})
	aliceWrites := e.token(t, "alice", map[string]any{"scope": "profile orders.write"})

	type want struct {
		status    int
		challenge string // exact WWW-Authenticate; "" means absent
		body      string // exact body for 200; error code for refusals
	}
	tests := []struct {
		name   string
		cfg    func(*httpauth.Config)
		method string
		target string
		header http.Header
		form   string
		want   want
	}{
		{"no token", nil, "GET", "/api/orders", nil, "",
			want{401, `Bearer realm="shop"`, "unauthorized"}},
		{"other scheme", nil, "GET", "/api/orders", http.Header{"Authorization": {"Basic YTpi"}}, "",
			want{401, `Bearer realm="shop"`, "unauthorized"}},
		{"valid token", nil, "GET", "/api/orders", bearer(alice), "", want{200, "", "alice"}},
		{"scheme in lower case", nil, "GET", "/api/orders", http.Header{"Authorization": {"bearer " + alice}}, "", want{200, "", "alice"}},
		{"scheme in upper case", nil, "GET", "/api/orders", http.Header{"Authorization": {"BEARER " + alice}}, "", want{200, "", "alice"}},
		{"expired token", nil, "GET", "/api/orders", bearer(expired), "",
			want{401, `Bearer realm="shop", error="invalid_token", error_description="token expired"`, "invalid_token"}},
		{"ID token", nil, "GET", "/api/orders", bearer(idToken), "",
			want{401, `Bearer realm="shop", error="invalid_token", error_description="wrong token type"`, "invalid_token"}},
		{"tampered token", nil, "GET", "/api/orders", bearer(alice[:len(alice)-4] + "AAAA"), "",
			want{401, `Bearer realm="shop", error="invalid_token", error_description="invalid signature"`, "invalid_token"}},
		{"garbage token", nil, "GET", "/api/orders", bearer("abc.def"), "",
			want{401, `Bearer realm="shop", error="invalid_token", error_description="malformed token"`, "invalid_token"}},
		{"two Authorization headers", nil, "GET", "/api/orders", http.Header{"Authorization": {"Bearer " + alice, "Bearer " + alice}}, "",
			want{400, `Bearer realm="shop", error="invalid_request", error_description="more than one Authorization header"`, "invalid_request"}},
		{"Bearer without token", nil, "GET", "/api/orders", http.Header{"Authorization": {"Bearer"}}, "",
			want{401, `Bearer realm="shop", error="invalid_token", error_description="malformed token"`, "invalid_token"}},
		{"token with a space", nil, "GET", "/api/orders", http.Header{"Authorization": {"Bearer abc def"}}, "",
			want{401, `Bearer realm="shop", error="invalid_token", error_description="malformed token"`, "invalid_token"}},
		{"role missing", nil, "GET", "/admin/users", bearer(alice), "",
			want{403, `Bearer realm="shop", error="insufficient_scope", error_description="the token does not grant access to this resource"`, "insufficient_scope"}},
		{"role present", nil, "GET", "/admin/users", bearer(admin), "", want{200, "", "admin"}},
		{"scope missing", nil, "POST", "/orders/1", bearer(alice), "",
			want{403, `Bearer realm="shop", error="insufficient_scope", error_description="the token does not grant access to this resource", scope="orders.write"`, "insufficient_scope"}},
		{"scope present", nil, "POST", "/orders/1", bearer(aliceWrites), "", want{200, "", "alice"}},
		{"no rule matches, no token", nil, "GET", "/elsewhere", nil, "", want{401, `Bearer realm="shop"`, "unauthorized"}},
		{"no rule matches, valid token", nil, "GET", "/elsewhere", bearer(admin), "",
			want{403, `Bearer realm="shop", error="insufficient_scope", error_description="the token does not grant access to this resource"`, "insufficient_scope"}},
		{"public, no token", nil, "GET", "/public/info", nil, "", want{200, "", "anonymous"}},
		{"public, bad token ignored", nil, "GET", "/public/info", bearer(expired), "", want{200, "", "anonymous"}},
		{"public, valid token identifies", nil, "GET", "/public/info", bearer(alice), "", want{200, "", "alice"}},
		{"dot segments", nil, "GET", "/public/../admin/users", nil, "",
			want{400, `Bearer realm="shop", error="invalid_request", error_description="the request path is not canonical"`, "invalid_request"}},
		{"encoded dot segments", nil, "GET", "/public/%2e%2e/admin/users", nil, "",
			want{400, `Bearer realm="shop", error="invalid_request", error_description="the request path is not canonical"`, "invalid_request"}},
		{"double slash", nil, "GET", "/public//x", nil, "",
			want{400, `Bearer realm="shop", error="invalid_request", error_description="the request path is not canonical"`, "invalid_request"}},
		{"encoded slash", nil, "GET", "/admin%2Fusers", bearer(alice), "",
			want{400, `Bearer realm="shop", error="invalid_request", error_description="the request path holds an encoded slash"`, "invalid_request"}},
		{"semicolon", nil, "GET", "/admin;x=1/users", bearer(alice), "",
			want{400, `Bearer realm="shop", error="invalid_request", error_description="the request path holds a forbidden character"`, "invalid_request"}},
		{"query token off by default", nil, "GET", "/api/orders?access_token=" + alice, nil, "",
			want{401, `Bearer realm="shop"`, "unauthorized"}},
		{"query token allowed", func(c *httpauth.Config) { c.AllowQueryToken = true }, "GET", "/api/orders?access_token=" + alice, nil, "",
			want{200, "", "alice"}},
		{"query and header token", func(c *httpauth.Config) { c.AllowQueryToken = true }, "GET", "/api/orders?access_token=" + alice, bearer(alice), "",
			want{400, `Bearer realm="shop", error="invalid_request", error_description="more than one access token in the request"`, "invalid_request"}},
		{"form token off by default", nil, "POST", "/api/orders", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "access_token=" + alice,
			want{401, `Bearer realm="shop"`, "unauthorized"}},
		{"form token allowed", func(c *httpauth.Config) { c.AllowFormToken = true }, "POST", "/api/orders",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "access_token=" + alice, want{200, "", "alice"}},
		{"default realm", func(c *httpauth.Config) { c.Realm = "" }, "GET", "/api/orders", nil, "",
			want{401, `Bearer realm="keygate"`, "unauthorized"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := httpauth.Config{Verifier: e.verifier, Policy: e.policy, Realm: "shop"}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			m, err := httpauth.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.form))
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			w := httptest.NewRecorder()
			m.Wrap(echo).ServeHTTP(w, r)
			if w.Code != tt.want.status {
				t.Fatalf("status = %d; want %d (body %s)", w.Code, tt.want.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.want.challenge {
				t.Errorf("WWW-Authenticate = %s\n                    want %s", got, tt.want.challenge)
			}
			if tt.want.status == 200 {
				if w.Body.String() != tt.want.body {
					t.Errorf("body = %q; want %q", w.Body, tt.want.body)
				}
				return
			}
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != tt.want.body || body.Description == "" {
				t.Errorf("body = %s (%v); want JSON with error %q and a description", w.Body, err, tt.want.body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
			if strings.Contains(w.Body.String(), "eyJ") {
				t.Error("the answer echoes a token")
			}
		})
	}
}

func TestKeysUnavailableIs503(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{Clients: []keycloaktest.Client{{ID: "c", Secret: "s", ServiceAccount: true, Audiences: []string{"api"}}}})
	idp.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 500})
	src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	src.Start()
	v, _ := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"api"}, Keys: src})
	m, _ := httpauth.New(httpauth.Config{Verifier: v, RetryAfter: 7 * time.Second})
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set("Authorization", "Bearer "+idp.MustMint(t, keycloaktest.Token{}))
	w := httptest.NewRecorder()
	m.Wrap(echo).ServeHTTP(w, r)
	if w.Code != 503 || w.Header().Get("Retry-After") != "7" || w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("answer = %d, Retry-After %q, WWW-Authenticate %q; want 503, 7, none",
			w.Code, w.Header().Get("Retry-After"), w.Header().Get("WWW-Authenticate"))
	}
	if !strings.Contains(w.Body.String(), `"temporarily_unavailable"`) {
		t.Errorf("body = %s; want error temporarily_unavailable", w.Body)
	}
}

func TestGuards(t *testing.T) {
	e := newEnv(t)
	m, err := httpauth.New(httpauth.Config{Verifier: e.verifier, Realm: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /orders/{id}", m.RequireRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("order " + r.PathValue("id")))
	})))
	mux.Handle("GET /scoped", m.RequireScope("orders.write")(echo))
	h := m.Wrap(mux)
	tests := []struct {
		name, target, tok string
		status            int
		body              string
	}{
		{"role present", "/orders/7", e.token(t, "admin", nil), 200, "order 7"},
		{"role missing", "/orders/7", e.token(t, "alice", nil), 403, ""},
		{"scope missing", "/scoped", e.token(t, "alice", nil), 403, ""},
		{"scope present", "/scoped", e.token(t, "alice", map[string]any{"scope": "orders.write"}), 200, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Header.Set("Authorization", "Bearer "+tt.tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status || tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("GET %s = %d %q; want %d %q", tt.target, w.Code, w.Body, tt.status, tt.body)
			}
		})
	}
	// A guard outside the middleware sees no caller: 401, never a pass.
	w := httptest.NewRecorder()
	m.RequireRole("admin")(echo).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 401 {
		t.Errorf("guard without middleware = %d; want 401", w.Code)
	}
}

func TestLogsRefusalsWithoutTokens(t *testing.T) {
	e := newEnv(t)
	var buf bytes.Buffer
	m, _ := httpauth.New(httpauth.Config{Verifier: e.verifier, Policy: e.policy, Logger: newJSONLogger(&buf)})
	tok := e.token(t, "alice", map[string]any{"exp": time.Now().Add(-time.Hour)})
	r := httptest.NewRequest("GET", "/api/x", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	m.Wrap(echo).ServeHTTP(httptest.NewRecorder(), r)
	r = httptest.NewRequest("GET", "/admin/x", nil)
	r.Header.Set("Authorization", "Bearer "+e.token(t, "alice", nil))
	m.Wrap(echo).ServeHTTP(httptest.NewRecorder(), r)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines = %d; want 2:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["status"] != 401.0 || first["reason"] != "token expired" || first["path"] != "/api/x" {
		t.Errorf("first line = %v; want status 401, reason token expired, path /api/x", first)
	}
	if second["status"] != 403.0 || second["sub"] != e.idp.Subject("alice") {
		t.Errorf("second line = %v; want status 403 with alice's subject", second)
	}
	if sig := tok[strings.LastIndexByte(tok, '.')+1:]; strings.Contains(buf.String(), sig) || strings.Contains(buf.String(), "eyJ") {
		t.Error("the log holds a token")
	}
}

func TestCustomErrorHandler(t *testing.T) {
	e := newEnv(t)
	var got *httpauth.Error
	m, _ := httpauth.New(httpauth.Config{Verifier: e.verifier, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err *httpauth.Error) {
		got = err
		w.WriteHeader(err.Status)
		w.Write([]byte("<h1>nope</h1>"))
	}})
	w := httptest.NewRecorder()
	m.Wrap(echo).ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 401 || w.Body.String() != "<h1>nope</h1>" || got == nil || got.Status != 401 {
		t.Errorf("custom handler: %d %q %+v", w.Code, w.Body, got)
	}
}

func TestAuthorizeForwarded(t *testing.T) {
	// Forward-auth asks about another request than the one it receives.
	e := newEnv(t)
	m, _ := httpauth.New(httpauth.Config{Verifier: e.verifier, Policy: e.policy})
	r := httptest.NewRequest("GET", "/auth", nil)
	r.Header.Set("Authorization", "Bearer "+e.token(t, "alice", nil))
	// A nil *Error never hides in a non-nil error: the nil-interface trap.
	if p, err := m.Authorize(r, "GET", &url.URL{Path: "/api/x"}); err != nil || p.Username != "alice" {
		t.Errorf("Authorize(GET /api/x) = %v, %v; want alice", p, err)
	}
	var refusal *httpauth.Error
	if _, err := m.Authorize(r, "GET", &url.URL{Path: "/admin/x"}); !errors.As(err, &refusal) || refusal.Status != 403 {
		t.Errorf("Authorize(GET /admin/x) = %v; want a 403 *httpauth.Error", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := httpauth.New(httpauth.Config{}); err == nil {
		t.Error("New() without a Verifier succeeded")
	}
	v := newEnv(t).verifier
	if _, err := httpauth.New(httpauth.Config{Verifier: v, Realm: `a"b`}); err == nil {
		t.Error(`New() with realm a"b succeeded`)
	}
}

func newJSONLogger(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
