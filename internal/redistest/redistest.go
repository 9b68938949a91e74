// Package redistest starts a real redis-server (Debian's package, see
// scripts/redis.sh) on a free loopback port for tests, and stops it when
// the test ends. It is imported only by tests.
//
// When redis-server is not installed, [Start] skips the test, unless the
// environment sets KEYGATE_REQUIRE_REDIS=1 (make test does), in which case
// it fails: a missing server must not turn a test run green.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server process the test started.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Password is the requirepass the server was started with.
	Password string

	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts redis-server on a free loopback port, with a password and
// no persistence, and registers its stop with t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("KEYGATE_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server not found and KEYGATE_REQUIRE_REDIS=1: run scripts/redis.sh")
		}
		t.Skip("redis-server not found (run scripts/redis.sh, or make test)")
	}
	s := &Server{t: t, dir: t.TempDir(), Password: "keygate-test-" + strconv.Itoa(os.Getpid())}
	s.port = freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// URL returns a redis:// URL with the password, for go-redis's ParseURL.
func (s *Server) URL() string { return "redis://:" + s.Password + "@" + s.Addr + "/0" }

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--requirepass", s.Password, "--save", "", "--appendonly", "no", "--dir", s.dir,
		"--daemonize", "no", "--protected-mode", "yes", "--logfile", filepath.Join(s.dir, "redis.log"))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.cmd, s.done)
	// Wait until this very process answers PING with our password: a
	// server another run started on the port would refuse it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := s.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			s.kill()
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redistest: redis-server on %s did not answer: %v\n%s", s.Addr, err, log)
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redistest: redis-server exited at start:\n%s", log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping sends AUTH and PING over a raw connection and expects +OK, +PONG.
func (s *Server) ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "AUTH %s\r\nPING\r\n", s.Password)
	r := bufio.NewReader(c)
	for _, want := range []string{"+OK", "+PONG"} {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != want {
			return fmt.Errorf("answered %q, want %q", strings.TrimSpace(line), want)
		}
	}
	return nil
}

// Kill stops the server at once (SIGKILL), as a crash would, and waits for
// the process to end. The port stays the server's for Restart.
func (s *Server) Kill() { s.kill() }

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts a fresh, empty server on the same port after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	s.kill()
	s.start()
}

// Stop kills the server if it runs. Start registers it with t.Cleanup.
func (s *Server) Stop() { s.kill() }

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
