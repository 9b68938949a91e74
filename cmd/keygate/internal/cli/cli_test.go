package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/cli"
	"github.com/keygate/keygate/keycloaktest"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

func run(ctx context.Context, stdin string, vars map[string]string, args ...string) result {
	var out, errOut syncBuffer
	err := cli.Main(ctx, args, cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
	})
	return result{code: exitCode(err), stdout: out.String(), stderr: errOut.String()}
}

// exitCode maps err as cmd/keygate does.
func exitCode(err error) int {
	var ee *cli.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

func issuer(tb testing.TB) *keycloaktest.Server {
	tb.Helper()
	return keycloaktest.New(tb, keycloaktest.Config{
		OmitDefaultRoles: true,
		Clients:          []keycloaktest.Client{{ID: "app", DirectAccessGrants: true, Audiences: []string{"api"}}},
		Users:            []keycloaktest.User{{Username: "alice", Password: "alice", RealmRoles: []string{"user"}}},
	})
}

func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestCommands(t *testing.T) {
	iss := issuer(t)
	tok := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice"})
	good := writeFile(t, "good.yaml", "upstream: http://127.0.0.1:3000\nissuer: ${ISSUER}\naudiences: [api]\n")
	bad := writeFile(t, "bad.yaml", "upstream: http://127.0.0.1:3000\nissuer: https://sso/realms/r\naudiences: []\nkeys:\n  max_stal: 1h\n")
	risky := writeFile(t, "risky.yaml", "upstream: http://127.0.0.1:3000\nissuer: ${ISSUER}\naudiences: [api]\nlisten: 0.0.0.0:8080\n")
	invalid := writeFile(t, "invalid.yaml", "upstream: http://127.0.0.1:3000\nissuer: https://sso/realms/r\naudiences: []\nlog: {level: loud}\n")
	vars := map[string]string{"ISSUER": iss.Issuer()}

	tests := []struct {
		name      string
		args      []string
		stdin     string
		code      int
		stdout    []string
		stderr    []string
		notStdout []string
	}{
		{name: "no arguments", args: nil, code: 2, stderr: []string{"usage: keygate <command>", "serve", "token verify"}},
		{name: "help", args: []string{"help"}, stdout: []string{"commands:", "serve", "config check", "dev", "token inspect", "token verify", "token mint", "version"}},
		{name: "--help", args: []string{"--help"}, stdout: []string{"commands:"}},
		{name: "help for a command", args: []string{"help", "token", "verify"}, stdout: []string{"usage: keygate token verify", "-issuer", "-audience"}},
		{name: "command -h", args: []string{"serve", "-h"}, stdout: []string{"usage: keygate serve --config FILE", "-config"}},
		{name: "help for a group", args: []string{"help", "token"}, stdout: []string{"token inspect", "token mint"}},
		{name: "unknown command", args: []string{"frob"}, code: 2, stderr: []string{`unknown command "frob"`}},
		{name: "group without subcommand", args: []string{"token"}, code: 2, stderr: []string{"give a subcommand", "token inspect"}},
		{name: "serve with the file as an argument", args: []string{"serve", "keygate.yaml"}, code: 2,
			stderr: []string{`unexpected argument "keygate.yaml"; the file goes after --config: keygate serve --config keygate.yaml`}},
		{name: "serve with another argument", args: []string{"serve", "now"}, code: 2, stderr: []string{`unexpected argument "now"`, "usage: keygate serve"}},
		{name: "unknown flag", args: []string{"serve", "--nope"}, code: 2, stderr: []string{"flag provided but not defined: -nope", "usage: keygate serve"}},
		{name: "version", args: []string{"version"}, stdout: []string{"keygate ", "go1."}},
		{name: "config check ok", args: []string{"config", "check", good}, stdout: []string{"good.yaml: OK: proxies 127.0.0.1:8080 to http://127.0.0.1:3000; issuer " + iss.Issuer()}},
		{name: "config check warning", args: []string{"config", "check", risky}, stdout: []string{"risky.yaml: OK"}, stderr: []string{`risky.yaml:4: warning: listen "0.0.0.0:8080" accepts plain HTTP on every interface`}},
		{name: "config check unknown key", args: []string{"config", "check", bad}, code: 1, stderr: []string{`bad.yaml:5: unknown key "max_stal" under keys; did you mean "max_stale"?`}},
		{name: "config check invalid", args: []string{"config", "check", invalid}, code: 1, stderr: []string{
			"invalid.yaml:3: audiences is empty; list the aud values this service accepts, or set insecure_skip_audience_check: true to accept any",
			`invalid.yaml:4: log.level "loud" is not a level`}},
		{name: "config check missing file", args: []string{"config", "check", "/nonexistent.yaml"}, code: 1, stderr: []string{"/nonexistent.yaml: cannot read the file: no such file or directory"}},
		{name: "config check without file", args: []string{"config", "check"}, code: 2, stderr: []string{"missing FILE"}},
		{name: "inspect", args: []string{"token", "inspect", tok}, stdout: []string{"UNVERIFIED", `"preferred_username": "alice"`}},
		{name: "inspect stdin", args: []string{"token", "inspect", "-"}, stdin: tok + "\n", stdout: []string{"UNVERIFIED", `"azp": "app"`}},
		{name: "inspect garbage", args: []string{"token", "inspect", "x"}, code: 1, stderr: []string{"has 1 dot-separated parts"}},
		{name: "verify valid", args: []string{"token", "verify", "--issuer", iss.Issuer(), "--audience", "api", tok}, stdout: []string{"verdict: VALID"}, notStdout: []string{tok}},
		{name: "verify flags after the token", args: []string{"token", "verify", "-", "--issuer", iss.Issuer(), "--audience", "x,api"}, stdin: tok, stdout: []string{"verdict: VALID"}},
		{name: "verify invalid", args: []string{"token", "verify", "--issuer", iss.Issuer(), "--audience", "other", tok}, code: 1, stdout: []string{"FAIL  aud", "verdict: INVALID (wrong audience)"}},
		{name: "verify without issuer", args: []string{"token", "verify", tok}, code: 2, stderr: []string{"--issuer is required"}},
		{name: "mint", args: []string{"token", "mint", "--issuer", iss.Issuer(), "--user", "alice", "--password", "alice", "--client", "app"}, stdout: []string{"eyJ"}},
		{name: "mint refuses remote issuers", args: []string{"token", "mint", "--issuer", "https://sso.example.com/realms/r", "--user", "alice"}, code: 1, stderr: []string{"not on this machine"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(context.Background(), tt.stdin, vars, tt.args...)
			if r.code != tt.code {
				t.Fatalf("keygate %q exit = %d; want %d\nstdout: %s\nstderr: %s", tt.args, r.code, tt.code, r.stdout, r.stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			for _, w := range tt.notStdout {
				if strings.Contains(r.stdout, w) {
					t.Errorf("stdout holds %q", w)
				}
			}
		})
	}
}

// waitFor polls f until it returns a non-empty string.
func waitFor(tb testing.TB, what string, f func() string) string {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if s := f(); s != "" {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("timed out waiting for %s", what)
	return ""
}

func TestServe(t *testing.T) {
	iss := issuer(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello " + r.Header.Get("X-Auth-Username")))
	}))
	defer up.Close()
	cfg := writeFile(t, "keygate.yaml", `listen: 127.0.0.1:0
upstream: ${UPSTREAM}
issuer: ${ISSUER}
audiences: [api]
access:
  - path: /**
    require: {role: user}
`)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- cli.Main(ctx, []string{"serve", "--config", cfg}, cli.Env{Stderr: &stderr, LookupEnv: func(k string) (string, bool) {
			v, ok := map[string]string{"UPSTREAM": up.URL, "ISSUER": iss.Issuer()}[k]
			return v, ok
		}})
	}()
	re := regexp.MustCompile(`"msg":"keygate started","listen":"([^"]+)"`)
	addr := waitFor(t, "keygate started", func() string {
		if m := re.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		return ""
	})
	waitFor(t, "keys", func() string {
		if strings.Contains(stderr.String(), "jwks key set updated") {
			return "ok"
		}
		return ""
	})
	req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice"}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body.String() != "hello alice" {
		t.Fatalf("GET = %d %q", resp.StatusCode, body.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v\n%s", err, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

func TestServeBadConfig(t *testing.T) {
	cfg := writeFile(t, "keygate.yaml", "upstream: http://u\nissuer: https://i/r\naudiences: []\n")
	r := run(context.Background(), "", nil, "serve", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "keygate.yaml:3: audiences is empty") {
		t.Fatalf("serve = %d, %q", r.code, r.stderr)
	}
}

func TestDev(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- cli.Main(ctx, []string{"dev", "--listen", "127.0.0.1:0", "--issuer-listen", "127.0.0.1:0", "--upstream-listen", "127.0.0.1:0"},
			cli.Env{Stdout: &stdout, Stderr: &stderr})
	}()
	re := regexp.MustCompile(`proxy +(http://\S+)`)
	proxy := waitFor(t, "the guide", func() string {
		if m := re.FindStringSubmatch(stdout.String()); m != nil && strings.Contains(stdout.String(), "Ctrl-C") {
			return m[1]
		}
		return ""
	})
	for path, want := range map[string]int{"/public/x": 200, "/api/x": 401} {
		resp, err := http.Get(proxy + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d; want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("dev = %v\n%s", err, stderr.String())
	}
}

// token verify --config checks a token with the verifier serve builds from
// the file: its authorized parties and algorithms too, which no flag sets.
func TestTokenVerifyWithConfig(t *testing.T) {
	iss := issuer(t)
	tok := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice"})
	vars := map[string]string{"ISSUER": iss.Issuer()}
	strict := writeFile(t, "strict.yaml", "upstream: http://127.0.0.1:3000\nissuer: ${ISSUER}\naudiences: [api]\n"+
		"authorized_parties: [frontend]\nverify:\n  algorithms: [ES256]\n")
	plain := writeFile(t, "plain.yaml", "upstream: http://127.0.0.1:3000\nissuer: ${ISSUER}\naudiences: [api]\n")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"the file refuses what serve refuses", []string{"--config", strict}, 1, "verdict: INVALID"},
		{"the file accepts", []string{"--config", plain}, 0, "verdict: VALID"},
		{"flags accept (they cannot say more)", []string{"--issuer", iss.Issuer(), "--audience", "api"}, 0, "verdict: VALID"},
		{"both", []string{"--config", plain, "--issuer", iss.Issuer()}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(context.Background(), "", vars, append(append([]string{"token", "verify"}, tt.args...), tok)...)
			if r.code != tt.code || !strings.Contains(r.stdout, tt.want) {
				t.Errorf("token verify %v = exit %d, stdout %q, stderr %q; want exit %d with %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
		})
	}
}
