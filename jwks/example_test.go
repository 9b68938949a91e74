package jwks_test

import (
	"context"
	"fmt"
	"log"
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
