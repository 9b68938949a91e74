package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/keycloaktest"
)

// cannedTransport answers every round trip with a small 200 at once, so
// that a benchmark of the proxy measures the proxy's own work and no I/O.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("ok")),
		ContentLength: 2, Request: r}, nil
}

// discardWriter is a ResponseWriter that keeps nothing but its header map.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkServeProxy measures one proxied request through the main
// listener's handler, with an upstream that answers at once and no
// network: "bare" is an httputil.ReverseProxy with the same transport
// and buffer pool (what proxyload -bare runs), "repeated" is keygate
// with one token (answered from the cache), "distinct" cycles 2,000
// tokens through a cache of 500, so that each one is verified in full,
// as 20,000 tokens through the default cache of 4,096 are in
// bench-proxy. keygate's cost above the bare proxy is the difference.
func BenchmarkServeProxy(b *testing.B) {
	iss := keycloaktest.New(b, keycloaktest.Config{
		OmitDefaultRoles: true,
		Clients: []keycloaktest.Client{{ID: "svc", Secret: "s", ServiceAccount: true,
			Audiences: []string{"bench-api"}, ServiceAccountRealmRoles: []string{"user"}}},
	})
	one := []string{iss.MustMint(b, keycloaktest.Token{})}
	many := func() []string {
		toks := make([]string, 2000)
		for i := range toks {
			toks[i] = iss.MustMint(b, keycloaktest.Token{})
		}
		return toks
	}
	cfg := config.Config{
		Listen:    "127.0.0.1:0",
		Upstream:  "http://127.0.0.1:1",
		Issuer:    iss.Issuer(),
		Audiences: []string{"bench-api"},
		Access:    &authz.Config{Default: authz.Authenticated()},
	}
	bare := func() http.Handler {
		target, _ := url.Parse(cfg.Upstream)
		return &httputil.ReverseProxy{Transport: cannedTransport{}, BufferPool: &benchPool{}, Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		}}
	}
	keygate := func(cacheSize int) http.Handler {
		c := cfg
		c.Verify.CacheSize = cacheSize
		s, err := server.New(c, server.Options{Transport: cannedTransport{}})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Shutdown(b.Context()) })
		<-s.KeysReady()
		return s.Handler()
	}
	for _, c := range []struct {
		name string
		h    func() http.Handler
		toks func() []string
	}{
		{"bare", bare, func() []string { return one }},
		{"repeated", func() http.Handler { return keygate(0) }, func() []string { return one }},
		{"distinct", func() http.Handler { return keygate(500) }, many},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := c.h()
			toks := c.toks()
			reqs := make([]*http.Request, len(toks))
			for i, tok := range toks {
				r, _ := http.NewRequest("GET", "http://keygate.test/api/orders/42?page=2", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("Authorization", "Bearer "+tok)
				r.Header.Set("User-Agent", "wrk")
				reqs[i] = r
			}
			w := &discardWriter{h: make(http.Header)}
			serve := func(i int) { serveOne(h, w, reqs[i%len(reqs)]) }
			for i := range reqs { // warm: every token seen once
				serve(i)
			}
			if len(w.h["Www-Authenticate"]) > 0 {
				b.Fatalf("refused: %v", w.h)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				serve(i)
				i++
			}
		})
	}
}

type benchPool struct{ p sync.Pool }

func (b *benchPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *benchPool) Put(buf []byte) { b.p.Put(&buf) }

// serveOne serves one request. It is not inlined, so that profilers
// (valgrind --toggle-collect='*serveOne') can count its work alone.
//
//go:noinline
func serveOne(h http.Handler, w *discardWriter, r *http.Request) {
	clear(w.h)
	h.ServeHTTP(w, r)
}

// BenchmarkServeLoopback measures one proxied request over loopback, as
// bench-proxy does but in one process and on one keep-alive connection:
// "bare" is the bare proxy behind an http.Server with default settings
// (what proxyload -bare runs), "keygate" is keygate's server as Start
// runs it (its timeouts, connection limit and upstream transport) with
// one token. The client reads raw HTTP/1.1 and allocates nothing, and
// the upstream is the same for both, so the difference between the two
// in B/op and allocs/op is what keygate's whole request path adds,
// the listener and transport settings included: the garbage that makes
// the collector run more often under load.
func BenchmarkServeLoopback(b *testing.B) {
	iss := keycloaktest.New(b, keycloaktest.Config{
		OmitDefaultRoles: true,
		Clients: []keycloaktest.Client{{ID: "svc", Secret: "s", ServiceAccount: true,
			Audiences: []string{"bench-api"}, ServiceAccountRealmRoles: []string{"user"}}},
	})
	tok := iss.MustMint(b, keycloaktest.Token{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	b.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)

	bare := func() string {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 256
		s := httptest.NewServer(&httputil.ReverseProxy{Transport: t, BufferPool: &benchPool{}, Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		}})
		b.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	keygate := func() string {
		s, err := server.New(config.Config{
			Listen:    "127.0.0.1:0",
			Upstream:  up.URL,
			Issuer:    iss.Issuer(),
			Audiences: []string{"bench-api"},
			Access:    &authz.Config{Default: authz.Authenticated()},
		}, server.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Shutdown(b.Context()) })
		<-s.KeysReady()
		return s.Addr().String()
	}
	for _, c := range []struct {
		name string
		addr func() string
	}{{"bare", bare}, {"keygate", keygate}} {
		b.Run(c.name, func(b *testing.B) {
			conn, err := net.Dial("tcp", c.addr())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			req := []byte("GET /api/orders/42?page=2 HTTP/1.1\r\nHost: keygate.test\r\nUser-Agent: wrk\r\nAuthorization: Bearer " + tok + "\r\n\r\n")
			br := bufio.NewReader(conn)
			roundTrip := func() {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if status, err := readResponse(br); err != nil || status != "200" {
					b.Fatalf("status %q, error %v", status, err)
				}
			}
			for range 100 { // warm: connections, pools, the token cache
				roundTrip()
			}
			b.ReportAllocs()
			for b.Loop() {
				roundTrip()
			}
		})
	}
}

// readResponse reads one HTTP/1.1 response with a Content-Length from br
// and returns its status code, without allocating.
func readResponse(br *bufio.Reader) (status string, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 12 {
		return "", fmt.Errorf("status line %q", line)
	}
	code := [3]byte(line[9:12])
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return "", err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		return "", errors.New("no Content-Length")
	}
	if _, err := br.Discard(n); err != nil {
		return "", err
	}
	return string(code[:]), nil
}
