// Command proxyload sets up the servers of the proxy load test (see
// run.sh and BENCHMARKS.md) on loopback, and serves until it gets SIGINT
// or SIGTERM.
//
//	proxyload -dir DIR      an upstream that answers "ok" and a
//	                        Keycloak-compatible issuer; writes tokens and a
//	                        keygate config into DIR
//	proxyload -bare ADDR    a bare httputil.ReverseProxy to the upstream at
//	                        ADDR (the baseline)
//	proxyload -floor ADDR -issuer URL
//	                        the bare proxy behind one crypto/rsa RS256
//	                        check per request, no cache, exp/iss/aud only
//	                        (the verify-each-request floor)
//
// Each prints its addresses as shell assignments. The baseline runs in a
// process of its own, as keygate does: in the upstream's process it would
// share that process's scheduler and its larger heap (the issuer and the
// tokens), which makes the collector run less often.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keygate/keygate/keycloaktest"
)

func main() {
	dir := flag.String("dir", "", "directory for tokens.txt, token.txt and keygate.yaml")
	n := flag.Int("tokens", 20000, "distinct tokens to mint")
	bareTo := flag.String("bare", "", "serve only a bare proxy to this upstream host:port")
	floorTo := flag.String("floor", "", "serve only the verify-each-request floor proxy to this upstream host:port")
	issuer := flag.String("issuer", "", "the issuer whose keys the floor proxy uses")
	flag.Parse()
	if *floorTo != "" {
		h, err := floorProxy(*floorTo, *issuer, "bench-api")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("FLOOR=%s\n", serve(h))
		os.Stdout.Sync()
		wait()
		return
	}
	if *bareTo != "" {
		fmt.Printf("BARE=%s\n", serve(bareProxy(*bareTo)))
		os.Stdout.Sync()
		wait()
		return
	}
	if *dir == "" {
		log.Fatal("proxyload: -dir or -bare is required")
	}

	upstream := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))

	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:            "bench",
		OmitDefaultRoles: true,
		// The runs, and the wait for a quiet machine before them, outlast
		// Keycloak's default 5 minutes.
		AccessTokenLifespan: 4 * time.Hour,
		Clients: []keycloaktest.Client{{ID: "svc", Secret: "s", ServiceAccount: true,
			Audiences: []string{"bench-api"}, ServiceAccountRealmRoles: []string{"user"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()

	toks := make([]string, *n)
	for i := range toks {
		if toks[i], err = idp.MintToken(keycloaktest.Token{}); err != nil {
			log.Fatal(err)
		}
	}
	write(filepath.Join(*dir, "tokens.txt"), strings.Join(toks, "\n")+"\n")
	write(filepath.Join(*dir, "token.txt"), toks[0]+"\n")
	keygateAddr := free()
	write(filepath.Join(*dir, "keygate.yaml"), fmt.Sprintf(`listen: %s
upstream: http://%s
issuer: %s
audiences: [bench-api]
access:
  default: authenticated
log:
  level: error
`, keygateAddr, upstream, idp.Issuer()))

	fmt.Printf("UPSTREAM=%s\nKEYGATE=%s\nISSUER=%s\n", upstream, keygateAddr, idp.Issuer())
	os.Stdout.Sync()
	wait()
}

// bareProxy is the baseline. It gets the transport settings and the copy
// buffer pool of keygate's proxy (cmd/keygate/internal/server), so that the
// comparison measures keygate's own work.
func bareProxy(upstream string) http.Handler {
	target, _ := url.Parse("http://" + upstream)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = 256, 256
	return &httputil.ReverseProxy{Transport: transport, BufferPool: &bufferPool{}, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// wait blocks until SIGINT or SIGTERM.
func wait() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}

// serve starts h on a free loopback port and returns its address.
func serve(h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(l, h)
	return l.Addr().String()
}

// free returns a loopback address nothing listens on.
func free() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func write(path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		log.Fatal(err)
	}
}
