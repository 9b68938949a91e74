package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
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

// TestProxyCallsConcurrentPaths sends, from several goroutines at once,
// requests of alice, admin and anonymous callers down every path that
// ends a proxied request: a plain answer, an answer after a 1xx, an
// upstream that breaks off its body (the proxy panics with
// http.ErrAbortHandler and drops the call), an upstream that closes
// without answering (ErrorHandler), and a protocol switch. The upstream
// checks that each request it sees names the caller that sent it, or
// none. Run it with -race.
func TestProxyCallsConcurrentPaths(t *testing.T) {
	iss := issuer(t)
	var (
		mu  sync.Mutex
		bad []string
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := r.Header.Get("X-Test-Caller")
		if got := r.Header.Values("X-Auth-Username"); len(got) > 1 || strings.Join(got, "") != want ||
			want == "" && len(r.Header.Values("X-Auth-Subject")) != 0 {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("%s for %q: X-Auth-Username %q, X-Auth-Subject %q",
				r.URL.Path, want, got, r.Header.Values("X-Auth-Subject")))
			mu.Unlock()
		}
		switch path.Base(r.URL.Path) {
		case "hint":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "ok")
		case "abort":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "partial")
			panic(http.ErrAbortHandler)
		case "fail":
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		case "ws":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nbye")
			brw.Flush()
			conn.Close()
		default:
			io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(up.Close)
	s, _ := start(t, baseConfig(iss, up.URL))
	callers := []struct{ token, user string }{
		{token(t, iss, "alice"), "alice"},
		{"", ""},
		{token(t, iss, "admin"), "admin"},
	}
	kinds := []string{"ok", "hint", "abort", "fail", "ws"}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 60 {
				c, kind := callers[(g+i)%len(callers)], kinds[(g+i/3)%len(kinds)]
				if kind == "ws" {
					conn, err := net.Dial("tcp", s.Addr().String())
					if err != nil {
						t.Error(err)
						return
					}
					fmt.Fprintf(conn, "GET /public/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Test-Caller: %s\r\n", c.user)
					if c.token != "" {
						fmt.Fprintf(conn, "Authorization: Bearer %s\r\n", c.token)
					}
					io.WriteString(conn, "\r\n")
					io.Copy(io.Discard, conn)
					conn.Close()
					continue
				}
				req, _ := http.NewRequest("GET", s.URL()+"/public/"+kind, nil)
				req.Header.Set("X-Test-Caller", c.user)
				if c.token != "" {
					req.Header.Set("Authorization", "Bearer "+c.token)
				}
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
}
