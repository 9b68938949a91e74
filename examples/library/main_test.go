package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/keycloaktest"
)

// TestQuickStart runs the program against the test issuer and walks the
// rules of rules.yaml.
func TestQuickStart(t *testing.T) {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:            "shop",
		OmitDefaultRoles: true,
		Clients:          []keycloaktest.Client{{ID: "web", Audiences: []string{"orders-api"}}},
		Users: []keycloaktest.User{
			{Username: "alice", RealmRoles: []string{"user"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, idp.Issuer(), "orders-api") }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	mint := func(tok keycloaktest.Token) string {
		raw, err := idp.MintToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// keycloaktest knows only a new realm's client scopes; the API's own
	// scope is set in the claim, as a client scope in Keycloak would.
	reader := mint(keycloaktest.Token{User: "alice", Claims: map[string]any{"scope": "profile email orders.read"}})
	noScope := mint(keycloaktest.Token{User: "alice"})

	tests := []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"public", "/public/hello", "", 200, "hello\n"},
		{"no token", "/orders/7", "", 401, ""},
		{"scope orders.read", "/orders/7", reader, 200, "order 7 for alice\n"},
		{"no scope", "/orders/7", noScope, 403, ""},
		{"admin without role", "/admin/x", reader, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			// The first requests may arrive before the keys: 503 until then.
			var resp *http.Response
			for try := 0; ; try++ {
				resp, err = http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusServiceUnavailable {
					break
				}
				resp.Body.Close()
				if try == 200 {
					t.Fatal("still 503 after 200 tries: the keys never loaded")
				}
				time.Sleep(50 * time.Millisecond)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || tt.body != "" && string(body) != tt.body {
				t.Errorf("GET %s = %d %q; want %d %q", tt.path, resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
}

// TestREADME checks that the README's Quick start is this program's code,
// and that its rules are rules.yaml, so that the README cannot drift from
// what make test runs.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	quick := regexp.MustCompile("(?s)## Quick start \\(Go\\)\n.*?```go\n(.*?)```\n.*?```yaml\n(.*?)```").FindSubmatch(readme)
	if quick == nil {
		t.Fatal("README.md has no Quick start with a go and a yaml block")
	}
	code := regexp.MustCompile(`(?s)// Quick start, as in the README.\n(.*?)\t// End of the Quick start.`).FindSubmatch(src)
	if code == nil {
		t.Fatal("main.go lost its Quick start markers")
	}
	if got, want := squash(string(quick[1])), squash(string(code[1])); got != want {
		t.Errorf("README Quick start differs from examples/library/main.go:\nREADME:\n%s\nmain.go:\n%s", quick[1], code[1])
	}
	if got, want := squash(string(quick[2])), squash(stripComments(string(rules))); got != want {
		t.Errorf("README rules differ from examples/library/rules.yaml:\nREADME:\n%s\nrules.yaml:\n%s", quick[2], rules)
	}
}

// squash drops indentation and blank lines.
func squash(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
