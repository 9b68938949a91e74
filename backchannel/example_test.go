package backchannel_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/backchannel"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
	"github.com/keygate/keygate/revoke"
)

// Example mounts the back-channel logout endpoint beside an API. Keycloak
// (here keycloaktest) posts a logout token when alice's session ends, and
// her access token stops passing at once.
func Example() {
	ctx := context.Background()
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:   "shop",
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
	if err := keys.Refresh(ctx); err != nil {
		log.Fatal(err)
	}

	// One store records the logouts and answers the verifier: here the
	// in-memory revoke.List; redisstore.Revocations shares them across
	// instances.
	store := &revoke.List{TTL: time.Hour}
	v, err := keygate.NewVerifier(keygate.Config{
		Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys, Revocations: store,
	})
	if err != nil {
		log.Fatal(err)
	}
	logout, err := backchannel.New(backchannel.Config{
		Verifier: v,
		Audience: "app", // the client whose "Backchannel logout URL" points here
		Store:    store,
		TTL:      time.Hour, // at least the longest access-token lifetime
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/backchannel-logout", logout)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	access, _ := idp.MintToken(keycloaktest.Token{Client: "app", User: "alice"})
	p, err := v.Verify(ctx, access)
	fmt.Println("before logout:", err)

	// What Keycloak sends when the session ends.
	lt, _ := idp.MintLogoutToken(keycloaktest.Token{Client: "app", User: "alice", SessionID: p.SessionID})
	resp, err := http.PostForm(srv.URL+"/backchannel-logout", url.Values{"logout_token": {lt}})
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)

	_, err = v.Verify(ctx, access)
	fmt.Println("after logout:", errors.Is(err, keygate.ErrRevoked))
	// Output:
	// before logout: <nil>
	// 200 OK
	// after logout: true
}
