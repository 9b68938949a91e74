package keycloaktest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

func ExampleNewServer() {
	srv, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm: "acme",
		Clients: []keycloaktest.Client{{
			ID: "billing", Secret: "s3cret", ServiceAccount: true,
			ServiceAccountRealmRoles: []string{"invoices:write"},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	resp, err := srv.Client().PostForm(srv.TokenURL(), url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {"billing"},
		"client_secret": {"s3cret"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		log.Fatal(err)
	}

	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[1])
	var claims struct {
		Iss         string `json:"iss"`
		Azp         string `json:"azp"`
		Typ         string `json:"typ"`
		Username    string `json:"preferred_username"`
		RealmAccess struct {
			Roles []string `json:"roles"`
		} `json:"realm_access"`
	}
	json.Unmarshal(payload, &claims)

	fmt.Println(strings.TrimPrefix(srv.Issuer(), srv.URL()))
	fmt.Println(strings.TrimPrefix(srv.JWKSURL(), srv.Issuer()))
	fmt.Println(resp.StatusCode, tok.TokenType)
	fmt.Println(claims.Iss == srv.Issuer(), claims.Azp, claims.Typ, claims.Username)
	fmt.Println(claims.RealmAccess.Roles[0])
	// Output:
	// /realms/acme
	// /protocol/openid-connect/certs
	// 200 Bearer
	// true billing Bearer service-account-billing
	// invoices:write
}

func ExampleServer_MintToken() {
	srv, err := keycloaktest.NewServer(keycloaktest.Config{
		Clients: []keycloaktest.Client{{ID: "web", Audiences: []string{"orders"}}},
		Users:   []keycloaktest.User{{Username: "alice", RealmRoles: []string{"admin"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// An access token for alice that expired a minute ago.
	expired, err := srv.MintToken(keycloaktest.Token{
		Client: "web",
		User:   "alice",
		Claims: map[string]any{"exp": time.Now().Add(-time.Minute)},
	})
	if err != nil {
		log.Fatal(err)
	}
	// An unsigned token, and one signed with HS256 keyed by the RSA public key.
	unsigned, _ := srv.MintToken(keycloaktest.Token{Algorithm: keycloaktest.AlgNone})
	confused, _ := srv.MintToken(keycloaktest.Token{Algorithm: "HS256"})

	fmt.Println(strings.Count(expired, "."), strings.HasSuffix(unsigned, "."), confused != "")
	// Output: 2 true true
}

func ExampleServer_SetFault() {
	srv, err := keycloaktest.NewServer(keycloaktest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// Take the JWK set down for the next two requests.
	srv.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 503, Count: 2})
	for range 3 {
		resp, err := srv.Client().Get(srv.JWKSURL())
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println(srv.Requests(keycloaktest.EndpointCerts), "requests")
	// Output:
	// 503
	// 503
	// 200
	// 3 requests
}

// TestDocHandlerTest runs the handler-test setup shown in the package
// documentation, line for line; keep the two equal.
func TestDocHandlerTest(t *testing.T) {
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "orders") })

	idp := keycloaktest.New(t, keycloaktest.Config{Clients: []keycloaktest.Client{{ID: "orders-api", Audiences: []string{"orders-api"}}}})
	keys, _ := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	keys.Refresh(t.Context())
	v, _ := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})
	auth, _ := httpauth.New(httpauth.Config{Verifier: v})
	req := httptest.NewRequest("GET", "/orders", nil)
	req.Header.Set("Authorization", "Bearer "+idp.MustMint(t, keycloaktest.Token{}))
	rec := httptest.NewRecorder()
	auth.Wrap(orders).ServeHTTP(rec, req) // rec.Code is orders' answer, or 401

	if rec.Code != http.StatusOK || rec.Body.String() != "orders" {
		t.Errorf("GET /orders with a minted token = %d %q; want 200 \"orders\"", rec.Code, rec.Body)
	}
}

// Setting up a handler test: the issuer, a key source and a verifier
// against it, and a request with a minted token. In a test function,
// New(t, cfg) and MustMint(t, tok) replace the error handling and close
// the server when the test ends (see the package documentation).
func Example_handlerTest() {
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "orders") })

	idp, _ := keycloaktest.NewServer(keycloaktest.Config{Clients: []keycloaktest.Client{{ID: "orders-api", Audiences: []string{"orders-api"}}}})
	defer idp.Close()
	keys, _ := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	keys.Refresh(context.Background())
	v, _ := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})
	auth, _ := httpauth.New(httpauth.Config{Verifier: v})
	tok, _ := idp.MintToken(keycloaktest.Token{})

	for _, header := range []string{"Bearer " + tok, ""} {
		req := httptest.NewRequest("GET", "/orders", nil)
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		auth.Wrap(orders).ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 200
	// 401
}

func ExampleServer_MintLogoutToken() {
	srv, err := keycloaktest.NewServer(keycloaktest.Config{
		Clients: []keycloaktest.Client{{ID: "web"}},
		Users:   []keycloaktest.User{{Username: "alice"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// The logout token Keycloak posts to web's back-channel logout URL
	// when alice's session s-1 ends.
	tok, err := srv.MintLogoutToken(keycloaktest.Token{Client: "web", User: "alice", SessionID: "s-1"})
	if err != nil {
		log.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var h struct{ Typ string }
	var c struct {
		Aud, Sid, Typ string
		Iat, Exp      int64
		Events        map[string]any
	}
	json.Unmarshal(header, &h)
	json.Unmarshal(payload, &c)
	_, event := c.Events[keycloaktest.LogoutEvent]
	fmt.Println(h.Typ, c.Typ, c.Aud, c.Sid, c.Exp-c.Iat, event)
	// Output:
	// logout+jwt Logout web s-1 120 true
}
