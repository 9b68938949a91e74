//go:build !keygate_noextauthz

package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/keygate/keygate/keycloaktest"
)

// BenchmarkExtAuthzCheck measures Check calls over gRPC on loopback, one
// at a time from one client, for an allowed request: "repeated" sends the
// same token each call (the verifier's cache answers), "unique" cycles
// through 512 tokens with the cache off (full RS256 verification). It
// reports calls/s and the p50 and p99 latency of a call.
func BenchmarkExtAuthzCheck(b *testing.B) {
	iss := issuer(b)
	toks := make([]string, 512)
	for i := range toks {
		toks[i] = iss.MustMint(b, keycloaktest.Token{Client: "app", User: "alice"})
	}
	for _, c := range []struct {
		name  string
		cache int
		toks  []string
	}{
		{"repeated", 0, toks[:1]},
		{"unique", -1, toks},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := extAuthzConfig(iss)
			cfg.Verify.CacheSize = c.cache
			s, _ := start(b, cfg)
			client := extAuthzClient(b, s)
			reqs := make([]*authv3.CheckRequest, len(c.toks))
			for i, tok := range c.toks {
				reqs[i] = envoyRequest(decisionCase{method: "GET", uri: "/api/orders?page=2",
					headers: []header{{"Authorization", "Bearer " + tok}}}, false)
			}
			ctx := context.Background()
			check := func(i int) {
				resp, err := client.Check(ctx, reqs[i%len(reqs)])
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatalf("Check: %v %v", resp, err)
				}
			}
			check(0)
			lat := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				t0 := time.Now()
				check(i)
				lat = append(lat, time.Since(t0))
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
