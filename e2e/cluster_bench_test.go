//go:build e2e

package e2e

// Measurements of cluster mode (issue #10, "Benchmarks" (a) and (b))
// with keygate serve processes against the real Keycloak. Each benchmark
// is one fixed run, whatever b.N: run them with -benchtime 1x. They
// report counts and latencies with b.ReportMetric and b.Logf and assert
// nothing about time; the proofs are the tests in cluster_test.go and
// cluster_fault_test.go.
//
//	go test -tags e2e -run '^$' -bench 'BenchmarkCluster' -benchtime 1x -v ./e2e/

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/redistest"
)

// countingJWKS is a reverse proxy in front of Keycloak's JWKS endpoint
// that counts the requests it passes: the provider's view of how often
// the instances fetch keys.
type countingJWKS struct {
	*httptest.Server
	n atomic.Int64
}

func newCountingJWKS(tb testing.TB) *countingJWKS {
	tb.Helper()
	target, err := url.Parse(kc.JWKSURL)
	if err != nil {
		tb.Fatal(err)
	}
	c := &countingJWKS{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		u := *target
		pr.Out.URL, pr.Out.Host = &u, target.Host
	}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(c.Close)
	return c
}

// benchYAML is a configuration for the key-fetch measurements: the JWKS
// through jwks (no discovery), the given key timings, warnings-only logs
// (a kid flood would otherwise log every refusal), and with cluster the
// cluster block of TestClusterLogout.
func benchYAML(c keygateConfig, jwks string, refresh, minRefetch time.Duration, cluster bool) string {
	y := strings.Replace(c.baseYAML(), "level: debug", "level: warn", 1) +
		fmt.Sprintf("jwks_url: %s\nkeys:\n  refresh_interval: %v\n  min_refetch_interval: %v\n", jwks, refresh, minRefetch)
	if cluster {
		y += clusterYAML
	}
	return y
}

// fleet is n keygate processes fetching keys through a countingJWKS,
// sharing a fresh Redis when cluster is set.
type fleet struct {
	procs []*keygateProc
	jwks  *countingJWKS
}

func startFleet(tb testing.TB, bin string, n int, refresh, minRefetch time.Duration, cluster bool) fleet {
	tb.Helper()
	f := fleet{jwks: newCountingJWKS(tb)}
	var env []string
	if cluster {
		env = clusterEnv(tb, redistest.Start(tb))
	}
	f.procs = startKeygates(tb, bin, n, func(_ int, c keygateConfig) string {
		return benchYAML(c, f.jwks.URL, refresh, minRefetch, cluster)
	}, env)
	return f
}

// providerFetches is the sum of the instances' keygate_jwks_provider_fetches_total.
func (f fleet) providerFetches(tb testing.TB) float64 {
	tb.Helper()
	var sum float64
	for _, p := range f.procs {
		sum += p.metrics(tb)["keygate_jwks_provider_fetches_total"]
	}
	return sum
}

// mode is "cluster" or "alone".
func modeName(cluster bool) string {
	if cluster {
		return "cluster"
	}
	return "alone"
}

// BenchmarkClusterKeyFetches is issue #10's benchmark (a): five keygate
// processes, with and without cluster mode, against Keycloak's JWKS
// through a counting proxy.
//
//   - refresh: keys.refresh_interval 2s, a fixed 20 s run with a request
//     per second to each instance: provider fetches for the five, against
//     ~10 per instance alone.
//   - kid-flood: keys.refresh_interval 1h and min_refetch_interval 1s, a
//     fixed 10 s flood of tokens with made-up kids over all five (two
//     goroutines each): provider fetches, against at most one per second
//     per instance alone.
//
// It reports provider-fetches (the proxy's count over the run),
// metric-fetches (the sum of keygate_jwks_provider_fetches_total over
// the run, which must agree) and fetches/interval.
func BenchmarkClusterKeyFetches(b *testing.B) {
	const (
		n          = 5
		refresh    = 2 * time.Second
		refreshRun = 20 * time.Second
		minRefetch = time.Second
		floodRun   = 10 * time.Second
	)
	bin := buildKeygate(b)
	valid := mustClient(b, worker).AccessToken
	for _, cluster := range []bool{true, false} {
		b.Run(modeName(cluster)+"/refresh", func(b *testing.B) {
			f := startFleet(b, bin, n, refresh, time.Minute, cluster)
			p0, m0 := f.jwks.n.Load(), f.providerFetches(b)
			start := time.Now()
			for time.Since(start) < refreshRun {
				for _, p := range f.procs {
					if a, err := p.get(valid); err != nil || a.Status != http.StatusOK {
						b.Fatalf("%s: %v (%v)", p.Name, a, err)
					}
				}
				time.Sleep(time.Second)
			}
			elapsed := time.Since(start)
			fetches, metric := f.jwks.n.Load()-p0, f.providerFetches(b)-m0
			intervals := elapsed.Seconds() / refresh.Seconds()
			b.Logf("%s, %d instances, refresh_interval %v: %d provider JWKS fetches in %v (%.1f intervals; the instances' metrics say %.0f)",
				modeName(cluster), n, refresh, fetches, elapsed.Round(time.Millisecond), intervals, metric)
			b.ReportMetric(float64(fetches), "provider-fetches")
			b.ReportMetric(metric, "metric-fetches")
			b.ReportMetric(float64(fetches)/intervals, "fetches/interval")
			b.ReportMetric(0, "ns/op")
		})
		b.Run(modeName(cluster)+"/kid-flood", func(b *testing.B) {
			f := startFleet(b, bin, n, time.Hour, minRefetch, cluster)
			fl := kidFlood(b, f, valid, 2, floodRun)
			sent, answers, fetches, metric, elapsed := fl.sent, fl.answers, fl.fetches, fl.metric, fl.elapsed
			windows := elapsed.Seconds() / minRefetch.Seconds()
			b.Logf("%s, %d instances, min_refetch_interval %v: %d requests with unknown kids (answers %v), %d provider JWKS fetches in %v (%.1f windows; the instances' metrics say %.0f)",
				modeName(cluster), n, minRefetch, sent, answers, fetches, elapsed.Round(time.Millisecond), windows, metric)
			for _, p := range f.procs {
				if a, err := p.get(valid); err != nil || a.Status != http.StatusOK {
					b.Errorf("%s after the flood: %v (%v)", p.Name, a, err)
				}
			}
			b.ReportMetric(float64(fetches), "provider-fetches")
			b.ReportMetric(metric, "metric-fetches")
			b.ReportMetric(float64(fetches)/windows, "fetches/window")
			b.ReportMetric(float64(sent)/elapsed.Seconds(), "requests/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// flood is the outcome of kidFlood.
type flood struct {
	sent    int64
	answers map[int]int // by status; 0 for a failed request
	// fetches is the JWKS proxy's count over the flood, metric the sum of
	// the instances' keygate_jwks_provider_fetches_total over it.
	fetches int64
	metric  float64
	elapsed time.Duration
}

// kidFlood sends tokens made of valid with made-up kids, all different,
// to every instance of f from workers goroutines each, for d.
func kidFlood(tb testing.TB, f fleet, valid string, workers int, d time.Duration) flood {
	tb.Helper()
	p0, m0 := f.jwks.n.Load(), f.providerFetches(tb)
	var sent atomic.Int64
	var mu sync.Mutex
	answers := map[int]int{}
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range f.procs {
		for g := range workers {
			wg.Go(func() {
				for j := 0; time.Since(start) < d; j++ {
					a, err := p.get(withKid(tb, valid, fmt.Sprintf("flood-%d-%d-%d", i, g, j)))
					sent.Add(1)
					mu.Lock()
					if err != nil {
						answers[0]++
					} else {
						answers[a.Status]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return flood{sent: sent.Load(), answers: answers, fetches: f.jwks.n.Load() - p0,
		metric: f.providerFetches(tb) - m0, elapsed: time.Since(start)}
}

// withKid is tok with its header's kid replaced: a token no published key
// signed, whose signature is never checked.
func withKid(tb testing.TB, tok, kid string) string {
	tb.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	return base64.RawURLEncoding.EncodeToString(h) + tok[strings.IndexByte(tok, '.'):]
}

// BenchmarkClusterLogoutPropagation is issue #10's benchmark (b): three
// keygate processes in cluster mode with back-channel logout on instance
// 1; logouts of sessions whose token every instance has accepted (and
// cached), each through Keycloak's admin API (DELETE /sessions/{sid}),
// and the time until each instance refuses the token, polling each
// every 5 ms. It reports p50, p90 and p99 of the admin call, and of
// the time from the start of the admin call to the refusal by every
// instance.
func BenchmarkClusterLogoutPropagation(b *testing.B) {
	const logouts, every = 100, 5 * time.Millisecond
	r := redistest.Start(b)
	bin := buildKeygate(b)
	env := clusterEnv(b, r)
	procs := startKeygates(b, bin, 3, func(_ int, c keygateConfig) string {
		return strings.Replace(c.baseYAML(), "level: debug", "level: warn", 1) + clusterYAML
	}, env)
	adminAPI.setBackchannelLogout(b, procs[0].URL+"/backchannel-logout", true)
	alice := adminAPI.user(b, "alice")

	var admin, all, spread []time.Duration
	perInstance := make([][]time.Duration, len(procs))
	for range logouts {
		tr := bclPassword(b, "alice")
		sid, _ := claimsOf(b, tr.AccessToken)["sid"].(string)
		mustAccept(b, procs, tr.AccessToken, alice.ID)
		mustAccept(b, procs, tr.AccessToken, alice.ID)
		refused := make([]time.Duration, len(procs))
		t0 := time.Now()
		var wg sync.WaitGroup
		for i, p := range procs {
			wg.Go(func() {
				deadline := t0.Add(30 * time.Second)
				for time.Now().Before(deadline) {
					a, err := p.get(tr.AccessToken)
					if err == nil && a.revoked() {
						refused[i] = time.Since(t0)
						return
					}
					if err != nil || a.Status != http.StatusOK {
						b.Errorf("%s: %v (%v)", p.Name, a, err)
						return
					}
					time.Sleep(every)
				}
				b.Errorf("%s: still accepts the token 30 s after the logout", p.Name)
			})
		}
		adminAPI.deleteSession(b, sid)
		admin = append(admin, time.Since(t0))
		wg.Wait()
		if b.Failed() {
			return
		}
		for i, d := range refused {
			perInstance[i] = append(perInstance[i], d)
		}
		all = append(all, slices.Max(refused))
		spread = append(spread, slices.Max(refused)-refused[0])
	}
	b.Logf("%d logouts, each instance polled every %v:", logouts, every)
	b.Logf("  admin call (DELETE /sessions/{sid}, Keycloak waits for instance 1's answer): %s", percentiles(admin))
	for i, ds := range perInstance {
		b.Logf("  %s refuses, from the start of the admin call: %s", procs[i].Name, percentiles(ds))
	}
	b.Logf("  every instance refuses, from the start of the admin call: %s", percentiles(all))
	b.Logf("  the last instance refuses, after instance 1 (Redis pub/sub; within the poll period when 0): %s", percentiles(spread))
	b.ReportMetric(pct(admin, 0.50).Seconds()*1e3, "admin-p50-ms")
	b.ReportMetric(pct(admin, 0.99).Seconds()*1e3, "admin-p99-ms")
	b.ReportMetric(pct(all, 0.50).Seconds()*1e3, "all-refuse-p50-ms")
	b.ReportMetric(pct(all, 0.99).Seconds()*1e3, "all-refuse-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// pct is the q quantile of ds (nearest rank).
func pct(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}

// percentiles describes ds for a log line.
func percentiles(ds []time.Duration) string {
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("p50 %v, p90 %v, p99 %v, max %v (n=%d)",
		r(pct(ds, 0.5)), r(pct(ds, 0.9)), r(pct(ds, 0.99)), r(slices.Max(ds)), len(ds))
}
