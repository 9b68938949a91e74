// Command proxyload sets up the servers of the proxy load test (see
// run.sh and BENCHMARKS.md) on loopback: an upstream that answers "ok", a
// bare httputil.ReverseProxy in front of it (the baseline), and a
// Keycloak-compatible issuer. It writes tokens and a keygate config into
// a directory, prints the addresses as shell assignments, and serves until
// it gets SIGINT or SIGTERM.
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
	"syscall"

	"github.com/keygate/keygate/keycloaktest"
)

func main() {
	dir := flag.String("dir", "", "directory for tokens.txt, token.txt and keygate.yaml")
	n := flag.Int("tokens", 2000, "distinct tokens to mint")
	flag.Parse()
	if *dir == "" {
		log.Fatal("proxyload: -dir is required")
	}

	upstream := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	target, _ := url.Parse("http://" + upstream)
	// The baseline gets the transport settings keygate's proxy uses
	// (internal/server), so that the comparison measures the auth work.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = 256, 256
	bare := serve(&httputil.ReverseProxy{Transport: transport, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}})

	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:            "bench",
		OmitDefaultRoles: true,
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
rules:
  default: authenticated
log:
  level: error
`, keygateAddr, upstream, idp.Issuer()))

	fmt.Printf("UPSTREAM=%s\nBARE=%s\nKEYGATE=%s\nISSUER=%s\n", upstream, bare, keygateAddr, idp.Issuer())
	os.Stdout.Sync()

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
