package keygate_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// The whole setup of a service: a key source for the realm, started once,
// and a verifier that requires the service's audience.
func Example() {
	// A local Keycloak-compatible issuer stands in for the real one.
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm: "shop",
		Clients: []keycloaktest.Client{{
			ID: "worker", Secret: "s", ServiceAccount: true,
			Audiences:                []string{"orders-api"},
			ServiceAccountRealmRoles: []string{"user"},
		}},
		OmitDefaultRoles: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()

	keys, err := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	if err != nil {
		log.Fatal(err)
	}
	keys.Start() // fetches in the background; never blocks
	defer keys.Close()
	<-keys.Ready()

	v, err := keygate.NewVerifier(keygate.Config{
		Issuer:    idp.Issuer(),
		Audiences: []string{"orders-api"},
		Keys:      keys,
	})
	if err != nil {
		log.Fatal(err)
	}

	token, err := idp.MintToken(keycloaktest.Token{}) // what a client would send
	if err != nil {
		log.Fatal(err)
	}
	p, err := v.Verify(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Username, p.Client, p.RealmRoles, p.HasRole("user"))
	// Output: service-account-worker worker [user] true
}

// Errors tell a rejected token (401) from one that cannot be checked now
// (503), and name what failed.
func ExampleVerifier_Verify_errors() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Clients: []keycloaktest.Client{{ID: "worker", Secret: "s", ServiceAccount: true, Audiences: []string{"orders-api"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	keys, _ := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	defer keys.Close()
	keys.Refresh(context.Background())
	v, _ := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})

	idToken, _ := idp.MintToken(keycloaktest.Token{Claims: map[string]any{"typ": "ID"}})
	_, err = v.Verify(context.Background(), idToken)
	var e *keygate.Error
	if errors.As(err, &e) {
		fmt.Println(errors.Is(err, keygate.ErrWrongTokenType), errors.Is(err, keygate.ErrKeysUnavailable))
		fmt.Println(e.Description())
	}
	// Output:
	// true false
	// wrong token type
}

// Providers other than Keycloak put roles in the top-level roles claim of
// RFC 9068 (Microsoft Entra ID, Auth0, Okta). RFC9068Roles maps them to
// roles, so that HasRole and authz's role rules see them.
func ExampleClaimMapping_rfc9068() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Clients:          []keycloaktest.Client{{ID: "worker", Secret: "s", ServiceAccount: true, Audiences: []string{"orders-api"}}},
		OmitDefaultRoles: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	keys, _ := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	defer keys.Close()
	keys.Refresh(context.Background())

	v, err := keygate.NewVerifier(keygate.Config{
		Issuer:    idp.Issuer(),
		Audiences: []string{"orders-api"},
		Keys:      keys,
		Mapping:   keygate.ClaimMapping{RFC9068Roles: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	token, _ := idp.MintToken(keycloaktest.Token{
		Header: map[string]any{"typ": "at+jwt"},
		Claims: map[string]any{"typ": nil, "roles": []string{"orders.admin"}, "entitlements": []string{"gold"}},
	})
	p, err := v.Verify(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.HasRole("orders.admin"), p.Entitlements, p.ServiceAccount())
	// Output: true [gold] true
}

// Explain runs Verify's checks and reports each one: what a tool shows a
// person debugging a refused token.
func ExampleVerifier_Explain() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Clients: []keycloaktest.Client{{ID: "worker", Secret: "s", ServiceAccount: true, Audiences: []string{"billing"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	keys, _ := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	defer keys.Close()
	keys.Refresh(context.Background())
	v, _ := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})

	token, _ := idp.MintToken(keycloaktest.Token{})
	x := v.Explain(context.Background(), token)
	for _, c := range x.Checks {
		fmt.Println(c.Name, c.Err == nil)
	}
	fmt.Println(errors.Is(x.Err, keygate.ErrWrongAudience))
	// Output:
	// size true
	// format true
	// type true
	// algorithm true
	// lifetime true
	// issuer true
	// audience false
	// true
}

// A logout token names the session that ended. It is checked with the
// verifier's keys, issuer and algorithms, against the client it was sent
// to; it never passes Verify, nor an access token VerifyLogoutToken.
func ExampleVerifier_VerifyLogoutToken() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Clients: []keycloaktest.Client{{ID: "app", Audiences: []string{"orders-api"}}},
		Users:   []keycloaktest.User{{Username: "alice"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	keys, err := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	if err := keys.Refresh(context.Background()); err != nil {
		log.Fatal(err)
	}
	v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})
	if err != nil {
		log.Fatal(err)
	}

	// What Keycloak posts to app's back-channel logout URL.
	raw, err := idp.MintLogoutToken(keycloaktest.Token{Client: "app", User: "alice", SessionID: "s-1"})
	if err != nil {
		log.Fatal(err)
	}
	lt, err := v.VerifyLogoutToken(context.Background(), raw, "app")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lt.SessionID, lt.ExpiresAt.Sub(lt.IssuedAt))

	_, err = v.Verify(context.Background(), raw)
	fmt.Println(errors.Is(err, keygate.ErrWrongTokenType))
	// Output:
	// s-1 2m0s
	// true
}
