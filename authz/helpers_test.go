package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
)

const (
	testIssuer   = "https://keycloak.test/realms/test"
	testAudience = "orders-api"
)

// verified returns the principal of a real ES256 access token carrying
// claims besides the registered ones, as the verifier builds it: the only
// kind of principal whose Claim method works.
func verified(t testing.TB, claims map[string]any) *keygate.Principal {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v, err := keygate.NewVerifier(keygate.Config{
		Issuer:    testIssuer,
		Audiences: []string{testAudience},
		Keys:      jwks.StaticSet(&jwks.Key{ID: "k1", Type: "EC", Public: &priv.PublicKey}),
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "user-1",
		"typ": "Bearer",
		"exp": time.Now().Add(time.Hour).Unix(),
	}
	maps.Copy(payload, claims)
	raw := signES256(t, priv, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "k1"}, payload)
	p, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("Verify(minted token) = %v", err)
	}
	return p
}

// signES256 returns a compact JWS of header and payload signed with priv.
func signES256(t testing.TB, priv *ecdsa.PrivateKey, header, payload map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(payload)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}
