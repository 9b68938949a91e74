package server_test

import (
	"encoding/json"
	"testing"
)

// TestProxyCallsDoNotCarryCallers checks that the proxy's pooled calls
// (see proxyCall) never name one request's caller in another: requests
// from alice, admin and anonymous callers of a public route alternate
// on one server, and each reaches the upstream with its own identity
// headers, or none.
func TestProxyCallsDoNotCarryCallers(t *testing.T) {
	iss := issuer(t)
	up := echo(t)
	s, _ := start(t, baseConfig(iss, up.URL))
	callers := []struct{ token, user string }{
		{token(t, iss, "alice"), "alice"},
		{"", ""},
		{token(t, iss, "admin"), "admin"},
		{"", ""},
	}
	for i := range 40 {
		c := callers[i%len(callers)]
		var hs []string
		if c.token != "" {
			hs = append(hs, "Authorization: Bearer "+c.token)
		}
		resp, body := do(t, "GET", s.URL()+"/public/x", hs...)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d; want 200", i, resp.StatusCode)
		}
		var e echoed
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatal(err)
		}
		if got := e.Headers.Get("X-Auth-Username"); got != c.user {
			t.Fatalf("request %d: X-Auth-Username = %q; want %q", i, got, c.user)
		}
		if c.user == "" && len(e.Headers.Values("X-Auth-Subject")) != 0 {
			t.Fatalf("request %d: anonymous request has X-Auth-Subject %q", i, e.Headers.Get("X-Auth-Subject"))
		}
	}
}
