//go:build proxies

// Package frontproxy tests keygate's forward-auth mode behind the real
// NGINX and Caddy from Debian, configured with the files in examples/:
// the tests render those files, so the examples are what is tested.
// Run with `make proxies`, which installs the servers when missing.
package frontproxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/keycloaktest"
)

// keygateBin is the keygate binary TestMain builds for the package's tests.
// Set once, before any test runs.
var keygateBin string

// TestMain builds the keygate binary once: the tests run `keygate serve`
// as its own process, the way the examples run it (and the way an
// exhaustion test can read its memory from /proc). GO names the go command,
// as in the Makefile.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keygate-frontproxy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	gocmd := os.Getenv("GO")
	if gocmd == "" {
		gocmd = "go"
	}
	keygateBin = filepath.Join(dir, "keygate")
	build := exec.Command(gocmd, "build", "-o", keygateBin, "./cmd/keygate")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "frontproxy: building keygate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// issuer starts the test issuer with the users of every test here: alice
// has the realm role user only, admin has user and admin.
func issuer(t *testing.T) *keycloaktest.Server {
	t.Helper()
	return keycloaktest.New(t, keycloaktest.Config{
		Realm:            "dev",
		OmitDefaultRoles: true,
		Clients:          []keycloaktest.Client{{ID: "demo-app", DirectAccessGrants: true, Audiences: []string{"demo-api"}}},
		Users: []keycloaktest.User{
			{Username: "alice", Password: "alice", RealmRoles: []string{"user"}},
			{Username: "admin", Password: "admin", RealmRoles: []string{"user", "admin"}},
		},
	})
}

// keygateProc is a running `keygate serve`.
type keygateProc struct {
	addr  string // main listener, host:port
	admin string // admin listener, host:port
	pid   int
	log   string // the file its standard output and error go to
}

// startKeygate writes a configuration file and runs `keygate serve` with
// it: listen and admin.listen on free loopback ports, forward-auth on
// /auth, the issuer's tokens for audience demo-api, and body (more
// top-level YAML: upstream, rules, timeouts...). It returns once the key
// set is held (/readyz answers 200). A configuration keygate rejects
// fails the test with keygate's own message.
func startKeygate(t *testing.T, idp *keycloaktest.Server, body string) *keygateProc {
	t.Helper()
	return startKeygateWith(t, idp, body, nil)
}

// startKeygateWith is startKeygate with a wrapper: the command line is
// wrap(binary, args) when wrap is not nil (to run keygate under a shell
// that lowers its limits, say).
func startKeygateWith(t *testing.T, idp *keycloaktest.Server, body string, wrap func(bin string, args []string) *exec.Cmd) *keygateProc {
	t.Helper()
	k := &keygateProc{addr: freeAddr(t), admin: freeAddr(t)}
	conf := fmt.Sprintf(`listen: %s
admin:
  listen: %s
forward_auth:
  path: /auth
issuer: %s
audiences: [demo-api]
realm: keygate
log:
  level: warn
%s`, k.addr, k.admin, idp.Issuer(), body)
	if !strings.Contains(body, "timeouts:") {
		conf += "timeouts:\n  shutdown: 5s\n"
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"serve", "--config", path}
	var cmd *exec.Cmd
	if wrap != nil {
		cmd = wrap(keygateBin, args)
	} else {
		cmd = exec.Command(keygateBin, args...)
	}
	k.log = run(t, cmd, k.addr)
	k.pid = cmd.Process.Pid
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + k.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return k
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(k.log)
			t.Fatalf("keygate has no keys after 20s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stack is keygate in forward-auth mode with its issuer, and an upstream
// that echoes the headers it receives.
type stack struct {
	idp      *keycloaktest.Server
	keygate  string // host:port
	upstream string // host:port
}

func newStack(t *testing.T) *stack {
	t.Helper()
	idp := issuer(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": r.Header})
	}))
	t.Cleanup(up.Close)
	k := startKeygate(t, idp, `access:
  default: deny
  rules:
    - {path: /public/**, require: permit_all}
    - {path: /api/**, require: {role: user}}
    - {path: /admin/**, require: {role: admin}}
`)
	return &stack{idp: idp, keygate: k.addr, upstream: strings.TrimPrefix(up.URL, "http://")}
}

func (s *stack) token(t *testing.T, user string) string {
	t.Helper()
	return s.idp.MustMint(t, keycloaktest.Token{Client: "demo-app", User: user})
}

// freeAddr returns a loopback address nothing listens on yet.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// need finds a server binary. Under CI a missing one fails the run: make
// proxies installs them, so absence means the setup is broken.
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; make proxies installs it from Debian's packages", name)
		}
		t.Skipf("%s is not installed; run make proxies, which installs it", name)
	}
	return p
}

// run starts cmd in its own process group, stops the group at cleanup,
// and waits until addr answers. It returns the name of the file that
// holds the command's standard output and error.
func run(t *testing.T, cmd *exec.Cmd, addr string) string {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	recordPID(t, cmd.Process.Pid)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("%s exited at start:\n%s", cmd.Path, b)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return out.Name()
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("%s does not listen on %s:\n%s", cmd.Path, addr, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordPID appends pid to the file named by KEYGATE_PROXIES_PIDS, when
// set. scripts/proxies.sh stops the process groups listed there on exit,
// in case the test binary dies before its cleanups run (a -timeout panic).
func recordPID(t *testing.T, pid int) {
	t.Helper()
	name := os.Getenv("KEYGATE_PROXIES_PIDS")
	if name == "" {
		return
	}
	f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, pid); err != nil {
		t.Fatal(err)
	}
}

// render reads an example file and fills its placeholders.
func render(t *testing.T, example string, vars map[string]string, placeholder func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", example))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, placeholder(k), v)
	}
	return s
}

// startNGINX runs NGINX with examples/nginx/nginx.conf in front of
// upstream, asking keygate, and returns where it listens.
func startNGINX(t *testing.T, keygate, upstream string) string {
	t.Helper()
	bin := need(t, "nginx")
	listen := freeAddr(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := render(t, "nginx/nginx.conf",
		map[string]string{"NGINX_LISTEN": listen, "KEYGATE_ADDR": keygate, "UPSTREAM_ADDR": upstream},
		func(k string) string { return "${" + k + "}" })
	if strings.Contains(conf, "${NGINX_") || strings.Contains(conf, "${KEYGATE_") || strings.Contains(conf, "${UPSTREAM_") {
		t.Fatal("a placeholder of examples/nginx/nginx.conf was not filled")
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, exec.Command(bin, "-p", dir, "-c", path, "-e", "stderr"), listen)
	return listen
}

// startCaddy runs Caddy with examples/caddy/Caddyfile in front of
// upstream, asking keygate, and returns where it listens.
func startCaddy(t *testing.T, keygate, upstream string) string {
	t.Helper()
	bin := need(t, "caddy")
	listen := freeAddr(t)
	dir := t.TempDir()
	// Caddy reads {$VAR} placeholders from its environment; its home and
	// data directories go to the test's temp dir.
	cmd := exec.Command(bin, "run", "--config", filepath.Join("..", "..", "examples", "caddy", "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(),
		"CADDY_LISTEN="+listen, "KEYGATE_ADDR="+keygate, "UPSTREAM_ADDR="+upstream,
		"HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	run(t, cmd, listen)
	return listen
}

func TestNGINX(t *testing.T) {
	need(t, "nginx")
	st := newStack(t)
	walkthrough(t, st, "http://"+startNGINX(t, st.keygate, st.upstream))
}

func TestCaddy(t *testing.T) {
	need(t, "caddy")
	st := newStack(t)
	walkthrough(t, st, "http://"+startCaddy(t, st.keygate, st.upstream))
}

// walkthrough sends the requests through a front proxy and checks
// what the client and the upstream see.
func walkthrough(t *testing.T, st *stack, base string) {
	alice := st.token(t, "alice")
	admin := st.token(t, "admin")
	tampered := alice[:len(alice)-6] + "AAAAAA"
	tests := []struct {
		name      string
		path      string
		headers   []string
		status    int
		challenge string // substring of WWW-Authenticate; "" means not checked
		user      string // X-Auth-Username the upstream must see; "-" for none
		roles     string // X-Auth-Roles the upstream must see, when user is not "-"
	}{
		{"public without token", "/public/hello", nil, 200, "", "-", ""},
		{"public, spoofed identity", "/public/hello", []string{"X-Auth-Username: admin", "X-Auth-Roles: admin"}, 200, "", "-", ""},
		{"api without token", "/api/orders", nil, 401, `Bearer realm="keygate"`, "", ""},
		{"alice on api", "/api/orders", []string{"Authorization: Bearer " + alice}, 200, "", "alice", "user"},
		{"alice on api, spoofed identity", "/api/orders", []string{"Authorization: Bearer " + alice, "X-Auth-Username: admin", "X-Auth-Roles: admin"}, 200, "", "alice", "user"},
		{"alice on admin", "/admin/users", []string{"Authorization: Bearer " + alice}, 403, `error="insufficient_scope"`, "", ""},
		{"alice on admin, spoofed identity", "/admin/users", []string{"Authorization: Bearer " + alice, "X-Auth-Username: admin", "X-Auth-Roles: admin"}, 403, `error="insufficient_scope"`, "", ""},
		{"admin on admin", "/admin/users", []string{"Authorization: Bearer " + admin}, 200, "", "admin", "user,admin"},
		{"tampered token", "/api/orders", []string{"Authorization: Bearer " + tampered}, 401, `error="invalid_token"`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", base+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.headers {
				k, v, _ := strings.Cut(h, ": ")
				req.Header.Add(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s = %d %s; want %d", tt.path, resp.StatusCode, body, tt.status)
			}
			challenges := resp.Header.Values("WWW-Authenticate")
			if tt.challenge != "" {
				if len(challenges) != 1 || !strings.Contains(challenges[0], tt.challenge) {
					t.Errorf("WWW-Authenticate = %q; want exactly one holding %q", challenges, tt.challenge)
				}
			}
			if tt.status != 200 {
				if strings.Contains(string(body), `"path"`) {
					t.Errorf("a refused request reached the upstream: %s", body)
				}
				return
			}
			var seen struct {
				Headers http.Header `json:"headers"`
			}
			if err := json.Unmarshal(body, &seen); err != nil {
				t.Fatalf("upstream answer %q: %v", body, err)
			}
			got := seen.Headers.Values("X-Auth-Username")
			switch {
			case tt.user == "-" && len(got) != 0:
				t.Errorf("upstream saw X-Auth-Username %q on an anonymous request; want none", got)
			case tt.user != "-" && (len(got) != 1 || got[0] != tt.user):
				t.Errorf("upstream saw X-Auth-Username %q; want exactly %q", got, tt.user)
			}
			if tt.user == "-" && len(seen.Headers.Values("X-Auth-Roles")) != 0 {
				t.Errorf("upstream saw X-Auth-Roles %q on an anonymous request", seen.Headers.Values("X-Auth-Roles"))
			}
			if tt.user != "-" {
				if got := seen.Headers.Values("X-Auth-Roles"); len(got) != 1 || got[0] != tt.roles {
					t.Errorf("upstream saw X-Auth-Roles %q; want exactly %q", got, tt.roles)
				}
			}
			if a := seen.Headers.Get("Authorization"); a != "" {
				t.Errorf("upstream saw Authorization %q; the examples keep the token from the application", a[:min(len(a), 12)])
			}
		})
	}
}
