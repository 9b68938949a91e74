package dev_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/dev"
	"github.com/keygate/keygate/keycloaktest"
)

func startDev(tb testing.TB) *dev.Env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := dev.Start(ctx, dev.Options{Listen: "127.0.0.1:0", IssuerListen: "127.0.0.1:0", UpstreamListen: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { env.Close(context.Background()) })
	return env
}

// passwordToken gets a token as the guide's curl line does.
func passwordToken(tb testing.TB, env *dev.Env, user, password string, extra url.Values) map[string]any {
	tb.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {dev.PublicClient}, "username": {user}, "password": {password}}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := http.PostForm(env.TokenURL(), form)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		tb.Fatalf("token endpoint = %d, %v", resp.StatusCode, out)
	}
	return out
}

// TestWalkthrough is the done-when of issue #4: the steps keygate dev
// prints, against the dev environment on random ports.
func TestWalkthrough(t *testing.T) {
	env := startDev(t)
	alice := passwordToken(t, env, "alice", "alice", url.Values{"scope": {"openid"}})
	aliceTok := alice["access_token"].(string)
	idTok := alice["id_token"].(string)
	adminTok := passwordToken(t, env, "admin", "admin", nil)["access_token"].(string)
	tampered := aliceTok[:strings.LastIndexByte(aliceTok, '.')+1] + strings.Repeat("A", 342)

	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {dev.ServiceClient}, "client_secret": {dev.ServiceSecret}}
	resp, err := http.PostForm(env.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	var svc map[string]any
	json.NewDecoder(resp.Body).Decode(&svc)
	resp.Body.Close()
	svcTok, _ := svc["access_token"].(string)

	tests := []struct {
		name    string
		path    string
		headers map[string][]string
		status  int
		wwwAuth string
	}{
		{"public", "/public/hello", nil, 200, ""},
		{"no token", "/api/orders", nil, 401, `Bearer realm="keygate"`},
		{"alice on api", "/api/orders", bearer(aliceTok), 200, ""},
		{"alice on admin", "/admin/users", bearer(aliceTok), 403, `error="insufficient_scope"`},
		{"admin on admin", "/admin/users", bearer(adminTok), 200, ""},
		{"service account on api", "/api/orders", bearer(svcTok), 200, ""},
		{"tampered token", "/api/orders", bearer(tampered), 401, `error="invalid_token"`},
		{"id token", "/api/orders", bearer(idTok), 401, `error="invalid_token", error_description="wrong token type"`},
		{"two authorization headers", "/api/orders", map[string][]string{"Authorization": {"Bearer " + aliceTok, "Bearer " + aliceTok}}, 400, `error="invalid_request"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := get(t, env.ProxyURL()+tt.path, tt.headers)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s = %d; want %d", tt.path, resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tt.wwwAuth) {
				t.Errorf("WWW-Authenticate = %q; want %q in it", got, tt.wwwAuth)
			}
		})
	}

	t.Run("spoofed identity header never reaches the upstream", func(t *testing.T) {
		for _, c := range []struct {
			path    string
			headers map[string][]string
			want    string
		}{
			{"/public/hello", map[string][]string{"X-Auth-Username": {"admin"}}, ""},
			{"/api/orders", map[string][]string{"Authorization": {"Bearer " + aliceTok}, "X-Auth-Username": {"admin"}, "x-auth-roles": {"admin"}}, "alice"},
		} {
			resp, body := get(t, env.ProxyURL()+c.path, c.headers)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s = %d", c.path, resp.StatusCode)
			}
			var e dev.Echoed
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if got := e.Headers["X-Auth-Username"]; got != c.want {
				t.Errorf("%s: upstream saw X-Auth-Username %q; want %q", c.path, got, c.want)
			}
			if c.want != "" && e.Headers["X-Auth-Roles"] != "user" {
				t.Errorf("%s: upstream saw X-Auth-Roles %q; want user", c.path, e.Headers["X-Auth-Roles"])
			}
			if _, ok := e.Headers["Authorization"]; ok {
				t.Errorf("%s: the upstream saw the Authorization header", c.path)
			}
		}
	})
}

func TestGuide(t *testing.T) {
	env := startDev(t)
	var b strings.Builder
	env.PrintGuide(&b)
	for _, want := range []string{env.ProxyURL() + "/public/hello", env.TokenURL(), "-d username=alice -d password=alice", "client_id=" + dev.PublicClient} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("guide lacks %q:\n%s", want, b.String())
		}
	}
}

// TestExternalIssuer runs the dev proxy against an issuer it did not
// start, as keygate dev --issuer does with a real Keycloak.
func TestExternalIssuer(t *testing.T) {
	iss := keycloaktest.New(t, dev.RealmConfig("127.0.0.1:0", dev.DefaultAudience))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := dev.Start(ctx, dev.Options{Listen: "127.0.0.1:0", UpstreamListen: "127.0.0.1:0", Issuer: iss.Issuer()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close(context.Background())
	if env.Issuer() != nil {
		t.Error("an embedded issuer was started")
	}
	tok := iss.MustMint(t, keycloaktest.Token{Client: dev.PublicClient, User: "admin"})
	if resp, _ := get(t, env.ProxyURL()+"/admin/x", bearer(tok)); resp.StatusCode != 200 {
		t.Errorf("GET /admin/x = %d; want 200", resp.StatusCode)
	}
}

func bearer(tok string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + tok}}
}

func get(tb testing.TB, u string, headers map[string][]string) (*http.Response, []byte) {
	tb.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
