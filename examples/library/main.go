// Command library is the README's Quick start as a complete program: an
// orders service whose handlers keygate protects. It needs a realm to
// check tokens against:
//
//	go run ./examples/library -issuer https://sso.example.com/realms/shop -audience orders-api
//
// Its test runs it against keycloaktest's issuer, the way make test does.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
)

//go:embed rules.yaml
var rulesYAML []byte

func main() {
	issuer := flag.String("issuer", "", "the realm's issuer URL, such as https://sso.example.com/realms/shop")
	audience := flag.String("audience", "orders-api", "the audience tokens must carry")
	listen := flag.String("listen", "127.0.0.1:8080", "the address to serve on")
	flag.Parse()
	if *issuer == "" {
		fmt.Fprintln(os.Stderr, "library: -issuer is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving on http://%s", ln.Addr())
	if err := run(ctx, ln, *issuer, *audience); err != nil {
		log.Fatal(err)
	}
}

// run serves the orders API on ln until ctx is done.
func run(ctx context.Context, ln net.Listener, issuer, audience string) error {
	// Quick start, as in the README.
	keys, err := jwks.NewSource(jwks.Config{Issuer: issuer})
	if err != nil {
		return err
	}
	keys.Start() // background fetch and refresh; never blocks
	defer keys.Close()

	verifier, err := keygate.NewVerifier(keygate.Config{
		Issuer:    issuer,
		Audiences: []string{audience},
		Keys:      keys,
	})
	if err != nil {
		return err
	}

	policy, err := authz.ParseYAML(rulesYAML) // rules.yaml; or authz.Compile in Go
	if err != nil {
		return err
	}
	auth, err := httpauth.New(httpauth.Config{Verifier: verifier, Policy: policy})
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, _ := httpauth.FromContext(r.Context()) // the verified caller
		fmt.Fprintf(w, "order %s for %s\n", r.PathValue("id"), p.Username)
	})
	mux.HandleFunc("GET /public/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	srv := &http.Server{Handler: auth.Wrap(mux)}
	// End of the Quick start.

	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
