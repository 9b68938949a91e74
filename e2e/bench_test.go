//go:build e2e

package e2e

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
)

// BenchmarkMiddlewareKeycloakTokens measures validations per second of
// tokens real Keycloak issued, through httpauth's middleware (no policy:
// any valid token passes) into an empty handler, with
// httptest.NewRecorder:
//
//   - unique: 256 distinct tokens in turn with the verified-token cache
//     off, so every request pays the full check (decode, claims, key
//     lookup, signature), as a token the service has not seen before does;
//   - repeated: one token over and over with the default cache, as a
//     client reusing its token until it expires.
//
// Run: go test -tags e2e -run '^$' -bench MiddlewareKeycloakTokens -benchmem ./e2e/
// (TestMain starts Keycloak if none answers, and stops it afterwards).
func BenchmarkMiddlewareKeycloakTokens(b *testing.B) {
	src := newSource(b, jwks.Config{})
	for _, tc := range []struct {
		alg string
		c   client
	}{{"RS256", worker}, {"ES256", es256}} {
		toks := make([]string, 256)
		for i := range toks {
			toks[i] = mustClient(b, tc.c).AccessToken
		}
		if h := headerOf(b, toks[0]); h.Alg != tc.alg {
			b.Fatalf("%s issues %s, want %s", tc.c.id, h.Alg, tc.alg)
		}
		b.Run(tc.alg+"/unique", func(b *testing.B) {
			benchMiddleware(b, newVerifier(b, src, func(c *keygate.Config) { c.CacheSize = -1 }), toks)
		})
		b.Run(tc.alg+"/repeated", func(b *testing.B) {
			benchMiddleware(b, newVerifier(b, src, nil), toks[:1])
		})
	}
}

func benchMiddleware(b *testing.B, v *keygate.Verifier, toks []string) {
	mw, err := httpauth.New(httpauth.Config{Verifier: v})
	if err != nil {
		b.Fatal(err)
	}
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	reqs := make([]*http.Request, len(toks))
	for i, tok := range toks {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/orders", nil)
		reqs[i].Header.Set("Authorization", "Bearer "+tok)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, reqs[i])
		if w.Code != http.StatusOK {
			b.Fatalf("token %s: HTTP %d %s", short(toks[i]), w.Code, w.Header().Get("WWW-Authenticate"))
		}
		if i++; i == len(reqs) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
}
