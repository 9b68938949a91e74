package httpauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// Protecting a ServeMux: /public/** is open, /admin/** needs the realm
// role admin, everything else a valid token.
func Example() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:   "shop",
		Clients: []keycloaktest.Client{{ID: "web", DirectAccessGrants: true, Audiences: []string{"orders-api"}}},
		Users:   []keycloaktest.User{{Username: "alice", Password: "alice", RealmRoles: []string{"user"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	keys, _ := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	keys.Start()
	defer keys.Close()
	<-keys.Ready()

	verifier, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})
	if err != nil {
		log.Fatal(err)
	}
	policy, err := authz.Compile(authz.Config{
		Rules: []authz.Rule{
			{Path: "/public/**", Require: authz.PermitAll()},
			{Path: "/admin/**", Require: authz.Role("admin")},
		},
		Default: authz.Authenticated(),
	})
	if err != nil {
		log.Fatal(err)
	}
	auth, err := httpauth.New(httpauth.Config{Verifier: verifier, Policy: policy, Realm: "shop"})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p, _ := httpauth.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", p.Username)
	})
	srv := httptest.NewServer(auth.Wrap(mux))
	defer srv.Close()

	token, _ := idp.MintToken(keycloaktest.Token{Client: "web", User: "alice"})
	for _, path := range []string{"/orders", "/admin/users"} {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	// Output:
	// /orders 200 []
	// /admin/users 403 [Bearer realm="shop", error="insufficient_scope", error_description="the token does not grant access to this resource"]
}

// Method-level checks, like Spring's @PreAuthorize, inside the middleware.
func ExampleMiddleware_RequireRole() {
	var auth *httpauth.Middleware // from httpauth.New, as in the package example
	mux := http.NewServeMux()
	mux.Handle("DELETE /orders/{id}", auth.RequireRole("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "deleted %s", r.PathValue("id"))
	})))
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", auth.Wrap(mux)))
}

// Checking the original request of a forward-auth subrequest before
// deciding it, as the keygate binary does. The URI comes from a header
// such as X-Original-URI and is parsed as a request target, which keeps
// a "#" in the path.
func ExampleCheckTarget() {
	for _, target := range []string{
		"/orders/7/",
		"/admin#x",
		"/public/%252e%252e/admin",
		"/public/%2e%2e/admin",
		"/admin%2Fusers",
	} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			log.Fatal(err)
		}
		var e *httpauth.Error
		if err := httpauth.CheckTarget("delete", u); errors.As(err, &e) {
			fmt.Println(target, e.Status, e.Code, e.Description)
			continue
		}
		fmt.Println(target, "ok")
	}
	// Output:
	// /orders/7/ ok
	// /admin#x 400 invalid_request the request path holds a forbidden character
	// /public/%252e%252e/admin 400 invalid_request the request path is encoded twice (%25)
	// /public/%2e%2e/admin 400 invalid_request the request path is not canonical
	// /admin%2Fusers 400 invalid_request the request path holds an encoded slash
}
