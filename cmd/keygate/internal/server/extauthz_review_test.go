//go:build !keygate_noextauthz

package server_test

// Regression tests from the security review of the ext_authz server.

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// closeWatch is a net.Conn that notes when the peer closed it.
type closeWatch struct {
	net.Conn
	closed *atomic.Bool
}

func (c closeWatch) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.closed.Store(true)
	}
	return n, err
}

// TestExtAuthzFullListenerKeepsEnvoy: a full ext_authz listener waits; it
// never closes Envoy's long-lived, busy HTTP/2 connection to make room
// (gRPC reports no connection states, so every connection would look
// like one still on its first request). Checks in flight on a closed
// connection would fail, which Envoy (failure_mode_allow: false) turns
// into 403 for real users.
func TestExtAuthzFullListenerKeepsEnvoy(t *testing.T) {
	iss := issuer(t)
	cfg := extAuthzConfig(iss)
	cfg.Limits.MaxConnections = 2
	s, _ := start(t, cfg)
	addr := s.ExtAuthzAddr().String()

	var envoyClosed atomic.Bool
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
			if err != nil {
				return nil, err
			}
			return closeWatch{c, &envoyClosed}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	req := envoyRequest(decisionCase{method: "GET", uri: "/public/x"}, false)

	// "Envoy" checks requests continuously, as a busy proxy does.
	stop := make(chan struct{})
	var failed atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if _, err := client.Check(ctx, req); err != nil {
				failed.Add(1)
			}
			cancel()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(1200 * time.Millisecond) // Envoy's connection is now "old"

	// Two more clients (another Envoy, a second worker thread, or anyone
	// who can reach the port): one fills the listener, the next waits.
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if envoyClosed.Load() {
		t.Errorf("keygate closed Envoy's busy ext_authz connection to make room (%d Checks failed meanwhile)", failed.Load())
	}
}

// TestExtAuthzHeadersToRemoveMixedSpelling: headers_to_remove holds every
// spelling of '-' and '_', because Envoy may not send every header
// (allowed_headers, Envoy Gateway's headersToExtAuth): a client's
// "x-auth_username: admin" that keygate never saw must still not reach
// an upstream that folds '_' into '-' (CGI, WSGI, PHP, Rack).
func TestExtAuthzHeadersToRemoveMixedSpelling(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, extAuthzConfig(iss))
	// What Envoy sends with allowed_headers: {patterns: [{exact: authorization}]}:
	// the client's x-auth_username is not in the request.
	_, resp := viaExtAuthz(t, extAuthzClient(t, s), envoyRequest(decisionCase{method: "GET", uri: "/public/x"}, false))
	remove := resp.GetOkResponse().GetHeadersToRemove()
	for _, n := range []string{"x-auth_username", "x_auth-username", "x-auth_roles", "x-forwarded_user"} {
		if !slices.Contains(remove, n) {
			t.Errorf("headers_to_remove lacks %s", n)
		}
	}
}

// TestExtAuthzRemovesForwardedHost: Envoy does not set x-forwarded-host
// (append_x_forwarded_host appends on host rewrites, after the filters),
// so a client's value is removed, as proxy mode strips it.
func TestExtAuthzRemovesForwardedHost(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, extAuthzConfig(iss))
	c := decisionCase{method: "GET", uri: "/public/x", headers: []header{{"x-forwarded-host", "evil.example"}}}
	a, resp := viaExtAuthz(t, extAuthzClient(t, s), envoyRequest(c, false))
	if a.status == 200 && !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "x-forwarded-host") {
		t.Errorf("client x-forwarded-host allowed and not removed: it reaches the upstream")
	}
}

// TestExtAuthzMessageLimit: one CheckRequest is bounded (Envoy sends
// headers only), so that one connection cannot make keygate hold
// megabytes per check.
func TestExtAuthzMessageLimit(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, extAuthzConfig(iss))
	req := envoyRequest(decisionCase{method: "GET", uri: "/public/x",
		headers: []header{{"x-pad", strings.Repeat("a", 2<<20)}}}, false)
	if _, err := extAuthzClient(t, s).Check(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("Check of a 2 MiB request = %v; want ResourceExhausted", err)
	}
}

// TestExtAuthzCommaInOtherScheme: with Envoy's headers map, an
// Authorization value with a comma is split only when a later part is a
// Bearer credential; one header of another scheme with commas of its own
// (Digest, AWS SigV4) gets forward-auth's answer.
func TestExtAuthzCommaInOtherScheme(t *testing.T) {
	iss := issuer(t)
	s, _ := start(t, extAuthzConfig(iss))
	c := decisionCase{method: "GET", uri: "/api/x", headers: []header{{"Authorization", `Digest username="alice", realm="shop", nonce="n", uri="/api/x", response="r"`}}}
	fa := viaForwardAuth(t, s, c)
	ea, _ := viaExtAuthz(t, extAuthzClient(t, s), envoyRequest(c, false))
	if fa.status != ea.status {
		t.Errorf("forward-auth %d, ext_authz (headers map) %d for one Digest Authorization header", fa.status, ea.status)
	}
}
