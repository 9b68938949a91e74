package jwks_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// A source configured by issuer discovers the JWKS URL, refreshes the keys
// every minute in the background, and keeps the last good ones through an
// outage for up to an hour.
func ExampleNewSource() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{Realm: "shop"})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()

	src, err := jwks.NewSource(jwks.Config{
		Issuer:          idp.Issuer(),
		RefreshInterval: time.Minute,
		MaxStale:        time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	src.Start()
	defer src.Close()

	select {
	case <-src.Ready():
	case <-time.After(10 * time.Second):
		log.Fatal("no keys yet: ", src.Status().LastError)
	}
	k, err := src.Key(context.Background(), idp.ActiveKeyID("RS256"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Type, k.Algorithm, src.Status().Ready)
	// Output: RSA RS256 true
}

// Keycloak reached under an internal name: keys come from the internal
// URL while tokens keep the public issuer, which the verifier checks.
func ExampleConfig_internalURL() {
	cfg := jwks.Config{
		Issuer: "https://login.example.com/realms/shop",
		URL:    "https://keycloak.internal:8443/realms/shop/protocol/openid-connect/certs",
	}
	_, err := jwks.NewSource(cfg)
	fmt.Println(err)
	// Output: <nil>
}

// The provider rotates its keys and its JWKS endpoint goes down: a token
// naming the new key cannot be checked, which is an outage
// ([jwks.ErrUnavailable], a 503 for the verifier), not a forgery
// ([jwks.ErrUnknownKey], a 401).
func ExampleSource_Key_outage() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	if err := src.Refresh(ctx); err != nil {
		log.Fatal(err)
	}

	kid, err := idp.AddKey("RS256")
	if err != nil {
		log.Fatal(err)
	}
	idp.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Status: 503})
	_, err = src.Key(ctx, kid)
	fmt.Println(errors.Is(err, jwks.ErrUnavailable), errors.Is(err, jwks.ErrUnknownKey))
	// Output: true false
}

// A client of your own: its Timeout bounds each request, and its
// CheckRedirect runs after the source's scheme check on every redirect.
func ExampleConfig_httpClient() {
	src, err := jwks.NewSource(jwks.Config{
		URL:        "https://keycloak.internal:8443/realms/shop/protocol/openid-connect/certs",
		HTTPClient: &http.Client{Timeout: 30 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	fmt.Println(src.Status().URL)
	// Output: https://keycloak.internal:8443/realms/shop/protocol/openid-connect/certs
}
