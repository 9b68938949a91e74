package server

import (
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
)

func TestHeaderSet(t *testing.T) {
	s := newHeaderSet([]string{"X-Auth-Username", config.Off, ""}, config.DefaultStripHeaders())
	tests := []struct {
		name string
		want bool
	}{
		{"X-Auth-Username", true},
		{"x-auth-username", true},
		{"X_Auth_Username", true},
		{"X-AUTH_USERNAME", true},
		{"x_auth_username", true},
		{"X-Auth-Usernam", false},
		{"X-Auth-Usernames", false},
		{"X-Auth-Username ", false},
		{"Remote_User", true},
		{"X-Original-Url", true},
		{"X-Forwarded-For", false},
		{"Forwarded", true},
		{"X-Real-Ip", true},
		{"x_forwarded_port", true},
		{"X-Envoy-Original-Path", true},
		{"-", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := s.has(tt.name); got != tt.want {
			t.Errorf("has(%q) = %v; want %v", tt.name, got, tt.want)
		}
	}
}

// TestSpoofed checks which header names make forward-auth refuse: an
// identity header in any spelling, a strip-list name or forward-auth
// input spelled with '_', and nothing else. The names are map keys as
// net/http's server stores them (canonicalized, '_' kept).
func TestSpoofed(t *testing.T) {
	owned := newHeaderSet([]string{"X-User"}, config.DefaultIdentityHeaderNames())
	strip := newHeaderSet([]string{"X-User"}, config.DefaultIdentityHeaderNames(), config.DefaultStripHeaders(), forwardAuthInputs())
	tests := []struct {
		name    string
		refused bool
	}{
		{"X-User", true},
		{"X_user", true},
		{"X-Auth-Roles", true},
		{"X_auth_roles", true},
		{"X-Auth_roles", true},
		{"X-Auth-Username", true}, // a default name, though renamed
		{"X-Real-Ip", false},      // NGINX sets it on its subrequest
		{"X_real_ip", true},
		{"X-Forwarded-Prefix", false}, // Traefik's stripprefix sets it
		{"X_forwarded_prefix", true},
		{"Forwarded", false},
		{"X-Original-Url", false},
		{"X_original_url", true},
		{"Remote-User", false},
		{"Remote_user", true},
		{"X-Forwarded-Host", false},
		{"X_forwarded_host", true},
		{"X-Forwarded-Uri", false},
		{"X_forwarded_uri", true},
		{"X-Original-Uri", false},
		{"X-Request-Id", false},
		{"X_request_id", false},
	}
	for _, tt := range tests {
		h := http.Header{"Accept": {"*/*"}, tt.name: {"x"}}
		got := spoofed(h, owned, strip)
		if want := map[bool]string{true: tt.name}[tt.refused]; got != want {
			t.Errorf("spoofed(%s) = %q; want %q", tt.name, got, want)
		}
	}
}

// TestStripAllocs checks that the per-request strip does not allocate
// when there is nothing to strip, nor when there is.
func TestStripAllocs(t *testing.T) {
	s := newHeaderSet(config.DefaultIdentityHeaderNames(), config.DefaultStripHeaders(), forwardAuthInputs())
	clean := http.Header{
		"Accept": {"*/*"}, "User-Agent": {"curl/8"}, "Accept-Encoding": {"gzip"},
		"Authorization": {"Bearer x"}, "X-Request-Id": {"1"}, "Content-Type": {"application/json"},
		"A-Header-Name-Longer-Than-Any-Name-In-The-Set-Of-Stripped-Names": {"x"},
		// As long as the longest name of the set, and longer than the
		// 32 bytes a []byte conversion gets on the stack.
		"X-Auth-Request-Preferred-Usernamf": {"x"},
	}
	if n := testing.AllocsPerRun(100, func() { s.strip(clean) }); n != 0 {
		t.Errorf("strip of a clean request: %v allocations; want 0", n)
	}
	if len(clean) != 8 {
		t.Errorf("strip removed a clean header: %v", clean)
	}
	owned := newHeaderSet(config.DefaultIdentityHeaderNames())
	if n := testing.AllocsPerRun(100, func() { spoofed(clean, owned, s) }); n != 0 {
		t.Errorf("spoofed of a clean request: %v allocations; want 0", n)
	}
	dirty := http.Header{}
	if n := testing.AllocsPerRun(100, func() {
		dirty["X_auth_roles"] = nil
		s.strip(dirty)
	}); n != 0 {
		t.Errorf("strip of a spoofed header: %v allocations; want 0", n)
	}
}

func BenchmarkStrip(b *testing.B) {
	s := newHeaderSet(config.DefaultIdentityHeaderNames(), config.DefaultStripHeaders(), forwardAuthInputs())
	h := http.Header{
		"Accept": {"*/*"}, "User-Agent": {"curl/8"}, "Accept-Encoding": {"gzip"},
		"Authorization": {"Bearer x"}, "X-Request-Id": {"1"}, "Content-Type": {"application/json"},
	}
	b.ReportAllocs()
	for b.Loop() {
		s.strip(h)
	}
}

// TestLimitListenerClose checks that closing a full limitListener wakes
// an Accept waiting for a slot.
func TestLimitListenerClose(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 1, true)
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept() // no free slot: waits
		done <- err
	}()
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v; want net.ErrClosed", err)
	}
	if l := newLimitListener(inner, 0, true); l != inner {
		t.Error("newLimitListener(l, 0, true) wraps l; want l itself")
	}
}
