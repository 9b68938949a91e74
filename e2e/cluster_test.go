//go:build e2e

package e2e

// Cluster mode (issue #10) against the real Keycloak: keygate serve
// processes built from this checkout, in proxy mode in front of an
// httptest upstream, sharing a real redis-server (internal/redistest).
// TestClusterLogout logs a session out through Keycloak's admin API and
// waits until every instance refuses its token.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/redistest"
)

// buildKeygate builds cmd/keygate of this checkout into a temporary dir
// and returns the binary's path. The Go build cache makes a second build
// in one run cheap.
func buildKeygate(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "keygate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/keygate")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/keygate: %v\n%s", err, out)
	}
	return bin
}

// keygateProc is one keygate serve process.
type keygateProc struct {
	Name string
	// URL is the main listener, http://127.0.0.1:port; AdminURL the
	// admin listener.
	URL, AdminURL string
	// Config is the path of its configuration file; Log of its standard
	// output and error.
	Config, Log string

	cmd  *exec.Cmd
	done chan struct{}
}

// keygateConfig is what a configuration is made from: the addresses the
// process listens on and the upstream it proxies to.
type keygateConfig struct {
	Listen, Admin, Upstream string
}

// baseYAML is the configuration every instance shares: proxy mode in front
// of upstream, the keygate realm's tokens for orders-api, an admin
// listener, and debug logs.
func (c keygateConfig) baseYAML() string {
	return fmt.Sprintf(`listen: %s
upstream: %s
issuer: %s
audiences: [orders-api]
verify:
  role_clients: [orders-api]
admin:
  listen: %s
log:
  level: debug
`, c.Listen, c.Upstream, kc.Issuer, c.Admin)
}

// startKeygates starts n keygate serve processes of bin on free loopback
// ports, with the configuration yaml returns for each (i counts from 0)
// and the environment extra added to the test's, waits until each
// answers 200 on /readyz (it holds the realm's keys), and stops them when
// t ends. A process that does not become ready fails t with its log.
func startKeygates(t testing.TB, bin string, n int, yaml func(i int, c keygateConfig) string, extra []string) []*keygateProc {
	t.Helper()
	upstream := newUpstream(t)
	dir := t.TempDir()
	procs := make([]*keygateProc, n)
	for i := range procs {
		name := "keygate-" + strconv.Itoa(i+1)
		// Free ports are chosen by binding :0 and closing, so another
		// process may take one before keygate binds it: try again then.
		for attempt := 1; ; attempt++ {
			c := keygateConfig{Listen: freeAddr(t), Admin: freeAddr(t), Upstream: upstream.URL}
			p := &keygateProc{Name: name, URL: "http://" + c.Listen, AdminURL: "http://" + c.Admin,
				Config: filepath.Join(dir, name+".yaml"), Log: filepath.Join(dir, name+".log")}
			if err := os.WriteFile(p.Config, []byte(yaml(i, c)), 0o600); err != nil {
				t.Fatal(err)
			}
			err := p.start(t, bin, extra)
			if err == nil {
				procs[i] = p
				break
			}
			log := p.logTail(40)
			if attempt < 3 && strings.Contains(log, "address already in use") {
				continue
			}
			t.Fatalf("%s: %v\nconfig %s:\n%s\nlog:\n%s", name, err, p.Config, readFile(p.Config), log)
		}
	}
	return procs
}

// start runs the process and waits until it is ready, or ends.
func (p *keygateProc) start(t testing.TB, bin string, extra []string) error {
	t.Helper()
	logf, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "--config", p.Config)
	p.cmd.Env = append(os.Environ(), extra...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Killed with the test binary, whatever happens to it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", p.Name, p.logTail(30))
		}
	})
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get(p.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("not ready after 60 s (last: %v)", err)
		}
	}
}

// stop sends SIGTERM, waits up to 30 s for the graceful shutdown, then
// kills the process.
func (p *keygateProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail is the last n lines of the process's log.
func (p *keygateProc) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(readFile(p.Log), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// answer is keygate's answer to a proxied request.
type answer struct {
	Status int
	// WWWAuthenticate is the header of a 401.
	WWWAuthenticate string
	Body            string
}

func (a answer) String() string {
	return fmt.Sprintf("HTTP %d, WWW-Authenticate %q, body %.200q", a.Status, a.WWWAuthenticate, a.Body)
}

// revoked reports whether a is keygate's refusal of a revoked token.
func (a answer) revoked() bool {
	return a.Status == http.StatusUnauthorized && strings.Contains(a.WWWAuthenticate, `error="invalid_token"`) &&
		strings.Contains(a.WWWAuthenticate, `error_description="token revoked"`)
}

// get sends GET /orders with tok as bearer token through the proxy.
func (p *keygateProc) get(tok string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, p.URL+"/orders", nil)
	if err != nil {
		return answer{}, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return answer{Status: resp.StatusCode, WWWAuthenticate: resp.Header.Get("WWW-Authenticate"), Body: string(b)}, nil
}

// mustAccept checks that every instance proxies a request with tok to the
// upstream, which sees the token's subject.
func mustAccept(t testing.TB, procs []*keygateProc, tok, sub string) {
	t.Helper()
	for _, p := range procs {
		a, err := p.get(tok)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != http.StatusOK || a.Body != "upstream: "+sub {
			t.Fatalf("%s refused token %s: %v", p.Name, short(tok), a)
		}
	}
}

// newUpstream is the service behind keygate: it answers 200 with the
// subject keygate passed on.
func newUpstream(t testing.TB) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream: %s", r.Header.Get("X-Auth-Subject"))
	}))
	t.Cleanup(s.Close)
	return s
}

// freeAddr is a loopback host:port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestClusterProcesses checks the process scaffolding without cluster
// mode: three keygate serve processes each proxy a real Keycloak token
// to the upstream and refuse a request without one.
func TestClusterProcesses(t *testing.T) {
	bin := buildKeygate(t)
	procs := startKeygates(t, bin, 3, func(_ int, c keygateConfig) string { return c.baseYAML() }, nil)
	alice := adminAPI.user(t, "alice")
	mustAccept(t, procs, mustPassword(t, "alice").AccessToken, alice.ID)
	for _, p := range procs {
		a, err := p.get("")
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != http.StatusUnauthorized || !strings.HasPrefix(a.WWWAuthenticate, "Bearer") {
			t.Errorf("%s without a token: %v, want 401 with a Bearer challenge", p.Name, a)
		}
	}
}

// clusterYAML is the cluster and revocation configuration of issue #10:
// Redis and the cluster secret come from the environment
// (KEYGATE_REDIS_URL, KEYGATE_CLUSTER_SECRET), logout tokens for
// keygate-bcl are received on /backchannel-logout of the main listener.
const clusterYAML = `cluster:
  redis:
    url: ${KEYGATE_REDIS_URL}
  key_prefix: "keygate-e2e:"
  secret: ${KEYGATE_CLUSTER_SECRET}
revocation:
  ttl: 10m
  backchannel_logout:
    path: /backchannel-logout
    client_id: keygate-bcl
`

// clusterEnv is the environment clusterYAML reads, for Redis r and a
// fresh random secret.
func clusterEnv(t testing.TB, r *redistest.Server) []string {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	return []string{"KEYGATE_REDIS_URL=" + r.URL(), "KEYGATE_CLUSTER_SECRET=" + hex.EncodeToString(secret)}
}

// checkConfig runs keygate config check on yaml with env and fails t on
// any problem it reports, so that a refused cluster configuration fails
// with the checker's words rather than a process that never gets ready.
func checkConfig(t testing.TB, bin, yaml string, env []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "check.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "config", "check", path)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("keygate config check: %v\n%s", err, out.String())
	}
}

// TestClusterLogout is issue #10's proof with a real Keycloak: three
// keygate instances share one Redis; keygate-bcl's back-channel logout URL
// points at instance 1 only. A user's token is accepted by all three
// (and so sits in their verified-token caches); its session is deleted
// through Keycloak's admin API; Keycloak POSTs the logout token to
// instance 1 before the admin call answers (so instance 1 must refuse the
// token as soon as it has answered), and the revocation must reach
// instances 2 and 3 through Redis: all three then answer 401
// invalid_token "token revoked". The time from the admin call to each
// instance's first refusal is logged. A new session of the same user and
// another user's token are still accepted everywhere.
func TestClusterLogout(t *testing.T) {
	r := redistest.Start(t)
	bin := buildKeygate(t)
	env := clusterEnv(t, r)
	yaml := func(_ int, c keygateConfig) string { return c.baseYAML() + clusterYAML }
	checkConfig(t, bin, yaml(0, keygateConfig{Listen: "127.0.0.1:1", Admin: "127.0.0.1:2",
		Upstream: "http://127.0.0.1:3"}), env)
	procs := startKeygates(t, bin, 3, yaml, env)
	adminAPI.setBackchannelLogout(t, procs[0].URL+"/backchannel-logout", true)

	alice := adminAPI.user(t, "alice")
	tr := bclPassword(t, "alice")
	sid, _ := claimsOf(t, tr.AccessToken)["sid"].(string)
	if sid == "" {
		t.Fatal("alice's token has no sid")
	}
	// Twice: the second request is a hit in each verified-token cache,
	// which must not keep a revoked token alive.
	mustAccept(t, procs, tr.AccessToken, alice.ID)
	mustAccept(t, procs, tr.AccessToken, alice.ID)

	t0 := time.Now()
	adminAPI.deleteSession(t, sid)
	answered := time.Since(t0)

	// Keycloak answers the admin call only after instance 1 answered the
	// logout token, and instance 1 answers only once the revocation holds
	// for its own requests: it refuses the token at once.
	if a, err := procs[0].get(tr.AccessToken); err != nil || !a.revoked() {
		t.Errorf("%s, which received the logout, right after the admin call answered: %v (%v), want 401 token revoked",
			procs[0].Name, a, err)
	}

	// Poll every instance until each refuses the token as revoked; any
	// other answer than 200 (not yet) or that refusal fails the test.
	refusedAfter := make([]time.Duration, len(procs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			ok := poll(30*time.Second, func() bool {
				a, err := p.get(tr.AccessToken)
				switch {
				case err != nil:
					t.Errorf("%s: %v", p.Name, err)
					return true
				case a.revoked():
					mu.Lock()
					refusedAfter[i] = time.Since(t0)
					mu.Unlock()
					return true
				case a.Status != http.StatusOK:
					t.Errorf("%s: %v, want 200 or 401 token revoked", p.Name, a)
					return true
				}
				return false
			})
			if !ok {
				t.Errorf("%s still accepts the token of the deleted session 30 s after the logout", p.Name)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var slowest time.Duration
	for i, d := range refusedAfter {
		t.Logf("%s refuses the logged-out token %v after the admin call (which answered in %v)",
			procs[i].Name, d.Round(time.Millisecond), answered.Round(time.Millisecond))
		slowest = max(slowest, d)
	}
	t.Logf("cluster logout: revocation propagated to all %d instances in %v (polled every 100 ms)",
		len(procs), slowest.Round(time.Millisecond))

	// Revocation is by session: a new login of alice, and bob, still pass.
	mustAccept(t, procs, bclPassword(t, "alice").AccessToken, alice.ID)
	mustAccept(t, procs, mustPassword(t, "bob").AccessToken, adminAPI.user(t, "bob").ID)
}
