//go:build !keygate_noextauthz

package server_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/keycloaktest"
)

// decisionCase is one original request, as the client sent it to the
// front proxy, and the decision it must get. The same table runs through
// forward-auth (as NGINX, Caddy or Traefik ask) and through ext_authz (as
// Envoy asks), and both must answer alike.
type decisionCase struct {
	name    string
	method  string
	uri     string   // request target as sent: path and query
	headers []header // the client's headers, names as the client spelled them
	status  int
	user    string // X-Auth-Username of an allowed request; "" for anonymous
}

func decisionCases(tb testing.TB, iss *keycloaktest.Server) []decisionCase {
	alice, admin := token(tb, iss, "alice"), token(tb, iss, "admin")
	expired := iss.MustMint(tb, keycloaktest.Token{Client: "app", User: "alice", Claims: map[string]any{"exp": 1000}})
	wrongAud := iss.MustMint(tb, keycloaktest.Token{Client: "other", User: "alice"})
	auth := func(tok string) header { return header{"Authorization", "Bearer " + tok} }
	cases := []decisionCase{
		{name: "allowed with query", method: "GET", uri: "/api/orders?x=1&y=%2F", headers: []header{auth(alice)}, status: 200, user: "alice"},
		{name: "public anonymous", method: "GET", uri: "/public/x", status: 200},
		{name: "public with a token", method: "GET", uri: "/public/x", headers: []header{auth(alice)}, status: 200, user: "alice"},
		{name: "public with a bad token", method: "GET", uri: "/public/x", headers: []header{auth(expired)}, status: 200},
		{name: "no token", method: "GET", uri: "/api/x", status: 401},
		{name: "basic scheme", method: "GET", uri: "/api/x", headers: []header{{"Authorization", "Basic YTpi"}}, status: 401},
		{name: "expired", method: "GET", uri: "/api/x", headers: []header{auth(expired)}, status: 401},
		{name: "wrong audience", method: "POST", uri: "/api/x", headers: []header{auth(wrongAud)}, status: 401},
		{name: "malformed token", method: "GET", uri: "/api/x", headers: []header{{"Authorization", "Bearer a b"}}, status: 401},
		{name: "Bearer alone", method: "GET", uri: "/api/x", headers: []header{{"Authorization", "Bearer"}}, status: 401},
		{name: "two Authorization headers", method: "GET", uri: "/api/x", headers: []header{auth(alice), auth(admin)}, status: 400},
		{name: "forbidden", method: "GET", uri: "/admin/users", headers: []header{auth(alice)}, status: 403},
		{name: "admin allowed", method: "DELETE", uri: "/admin/users/7", headers: []header{auth(admin)}, status: 200, user: "admin"},
		{name: "trailing slash", method: "GET", uri: "/admin/", headers: []header{auth(alice)}, status: 403},
		{name: "lower-case method", method: "delete", uri: "/admin/users/7", headers: []header{auth(alice)}, status: 403},
		{name: "method not a token", method: "GE T", uri: "/api/x", headers: []header{auth(alice)}, status: 400},
		{name: "dot segments", method: "GET", uri: "/public/../admin/users", headers: []header{auth(alice)}, status: 400},
		{name: "encoded dot segments", method: "GET", uri: "/public/%2e%2e/admin/users", headers: []header{auth(alice)}, status: 400},
		{name: "double encoding", method: "GET", uri: "/public/%252e%252e/admin", headers: []header{auth(alice)}, status: 400},
		{name: "encoded slash", method: "GET", uri: "/public%2F..%2Fadmin", headers: []header{auth(alice)}, status: 400},
		{name: "double slash", method: "GET", uri: "//admin/users", headers: []header{auth(alice)}, status: 400},
		{name: "semicolon", method: "GET", uri: "/public/x;/../admin", headers: []header{auth(alice)}, status: 400},
		{name: "fragment", method: "GET", uri: "/admin#x", headers: []header{auth(alice)}, status: 400},
		{name: "not absolute", method: "GET", uri: "admin", headers: []header{auth(alice)}, status: 400},
		{name: "empty target", method: "GET", uri: "", headers: []header{auth(alice)}, status: 400},
	}
	// Every spoofed header of the request-seam work, on a public route
	// and with alice's token.
	for _, sc := range spoofCases() {
		if sc.name == "X-Forwarded-Uri" || sc.name == "X-Original-URI" {
			// forward-auth's own inputs: in forward-auth the front proxy
			// sets them, so they do not come from the client as such.
			// ext_authz refuses them from the client (TestExtAuthzProtocol);
			// forward-auth refuses the pair it cannot make sense of, with
			// another description.
			continue
		}
		// Forward-auth refuses an identity header in any spelling and a
		// '_' spelling of a strip-list name; the plain spelling of a
		// strip-list name is the front proxy's to clear (and ext_authz
		// lists it in headers_to_remove), so the decision is the rule's.
		anon, al := 200, 200
		if forwardAuthRefuses(sc.headers) {
			anon, al = 400, 400
		}
		cases = append(cases,
			decisionCase{name: "spoofed " + sc.name + " anonymous", method: "GET", uri: "/public/x", headers: sc.headers, status: anon, user: ""},
			decisionCase{name: "spoofed " + sc.name + " alice", method: "GET", uri: "/api/x", headers: append([]header{auth(alice)}, sc.headers...), status: al, user: "alice"})
	}
	return cases
}

// forwardAuthRefuses reports whether forward-auth refuses a subrequest
// carrying headers: one that normalizes to an identity header, or a '_'
// spelling of a strip-list or forward-auth input name.
func forwardAuthRefuses(headers []header) bool {
	identity := config.DefaultIdentityHeaderNames()
	others := append(config.DefaultStripHeaders(), "X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Method", "X-Original-Uri",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-For")
	in := func(list []string, n string) bool {
		return slices.ContainsFunc(list, func(x string) bool { return config.NormalizeHeaderName(x) == n })
	}
	for _, h := range headers {
		n := config.NormalizeHeaderName(h.name)
		if in(identity, n) || strings.Contains(h.name, "_") && in(others, n) {
			return true
		}
	}
	return false
}

// answer is what a front proxy gets back: the status, the challenge, the
// body of a refusal and the identity headers of an allowed request.
type answer struct {
	status    int
	challenge string
	retry     string
	body      map[string]any
	identity  map[string]string // X-Auth-* headers, canonical names
}

func identityOf(h http.Header) map[string]string {
	id := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Auth-") {
			id[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
		}
	}
	return id
}

func viaForwardAuth(t *testing.T, s *server.Server, c decisionCase) answer {
	t.Helper()
	hs := append([]header{{"X-Forwarded-Method", c.method}, {"X-Forwarded-Uri", c.uri},
		{"X-Forwarded-Proto", "https"}, {"X-Forwarded-For", "192.0.2.7"}}, c.headers...)
	resp, body := send(t, http.DefaultClient, s.URL()+"/auth", hs...)
	a := answer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), retry: resp.Header.Get("Retry-After"), identity: identityOf(resp.Header)}
	if resp.StatusCode != 200 {
		if err := json.Unmarshal([]byte(body), &a.body); err != nil {
			t.Fatalf("forward-auth body %q: %v", body, err)
		}
	}
	return a
}

// envoyRequest builds a CheckRequest as Envoy's ext_authz filter does for
// an HTTP/2 request: lower-case header keys, the pseudo-headers, :path
// with the query, the x-forwarded-* headers Envoy adds, repeated headers
// joined with "," (or kept apart in header_map with raw headers).
func envoyRequest(c decisionCase, raw bool) *authv3.CheckRequest {
	type kv struct{ k, v string }
	list := []kv{
		{":authority", "shop.example.com"}, {":method", c.method}, {":path", c.uri}, {":scheme", "https"},
		{"user-agent", "curl/8.5.0"}, {"x-forwarded-proto", "https"}, {"x-forwarded-for", "192.0.2.7"},
		{"x-request-id", "1f7b7c2a-7d3e-4c55-9a35-0e0a2c6f4b1d"}, {"x-envoy-expected-rq-timeout-ms", "15000"},
	}
	for _, h := range c.headers {
		list = append(list, kv{strings.ToLower(h.name), h.value})
	}
	hr := &authv3.AttributeContext_HttpRequest{
		Id: "1f7b7c2a-7d3e-4c55-9a35-0e0a2c6f4b1d", Method: c.method, Path: c.uri,
		Host: "shop.example.com", Scheme: "https", Protocol: "HTTP/2", Size: 0,
	}
	if raw {
		hr.HeaderMap = &corev3.HeaderMap{}
		for _, h := range list {
			hr.HeaderMap.Headers = append(hr.HeaderMap.Headers, &corev3.HeaderValue{Key: h.k, RawValue: []byte(h.v)})
		}
	} else {
		hr.Headers = map[string]string{}
		for _, h := range list {
			if old, ok := hr.Headers[h.k]; ok {
				hr.Headers[h.k] = old + "," + h.v
			} else {
				hr.Headers[h.k] = h.v
			}
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "192.0.2.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 53211}}}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.1.2.3", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8443}}}}},
		Request:     &authv3.AttributeContext_Request{Http: hr},
	}}
}

func extAuthzClient(t testing.TB, s *server.Server) authv3.AuthorizationClient {
	t.Helper()
	conn, err := grpc.NewClient(s.ExtAuthzAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// viaExtAuthz sends req and reads the answer as Envoy applies it. It
// also checks the parts of the protocol forward-auth has no counterpart
// for: the gRPC status code and headers_to_remove.
func viaExtAuthz(t *testing.T, client authv3.AuthorizationClient, req *authv3.CheckRequest) (answer, *authv3.CheckResponse) {
	t.Helper()
	resp, err := client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	a := answer{identity: map[string]string{}}
	switch r := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Errorf("OkResponse with status %v", resp.GetStatus())
		}
		a.status = 200
		for _, h := range r.OkResponse.GetHeaders() {
			if h.GetHeader().GetKey() != strings.ToLower(h.GetHeader().GetKey()) {
				t.Errorf("header key %q is not lower case", h.GetHeader().GetKey())
			}
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header %q appends", h.GetHeader().GetKey())
			}
			a.identity[http.CanonicalHeaderKey(h.GetHeader().GetKey())] = h.GetHeader().GetValue()
		}
		checkRemoved(t, r.OkResponse, req)
	case *authv3.CheckResponse_DeniedResponse:
		d := r.DeniedResponse
		a.status = int(d.GetStatus().GetCode())
		want := map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied, 503: codes.Unavailable}[a.status]
		if got := codes.Code(resp.GetStatus().GetCode()); got != want || want == codes.OK {
			t.Errorf("denied %d with gRPC status %v; want %v", a.status, got, want)
		}
		for _, h := range d.GetHeaders() {
			switch h.GetHeader().GetKey() {
			case "www-authenticate":
				a.challenge = h.GetHeader().GetValue()
			case "retry-after":
				a.retry = h.GetHeader().GetValue()
			}
		}
		if err := json.Unmarshal([]byte(d.GetBody()), &a.body); err != nil {
			t.Fatalf("ext_authz body %q: %v", d.GetBody(), err)
		}
	default:
		t.Fatalf("Check answered %T", r)
	}
	return a, resp
}

// checkRemoved checks that an allowed answer removes every identity and
// strip-list header name, in lower case and with '_', except those it
// sets, and keeps the forwarding headers Envoy sets.
func checkRemoved(t *testing.T, ok *authv3.OkHttpResponse, req *authv3.CheckRequest) {
	t.Helper()
	set := map[string]bool{}
	for _, h := range ok.GetHeaders() {
		set[h.GetHeader().GetKey()] = true
	}
	remove := ok.GetHeadersToRemove()
	for _, n := range append(config.DefaultIdentityHeaderNames(), config.DefaultStripHeaders()...) {
		dash := strings.ToLower(n)
		under := strings.ReplaceAll(dash, "-", "_")
		// A name the answer sets is overwritten, not removed; its
		// underscore spelling is removed either way.
		if set[dash] == slices.Contains(remove, dash) {
			t.Errorf("%s: set %v, in headers_to_remove %v", dash, set[dash], slices.Contains(remove, dash))
		}
		if !slices.Contains(remove, under) {
			t.Errorf("headers_to_remove lacks %s", under)
		}
	}
	for _, keep := range []string{"x-forwarded-for", "x-forwarded-proto", "host", ":path", ":authority"} {
		if slices.Contains(remove, keep) {
			t.Errorf("headers_to_remove holds %s", keep)
		}
	}
}

func extAuthzConfig(iss *keycloaktest.Server) config.Config {
	cfg := baseConfig(iss, "")
	cfg.ExtAuthz = &config.ExtAuthz{Listen: "127.0.0.1:0"}
	return cfg
}

// TestExtAuthzMatchesForwardAuth sends every case of the shared table
// through forward-auth and through ext_authz, with Envoy's headers map
// and with raw headers, and wants the same decision from all three.
func TestExtAuthzMatchesForwardAuth(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, extAuthzConfig(iss))
	client := extAuthzClient(t, s)
	for _, c := range decisionCases(t, iss) {
		t.Run(c.name, func(t *testing.T) {
			fa := viaForwardAuth(t, s, c)
			if fa.status != c.status {
				t.Errorf("forward-auth: %d %v; want %d", fa.status, fa.body, c.status)
			}
			if fa.status == 200 && fa.identity["X-Auth-Username"] != c.user {
				t.Errorf("forward-auth: X-Auth-Username = %q; want %q", fa.identity["X-Auth-Username"], c.user)
			}
			for _, raw := range []bool{false, true} {
				ea, _ := viaExtAuthz(t, client, envoyRequest(c, raw))
				if ea.status != fa.status || ea.challenge != fa.challenge || ea.retry != fa.retry ||
					!maps.Equal(ea.identity, fa.identity) || !jsonEqual(ea.body, fa.body) {
					t.Errorf("raw headers %v: ext_authz and forward-auth disagree:\next_authz:    %+v\nforward-auth: %+v", raw, ea, fa)
				}
			}
		})
	}
}

func jsonEqual(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestExtAuthzProtocol covers what only ext_authz has: pseudo-headers
// that disagree with the attributes, forward-auth inputs sent by the
// client, a request without HTTP attributes, forward_token.
func TestExtAuthzProtocol(t *testing.T) {
	iss := issuer(t)
	s, logs := start(t, extAuthzConfig(iss))
	client := extAuthzClient(t, s)
	alice := token(t, iss, "alice")
	ok := decisionCase{method: "GET", uri: "/api/x", headers: []header{{"Authorization", "Bearer " + alice}}}

	for _, tt := range []struct {
		name   string
		edit   func(*authv3.AttributeContext_HttpRequest)
		status int
	}{
		{"as sent", func(*authv3.AttributeContext_HttpRequest) {}, 200},
		{":path disagrees", func(h *authv3.AttributeContext_HttpRequest) { h.Headers[":path"] = "/public/x" }, 400},
		{":method disagrees", func(h *authv3.AttributeContext_HttpRequest) { h.Headers[":method"] = "POST" }, 400},
		{"no pseudo-headers", func(h *authv3.AttributeContext_HttpRequest) {
			delete(h.Headers, ":path")
			delete(h.Headers, ":method")
		}, 200},
		{"client's x-forwarded-uri", func(h *authv3.AttributeContext_HttpRequest) { h.Headers["x-forwarded-uri"] = "/public/x" }, 400},
		{"client's x-forwarded-method", func(h *authv3.AttributeContext_HttpRequest) { h.Headers["x-forwarded-method"] = "GET" }, 400},
		{"client's x-original-uri", func(h *authv3.AttributeContext_HttpRequest) { h.Headers["x-original-uri"] = "/api/x" }, 400},
		{"fragment attribute", func(h *authv3.AttributeContext_HttpRequest) { h.Fragment = "x" }, 400},
		{"underscore header", func(h *authv3.AttributeContext_HttpRequest) { h.Headers["x_auth_roles"] = "admin" }, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := envoyRequest(ok, false)
			tt.edit(req.Attributes.Request.Http)
			a, _ := viaExtAuthz(t, client, req)
			if a.status != tt.status {
				t.Errorf("status %d %v; want %d", a.status, a.body, tt.status)
			}
		})
	}
	t.Run("no HTTP attributes", func(t *testing.T) {
		a, _ := viaExtAuthz(t, client, &authv3.CheckRequest{})
		if a.status != 400 {
			t.Errorf("status %d; want 400", a.status)
		}
	})
	t.Run("identity headers", func(t *testing.T) {
		a, resp := viaExtAuthz(t, client, envoyRequest(ok, false))
		want := map[string]string{"X-Auth-Username": "alice", "X-Auth-Roles": "user", "X-Auth-Subject": iss.Subject("alice"),
			"X-Auth-Email": "alice@example.com", "X-Auth-Client": "app", "X-Auth-Scopes": "profile email"}
		if !maps.Equal(a.identity, want) {
			t.Errorf("identity = %v; want %v", a.identity, want)
		}
		if !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
			t.Error("headers_to_remove keeps authorization without forward_token")
		}
		for _, n := range resp.GetOkResponse().GetHeadersToRemove() {
			if want[http.CanonicalHeaderKey(n)] != "" {
				t.Errorf("headers_to_remove holds %s, which the answer sets", n)
			}
		}
	})
	if strings.Contains(logs.String(), alice) {
		t.Error("the log holds a token")
	}
	if !strings.Contains(logs.String(), `"ext_authz":true`) {
		t.Errorf("no ext_authz refusal logged:\n%.2000s", logs)
	}
	var m map[string]any
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(line, "request refused") && strings.Contains(line, "ext_authz") {
			json.Unmarshal([]byte(line), &m)
			break
		}
	}
	if m["status"] == nil || m["reason"] == nil {
		t.Errorf("refusal log line lacks status or reason: %v", m)
	}
}

// TestExtAuthzForwardToken: with forward_token the token goes upstream.
func TestExtAuthzForwardToken(t *testing.T) {
	iss := issuer(t)
	cfg := extAuthzConfig(iss)
	cfg.ForwardToken = true
	s, _ := start(t, cfg)
	_, resp := viaExtAuthz(t, extAuthzClient(t, s), envoyRequest(decisionCase{method: "GET", uri: "/public/x"}, false))
	if slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
		t.Error("headers_to_remove holds authorization with forward_token")
	}
}

// TestExtAuthzKeysUnavailable: with the provider down before the first
// key fetch, both modes answer 503 with Retry-After.
func TestExtAuthzKeysUnavailable(t *testing.T) {
	iss := issuer(t)
	tok := token(t, iss, "alice")
	iss.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 500})
	iss.SetFault(keycloaktest.EndpointDiscovery, &keycloaktest.Fault{Status: 500})
	cfg := extAuthzConfig(iss)
	s, err := server.New(cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	c := decisionCase{method: "GET", uri: "/api/x", headers: []header{{"Authorization", "Bearer " + tok}}}
	fa := viaForwardAuth(t, s, c)
	ea, _ := viaExtAuthz(t, extAuthzClient(t, s), envoyRequest(c, false))
	if fa.status != 503 || fa.retry == "" {
		t.Errorf("forward-auth: %d Retry-After %q; want 503 with Retry-After", fa.status, fa.retry)
	}
	if ea.status != fa.status || ea.retry != fa.retry || !jsonEqual(ea.body, fa.body) {
		t.Errorf("ext_authz %+v; forward-auth %+v", ea, fa)
	}
}
