package keygate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// FuzzVerify feeds arbitrary tokens to a verifier. It must never panic,
// every error must be a classified *keygate.Error, and the only tokens it
// may accept are the ones the issuer really signed.
func FuzzVerify(f *testing.F) {
	idp := keycloaktest.New(f, keycloaktest.Config{Clients: []keycloaktest.Client{
		{ID: "c", Secret: "s", ServiceAccount: true, Audiences: []string{"api"}},
		{ID: "e", Secret: "s", ServiceAccount: true, Audiences: []string{"api"}, Algorithm: "ES256"},
	}})
	src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL(), MinRefetchInterval: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	defer src.Close()
	if err := src.Refresh(context.Background()); err != nil {
		f.Fatal(err)
	}
	signed := map[string]bool{}
	for _, tok := range []keycloaktest.Token{
		{Client: "c"}, {Client: "e"},
		{Client: "c", Claims: map[string]any{"typ": "ID"}},
		{Client: "c", Algorithm: keycloaktest.AlgNone},
		{Client: "c", Algorithm: "HS256"},
		{Client: "c", Header: map[string]any{"crit": []string{"b64"}, "b64": false}},
	} {
		raw := idp.MustMint(f, tok)
		signed[raw] = true
		f.Add(raw)
	}
	f.Add("")
	f.Add("..")
	f.Add("e30.e30.")
	v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"api"}, Keys: src})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(context.Background(), raw)
		if err != nil {
			var ke *keygate.Error
			if !errors.As(err, &ke) || p != nil {
				t.Fatalf("Verify(%q) = %v, %v; want a nil principal and a *keygate.Error", raw, p, err)
			}
			return
		}
		if !signed[raw] {
			t.Fatalf("Verify(%q) accepted a token the issuer never signed", raw)
		}
	})
}
