package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/keycloaktest"
)

// TestMain lets the test binary act as keygate when re-executed, so that
// exit statuses and signals are tested on a real process.
func TestMain(m *testing.M) {
	if os.Getenv("KEYGATE_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func keygate(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KEYGATE_TEST_AS_MAIN=1")
	return cmd
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestExitStatus(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("upstream: http://u\nissuer: https://i/r\naudiences: []\n"), 0o600)
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"version"}, 0},
		{[]string{"help"}, 0},
		{[]string{"config", "check", bad}, 1},
		{[]string{"frob"}, 2},
		{nil, 2},
	}
	for _, tt := range tests {
		err := keygate(tt.args...).Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code {
			t.Errorf("keygate %q exit = %d; want %d", tt.args, code, tt.code)
		}
	}
}

// TestSIGTERM sends SIGTERM to keygate serve while a slow request is in
// flight: the request completes and keygate exits 0.
func TestSIGTERM(t *testing.T) {
	iss := keycloaktest.New(t, keycloaktest.Config{
		OmitDefaultRoles: true,
		Clients:          []keycloaktest.Client{{ID: "app", Audiences: []string{"api"}}},
		Users:            []keycloaktest.User{{Username: "alice"}},
	})
	entered := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		io.WriteString(w, "finished")
	}))
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "keygate.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nupstream: "+up.URL+"\nissuer: "+iss.Issuer()+"\naudiences: [api]\ntimeouts: {shutdown: 10s}\n"), 0o600)

	cmd := keygate("serve", "--config", cfg)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	re := regexp.MustCompile(`"listen":"([^"]+)"`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; {
		if m := re.FindStringSubmatch(stderr.String()); m != nil && regexp.MustCompile(`jwks key set updated`).MatchString(stderr.String()) {
			addr = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keygate did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
		req.Header.Set("Authorization", "Bearer "+iss.MustMint(t, keycloaktest.Token{User: "alice"}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(b), nil}
	}()
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Errorf("in-flight request = %d %q %v; want 200 finished", r.status, r.body, r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("keygate exited with %v\n%s", err, stderr.String())
	}
	if !regexp.MustCompile(`"msg":"keygate stopped"`).MatchString(stderr.String()) {
		t.Errorf("no shutdown logged:\n%s", stderr.String())
	}
}
