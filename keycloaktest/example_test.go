package keycloaktest_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net/url"
	"strings"
	"time"

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
