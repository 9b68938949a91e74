package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/internal/redistest"
	"github.com/keygate/keygate/keycloaktest"
)

const adminToken = "test-admin-token-0123456789abcdef0123"

// revocationConfig adds revocation with back-channel logout for client
// app and the admin endpoint to cfg.
func revocationConfig(cfg config.Config) config.Config {
	cfg.Admin = &config.Admin{Listen: "127.0.0.1:0"}
	cfg.Revocation = &config.Revocation{
		TTL:               time.Hour,
		BackchannelLogout: &config.BackchannelLogout{ClientID: "app"},
		AdminToken:        adminToken,
	}
	return cfg
}

func postLogout(t *testing.T, base, logoutToken string) (int, string) {
	t.Helper()
	resp, err := http.PostForm(base+config.DefaultBackchannelLogoutPath, url.Values{"logout_token": {logoutToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// status sends GET path with tok and returns the status and challenge.
func statusOf(t *testing.T, base, path, tok string) (int, string) {
	t.Helper()
	resp, _ := do(t, "GET", base+path, "Authorization: Bearer "+tok)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestBackchannelLogoutRevokes(t *testing.T) {
	iss := issuer(t)
	s, logs := start(t, revocationConfig(baseConfig(iss, echo(t).URL)))
	base := s.URL()
	alice := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-alice"})
	other := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-other"})
	for _, tok := range []string{alice, alice, other} { // the second is a cache hit
		if code, _ := statusOf(t, base, "/x", tok); code != 200 {
			t.Fatalf("before logout: %d", code)
		}
	}

	// Forged: signed by another issuer's key.
	stranger := keycloaktest.New(t, keycloaktest.Config{Clients: []keycloaktest.Client{{ID: "app"}}, Users: []keycloaktest.User{{Username: "alice"}}})
	forged := stranger.MustMintLogout(t, keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-alice"})
	if code, body := postLogout(t, base, forged); code != 400 || !strings.Contains(body, "invalid_request") {
		t.Errorf("forged logout token: %d %s; want 400 invalid_request", code, body)
	}
	if code, _ := statusOf(t, base, "/x", alice); code != 200 {
		t.Errorf("after a forged logout: %d; want 200", code)
	}

	lt := iss.MustMintLogout(t, keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-alice"})
	if code, body := postLogout(t, base, lt); code != 200 {
		t.Fatalf("logout: %d %s; want 200", code, body)
	}
	if code, body := postLogout(t, base, lt); code != 400 {
		t.Errorf("replayed logout token: %d %s; want 400", code, body)
	}
	code, challenge := statusOf(t, base, "/x", alice)
	if code != 401 || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, `error_description="token revoked"`) {
		t.Errorf("revoked session: %d %q; want 401 invalid_token, token revoked", code, challenge)
	}
	if code, _ := statusOf(t, base, "/x", other); code != 200 {
		t.Errorf("another session of the same user: %d; want 200", code)
	}
	// The forward-auth endpoint decides alike.
	resp, _ := do(t, "GET", base+"/auth", "Authorization: Bearer "+alice, "X-Forwarded-Method: GET", "X-Forwarded-Uri: /x")
	if resp.StatusCode != 401 {
		t.Errorf("forward-auth with a revoked token: %d; want 401", resp.StatusCode)
	}
	if strings.Contains(logs.String(), lt) || strings.Contains(logs.String(), alice) {
		t.Error("a token reached the log")
	}
	_, body := do(t, "GET", "http://"+s.AdminAddr().String()+"/metrics")
	if !strings.Contains(body, `keygate_revocations_recorded_total{result="ok",source="backchannel_logout"} 1`) {
		t.Errorf("metrics lack the recorded revocation:\n%s", grep(body, "revocation"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestAdminRevocations(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, revocationConfig(baseConfig(iss, echo(t).URL)))
	admin := "http://" + s.AdminAddr().String() + "/revocations"
	alice := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-1"})
	bob := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "admin", SessionID: "s-2"})
	post := func(auth, ctype, body string) (int, string) {
		req, _ := http.NewRequest("POST", admin, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	bearer := "Bearer " + adminToken
	tests := []struct {
		name, auth, ctype, body string
		want                    int
	}{
		{"no token", "", "application/json", `{"sid":"s-1"}`, 401},
		{"wrong token", "Bearer " + strings.Repeat("x", len(adminToken)), "application/json", `{"sid":"s-1"}`, 401},
		{"token prefix", "Bearer " + adminToken[:10], "application/json", `{"sid":"s-1"}`, 401},
		{"basic scheme", "Basic " + adminToken, "application/json", `{"sid":"s-1"}`, 401},
		{"two kinds", bearer, "application/json", `{"sid":"s-1","jti":"j"}`, 400},
		{"none", bearer, "application/json", `{}`, 400},
		{"unknown field", bearer, "application/json", `{"sid":"s-1","x":1}`, 400},
		{"issued_before on sid", bearer, "application/json", `{"sid":"s-1","issued_before":"2026-01-01T00:00:00Z"}`, 400},
		{"not json", bearer, "text/plain", `sid=s-1`, 400},
		{"two objects", bearer, "application/json", `{"sid":"s-1"}{"sid":"s-2"}`, 400},
		{"too long", bearer, "application/json", `{"sid":"` + strings.Repeat("a", 2000) + `"}`, 400},
		{"body too large", bearer, "application/json", `{"sid":"` + strings.Repeat("a", 5000) + `"}`, 400},
	}
	for _, tt := range tests {
		if code, body := post(tt.auth, tt.ctype, tt.body); code != tt.want {
			t.Errorf("%s: %d %s; want %d", tt.name, code, body, tt.want)
		}
	}
	if code, _ := statusOf(t, s.URL(), "/x", alice); code != 200 {
		t.Fatalf("no revocation may have been recorded by the refused requests: %d", code)
	}
	// The scheme is case-insensitive (RFC 9110 section 11.1), as for the middleware.
	if code, body := post("bearer "+adminToken, "application/json", `{"sid":"s-1"}`); code != 201 {
		t.Fatalf("revoke sid: %d %s", code, body)
	}
	if code, _ := statusOf(t, s.URL(), "/x", alice); code != 401 {
		t.Errorf("alice after her sid was revoked: %d; want 401", code)
	}
	if code, _ := statusOf(t, s.URL(), "/x", bob); code != 200 {
		t.Errorf("another user: %d; want 200", code)
	}
	req, _ := http.NewRequest("GET", admin, nil)
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Revocations []struct{ Kind, Value, Source string } `json:"revocations"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Revocations) != 1 ||
		list.Revocations[0].Kind != "sid" || list.Revocations[0].Value != "s-1" || list.Revocations[0].Source != "admin" {
		t.Errorf("GET /revocations = %+v, %v; want the one sid", list, err)
	}
	if r, _ := do(t, "GET", admin); r.StatusCode != 401 {
		t.Errorf("GET without the admin token: %d; want 401", r.StatusCode)
	}
}

// TestClusterRevocation runs two servers on one real Redis: a logout
// received by one is refused by both, and Redis going away refuses no
// valid token.
func TestClusterRevocation(t *testing.T) {
	rd := redistest.Start(t)
	iss := issuer(t)
	up := echo(t).URL
	cfg := revocationConfig(baseConfig(iss, up))
	cfg.Cluster = &config.Cluster{
		Redis:  config.Redis{URL: rd.URL(), Timeout: time.Second},
		Secret: "cluster-secret-0123456789abcdef0123456789",
	}
	a, _ := start(t, cfg)
	b, _ := start(t, cfg)
	// One instance fetched the keys from the provider; the other took
	// them from Redis.
	if n := iss.Requests(keycloaktest.EndpointCerts); n != 1 {
		t.Errorf("the provider's JWKS was fetched %d times by two instances; want 1 (shared through Redis)", n)
	}
	_, ready := do(t, "GET", "http://"+b.AdminAddr().String()+"/readyz")
	var rz struct {
		JWKS struct {
			Shared *struct {
				ProviderFetches uint64 `json:"provider_fetches"`
				Hits            uint64 `json:"hits"`
			} `json:"shared"`
		} `json:"jwks"`
	}
	if err := json.Unmarshal([]byte(ready), &rz); err != nil || rz.JWKS.Shared == nil {
		t.Errorf("/readyz of b = %s; want jwks.shared", ready)
	}
	alice := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-a"})
	for _, s := range []string{a.URL(), b.URL()} {
		if code, _ := statusOf(t, s, "/x", alice); code != 200 {
			t.Fatalf("before logout: %d", code)
		}
	}
	waitReady := func(s string) string {
		resp, body := do(t, "GET", s+"/readyz")
		if resp.StatusCode != 200 {
			t.Errorf("/readyz = %d %s", resp.StatusCode, body)
		}
		return body
	}
	if body := waitReady("http://" + a.AdminAddr().String()); !strings.Contains(body, `"redis":{"reachable":true}`) {
		t.Errorf("/readyz with Redis up = %s", body)
	}
	if code, body := postLogout(t, a.URL(), iss.MustMintLogout(t, keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-a"})); code != 200 {
		t.Fatalf("logout at a: %d %s", code, body)
	}
	if code, _ := statusOf(t, a.URL(), "/x", alice); code != 401 {
		t.Errorf("a right after the logout: %d; want 401", code)
	}
	waitRefused(t, b.URL(), alice, "b, after the logout at a")

	// Redis down: valid tokens still pass, readiness holds, and a
	// logout still takes effect where it is received.
	rd.Kill()
	bob := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "admin", SessionID: "s-b"})
	for _, s := range []string{a.URL(), b.URL()} {
		if code, _ := statusOf(t, s, "/x", bob); code != 200 {
			t.Errorf("valid token with Redis down: %d; want 200", code)
		}
	}
	if body := waitReady("http://" + b.AdminAddr().String()); !strings.Contains(body, `"reachable":false`) {
		t.Errorf("/readyz with Redis down = %s", body)
	}
	if code, body := postLogout(t, b.URL(), iss.MustMintLogout(t, keycloaktest.Token{Client: "app", User: "admin", SessionID: "s-b"})); code != 200 {
		t.Errorf("logout at b with Redis down: %d %s; want 200 (recorded locally)", code, body)
	}
	if code, _ := statusOf(t, b.URL(), "/x", bob); code != 401 {
		t.Errorf("b after a logout it received with Redis down: %d; want 401", code)
	}
	// Back up: the revocation b held reaches a.
	rd.Restart()
	waitRefused(t, a.URL(), bob, "a, after Redis came back")
}

// waitRefused polls base until it refuses tok with 401. The deadline only
// bounds a failure; the time taken is not asserted.
func waitRefused(t *testing.T, base, tok, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := statusOf(t, base, "/x", tok)
		if code == 401 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %d after 30 s", what, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
