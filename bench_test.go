package keygate_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// benchPool is how many distinct tokens the unique-token benchmarks cycle
// through, with the cache off so that each Verify does the full work.
const benchPool = 512

type benchEnv struct {
	toks []string
	pub  crypto.PublicKey
	v    *keygate.Verifier // cache off
	vc   *keygate.Verifier // cache on
}

func newBenchEnv(b *testing.B, alg string) *benchEnv {
	b.Helper()
	idp, err := keycloaktest.NewServer(keycloaktest.Config{Realm: "bench", Algorithm: alg, Clients: []keycloaktest.Client{
		{ID: "worker", Secret: "s", ServiceAccount: true, Audiences: []string{"orders-api"},
			ServiceAccountRealmRoles: []string{"user", "offline_access"}, ServiceAccountClientRoles: map[string][]string{"orders-api": {"reader"}}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(idp.Close)
	src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	if err := src.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{pub: idp.PublicKey(idp.ActiveKeyID(alg))}
	for range benchPool {
		env.toks = append(env.toks, idp.MustMint(b, keycloaktest.Token{}))
	}
	cfg := keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: src, CacheSize: -1}
	if env.v, err = keygate.NewVerifier(cfg); err != nil {
		b.Fatal(err)
	}
	cfg.CacheSize = 0
	if env.vc, err = keygate.NewVerifier(cfg); err != nil {
		b.Fatal(err)
	}
	return env
}

// BenchmarkVerify measures keygate on Keycloak-shaped tokens: "unique"
// verifies a different token each time (full decode, claim checks and
// signature), "cached" the same token again.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		env := newBenchEnv(b, alg)
		ctx := context.Background()
		b.Run(alg+"/unique", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := env.v.Verify(ctx, env.toks[i%benchPool]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(alg+"/cached", func(b *testing.B) {
			tok := env.toks[0]
			if _, err := env.vc.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := env.vc.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/cached-parallel", func(b *testing.B) {
			for _, tok := range env.toks {
				env.vc.Verify(ctx, tok)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := env.vc.Verify(ctx, env.toks[i%benchPool]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		})
		b.Run(alg+"/floor", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if !stdlibFloor(env.toks[i%benchPool], env.pub) {
					b.Fatal("floor: signature does not verify")
				}
				i++
			}
		})
	}
}

// stdlibFloor is the least work any verifier must do: decode the
// signature, hash the signing input and check the signature with the
// standard library. It reads no header and checks no claim.
func stdlibFloor(tok string, pub crypto.PublicKey) bool {
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		return false
	}
	digest := sha256.Sum256([]byte(tok[:dot]))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	case *ecdsa.PublicKey:
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, digest[:], r, s)
	}
	return false
}
