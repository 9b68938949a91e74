//go:build e2e

package e2e

// Cluster mode (issue #10) when Redis fails: three keygate serve
// processes under continuous load of valid real tokens while their Redis
// is killed and restarted. Nothing valid may be refused; key fetches fall
// back to each instance and come back to the shared copy; a logout
// received during the outage holds at once on the instance that received
// it and reaches the others once Redis is back.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/redistest"
)

// instanceStatus is what an instance's /readyz tells about its keys and
// Redis (cmd/keygate/internal/server/admin.go).
type instanceStatus struct {
	Ready bool `json:"ready"`
	JWKS  struct {
		Fetches uint64 `json:"fetches"`
		Shared  *struct {
			ProviderFetches uint64 `json:"provider_fetches"`
			Hits            uint64 `json:"hits"`
			LeaseWins       uint64 `json:"lease_wins"`
			AuthFailures    uint64 `json:"auth_failures"`
			Errors          uint64 `json:"errors"`
			LastError       string `json:"last_error"`
		} `json:"shared"`
	} `json:"jwks"`
	Redis *struct {
		Reachable bool   `json:"reachable"`
		Error     string `json:"error"`
	} `json:"redis"`
}

// status reads p's /readyz, which must describe cluster mode.
func (p *keygateProc) status(t testing.TB) instanceStatus {
	t.Helper()
	resp, err := httpc.Get(p.AdminURL + "/readyz")
	if err != nil {
		t.Fatalf("%s /readyz: %v", p.Name, err)
	}
	defer resp.Body.Close()
	var st instanceStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s /readyz: %v", p.Name, err)
	}
	if st.JWKS.Shared == nil || st.Redis == nil {
		t.Fatalf("%s /readyz has no jwks.shared or redis: not in cluster mode", p.Name)
	}
	return st
}

// metrics reads p's /metrics: the value of every series without labels.
func (p *keygateProc) metrics(t testing.TB) map[string]float64 {
	t.Helper()
	resp, err := httpc.Get(p.AdminURL + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", p.Name, err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s /metrics: %v", p.Name, err)
	}
	return m
}

// statuses reads every instance's /readyz.
func statuses(t testing.TB, procs []*keygateProc) []instanceStatus {
	t.Helper()
	sts := make([]instanceStatus, len(procs))
	for i, p := range procs {
		sts[i] = p.status(t)
	}
	return sts
}

// waitInstances polls every instance's /readyz (100 ms, 60 s deadline)
// until cond holds for each, and fails t with the last statuses if not.
func waitInstances(t testing.TB, procs []*keygateProc, what string, cond func(i int, st instanceStatus) bool) {
	t.Helper()
	var last []instanceStatus
	ok := poll(60*time.Second, func() bool {
		last = statuses(t, procs)
		for i, st := range last {
			if !cond(i, st) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("waited 60 s for %s; last /readyz: %s", what, describe(procs, last))
	}
}

// describe is the shared-cache part of sts, for messages.
func describe(procs []*keygateProc, sts []instanceStatus) string {
	var b strings.Builder
	for i, st := range sts {
		s := st.JWKS.Shared
		fmt.Fprintf(&b, "\n  %s: ready %v, provider fetches %d, shared hits %d, lease wins %d, shared errors %d (%q), redis reachable %v",
			procs[i].Name, st.Ready, s.ProviderFetches, s.Hits, s.LeaseWins, s.Errors, s.LastError, st.Redis.Reachable)
	}
	return b.String()
}

// loadToken is a valid token of the load and the subject the upstream
// must see for it.
type loadTok struct{ tok, sub string }

// validTokens returns five distinct valid tokens of the keygate realm,
// signed by its RS256, ES256 and EdDSA keys: alice and bob (password
// grant) and three service accounts.
func validTokens(t testing.TB) []loadTok {
	t.Helper()
	toks := []string{mustPassword(t, "alice").AccessToken, mustPassword(t, "bob").AccessToken,
		mustClient(t, worker).AccessToken, mustClient(t, es256).AccessToken, mustClient(t, eddsa).AccessToken}
	out := make([]loadTok, len(toks))
	for i, tok := range toks {
		sub, _ := claimsOf(t, tok)["sub"].(string)
		out[i] = loadTok{tok, sub}
	}
	return out
}

// clusterLoad sends requests with valid tokens to every instance from a
// few goroutines, until stop, and counts the answers that are not the
// upstream's 200.
type clusterLoad struct {
	procs []*keygateProc
	toks  []loadTok

	sent, refused atomic.Int64
	perInstance   []atomic.Int64

	mu    sync.Mutex
	first []string // the first few refusals

	quit chan struct{}
	wg   sync.WaitGroup
}

// startClusterLoad starts workers goroutines, each sending toks to procs
// in turn, one request after another.
func startClusterLoad(procs []*keygateProc, toks []loadTok, workers int) *clusterLoad {
	l := &clusterLoad{procs: procs, toks: toks, perInstance: make([]atomic.Int64, len(procs)), quit: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			for n := w; ; n++ {
				select {
				case <-l.quit:
					return
				default:
				}
				i := n % len(procs)
				tk := toks[(n/len(procs))%len(toks)]
				a, err := procs[i].get(tk.tok)
				l.sent.Add(1)
				l.perInstance[i].Add(1)
				if err != nil || a.Status != http.StatusOK || a.Body != "upstream: "+tk.sub {
					l.refused.Add(1)
					l.mu.Lock()
					if len(l.first) < 5 {
						l.first = append(l.first, fmt.Sprintf("%s at %s, token %s: %v (%v)",
							procs[i].Name, time.Now().Format("15:04:05.000"), short(tk.tok), a, err))
					}
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// stop ends the load and waits for the workers. It may be called twice.
func (l *clusterLoad) stop() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

// refusals are the first refusals, for messages.
func (l *clusterLoad) refusals() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.first, "\n  ")
}

// outageYAML is the configuration of TestClusterRedisOutage: cluster
// mode and back-channel logout, the key set refreshed every 2 s (so that
// an outage of a few seconds spans several refreshes), and no
// verified-token cache, so that every request looks its key up.
func outageYAML(c keygateConfig) string {
	return strings.Replace(c.baseYAML(), "verify:\n", "verify:\n  cache_size: -1\n", 1) +
		"keys:\n  refresh_interval: 2s\n" + clusterYAML
}

// outageRefresh is keys.refresh_interval of outageYAML.
const outageRefresh = 2 * time.Second

// TestClusterRedisOutage is issue #10's fault test: three keygate
// instances in cluster mode, under continuous load of valid tokens (4
// goroutines, 5 distinct tokens, every instance), while their Redis is
// killed (SIGKILL) and, a few seconds later, restarted empty.
//
//   - No valid request is refused, before, during or after the outage.
//   - While Redis is down every instance counts shared-cache errors and
//     fetches the key set from Keycloak on its own (provider fetches grow
//     on each); once it is back, each goes through the shared cache again
//     (shared hits or lease wins grow, no shared error), and the cluster
//     makes at most one provider fetch per refresh interval again.
//   - A session deleted while Redis is down: Keycloak's back-channel
//     logout reaches instance 1, which refuses the token as soon as the
//     admin call has answered; instances 2 and 3 cannot know and still
//     accept it; after the restart, instance 1 sends the revocation it
//     kept, and all three refuse the token.
func TestClusterRedisOutage(t *testing.T) {
	r := redistest.Start(t)
	bin := buildKeygate(t)
	env := clusterEnv(t, r)
	yaml := func(_ int, c keygateConfig) string { return outageYAML(c) }
	checkConfig(t, bin, yaml(0, keygateConfig{Listen: "127.0.0.1:1", Admin: "127.0.0.1:2", Upstream: "http://127.0.0.1:3"}), env)
	procs := startKeygates(t, bin, 3, yaml, env)
	adminAPI.setBackchannelLogout(t, procs[0].URL+"/backchannel-logout", true)

	// The session logged out during the outage; its token is not in the
	// load, which must be accepted throughout.
	alice := adminAPI.user(t, "alice")
	victim := bclPassword(t, "alice")
	sid, _ := claimsOf(t, victim.AccessToken)["sid"].(string)
	if sid == "" {
		t.Fatal("alice's token has no sid")
	}
	mustAccept(t, procs, victim.AccessToken, alice.ID)

	load := startClusterLoad(procs, validTokens(t), 4)
	t.Cleanup(load.stop)
	phase := func(name string, since time.Time, sent0 int64) int64 {
		sent := load.sent.Load()
		t.Logf("%s: %d requests in %v, %d refused so far", name, sent-sent0, time.Since(since).Round(time.Millisecond), load.refused.Load())
		return sent
	}

	// Healthy: the instances share the key set.
	start := time.Now()
	waitInstances(t, procs, "the instances to share the key set (shared hits, Redis reachable)", func(_ int, st instanceStatus) bool {
		return st.Redis.Reachable && st.JWKS.Shared.Hits+st.JWKS.Shared.LeaseWins > 0
	})
	time.Sleep(2 * outageRefresh)
	healthy := statuses(t, procs)
	sent := phase("healthy", start, 0)

	// Outage.
	r.Kill()
	down := time.Now()
	waitInstances(t, procs, "every instance to fetch keys on its own twice while Redis is down", func(i int, st instanceStatus) bool {
		s, b := st.JWKS.Shared, healthy[i].JWKS.Shared
		return !st.Redis.Reachable && st.Ready && s.Errors > b.Errors && s.ProviderFetches >= b.ProviderFetches+2
	})
	fellBack := statuses(t, procs)
	t.Logf("Redis down for %v: %s", time.Since(down).Round(time.Millisecond), describe(procs, fellBack))

	t0 := time.Now()
	adminAPI.deleteSession(t, sid)
	t.Logf("session deleted while Redis is down; the admin call answered in %v", time.Since(t0).Round(time.Millisecond))
	if a, err := procs[0].get(victim.AccessToken); err != nil || !a.revoked() {
		t.Errorf("%s, which received the logout, right after the admin call answered: %v (%v), want 401 token revoked",
			procs[0].Name, a, err)
	}
	for _, p := range procs[1:] {
		// Nothing but Redis carries the revocation to them.
		if a, err := p.get(victim.AccessToken); err != nil || a.Status != http.StatusOK {
			t.Errorf("%s while Redis is down: %v (%v), want 200: it cannot have learnt of the logout", p.Name, a, err)
		}
	}
	time.Sleep(outageRefresh) // more load with Redis down
	sent = phase("Redis down", down, sent)

	// Back.
	r.Restart()
	up := time.Now()
	refusedAfter := make([]time.Duration, len(procs))
	for i, p := range procs {
		if !poll(60*time.Second, func() bool {
			a, err := p.get(victim.AccessToken)
			if err == nil && a.revoked() {
				refusedAfter[i] = time.Since(up)
				return true
			}
			if err != nil || a.Status != http.StatusOK {
				t.Fatalf("%s after the restart: %v (%v), want 200 or 401 token revoked", p.Name, a, err)
			}
			return false
		}) {
			t.Fatalf("%s still accepts the token of the session deleted during the outage 60 s after Redis came back", p.Name)
		}
	}
	for i, d := range refusedAfter {
		t.Logf("%s refuses the token of the outage's logout %v after Redis was restarted", procs[i].Name, d.Round(time.Millisecond))
	}

	waitInstances(t, procs, "every instance to use the shared cache again", func(i int, st instanceStatus) bool {
		s, b := st.JWKS.Shared, fellBack[i].JWKS.Shared
		return st.Redis.Reachable && s.LastError == "" && s.Hits+s.LeaseWins > b.Hits+b.LeaseWins
	})
	// A window of a few refresh intervals: the cluster fetches at most
	// once per interval again (the refresh lease lasts one interval), and
	// the window need not align with the intervals: +2.
	back := statuses(t, procs)
	w0 := time.Now()
	time.Sleep(4 * outageRefresh)
	after := statuses(t, procs)
	window := time.Since(w0)
	var fetches uint64
	for i := range procs {
		fetches += after[i].JWKS.Shared.ProviderFetches - back[i].JWKS.Shared.ProviderFetches
		if e := after[i].JWKS.Shared.Errors - back[i].JWKS.Shared.Errors; e != 0 {
			// A Redis call slower than cluster.redis.timeout on this busy
			// machine: that call fell back, which the limit's slack covers.
			t.Logf("%s: %d shared-cache errors with Redis back", procs[i].Name, e)
		}
	}
	limit := uint64(window/outageRefresh) + 2
	t.Logf("Redis back: %d provider fetches by the cluster in %v (limit %d; %d instances fetching alone would make ~%d): %s",
		fetches, window.Round(time.Millisecond), limit, len(procs), len(procs)*int(window/outageRefresh), describe(procs, after))
	if fetches > limit {
		t.Errorf("with Redis back, the cluster made %d provider fetches in %v; want at most %d (one per refresh interval)",
			fetches, window, limit)
	}
	phase("Redis back", up, sent)

	load.stop()
	for i, p := range procs {
		t.Logf("%s: %d requests", p.Name, load.perInstance[i].Load())
	}
	t.Logf("Redis outage under load: %d valid requests, %d refused", load.sent.Load(), load.refused.Load())
	if n := load.refused.Load(); n != 0 {
		t.Errorf("%d valid requests refused; first:\n  %s", n, load.refusals())
	}
	if load.sent.Load() == 0 {
		t.Error("the load sent nothing")
	}
	// The same story in the metrics: the fallback fetches show in
	// keygate_jwks_provider_fetches_total and the outage in
	// keygate_jwks_shared_errors_total.
	for i, p := range procs {
		m := p.metrics(t)
		if m["keygate_jwks_provider_fetches_total"] < float64(fellBack[i].JWKS.Shared.ProviderFetches) ||
			m["keygate_jwks_shared_errors_total"] < float64(fellBack[i].JWKS.Shared.Errors) {
			t.Errorf("%s /metrics: provider fetches %v, shared errors %v; /readyz said %d and %d during the outage",
				p.Name, m["keygate_jwks_provider_fetches_total"], m["keygate_jwks_shared_errors_total"],
				fellBack[i].JWKS.Shared.ProviderFetches, fellBack[i].JWKS.Shared.Errors)
		}
	}
}

// TestClusterKidFlood: three keygate instances in cluster mode with
// keys.min_refetch_interval 1s, flooded for 5 s with tokens whose kids
// no key has (two goroutines per instance), fetch Keycloak's JWKS at most
// once per second for the whole cluster (counted by a proxy in front of
// Keycloak): the kid lease in Redis lasts min_refetch_interval. +2: the
// flood's start and end need not align with the lease windows. Each
// instance alone would be allowed one fetch per second.
func TestClusterKidFlood(t *testing.T) {
	const minRefetch, d = time.Second, 5 * time.Second
	bin := buildKeygate(t)
	f := startFleet(t, bin, 3, time.Hour, minRefetch, true)
	valid := mustClient(t, worker).AccessToken
	fl := kidFlood(t, f, valid, 2, d)
	limit := int64(fl.elapsed/minRefetch) + 2
	t.Logf("kid flood: %d requests (answers %v), %d provider JWKS fetches in %v (limit %d; the instances' metrics say %.0f)",
		fl.sent, fl.answers, fl.fetches, fl.elapsed.Round(time.Millisecond), limit, fl.metric)
	if fl.fetches > limit {
		t.Errorf("provider JWKS fetches during the flood = %d in %v; want at most %d", fl.fetches, fl.elapsed, limit)
	}
	if float64(fl.fetches) != fl.metric {
		t.Errorf("the proxy counted %d provider fetches, the instances' keygate_jwks_provider_fetches_total %v", fl.fetches, fl.metric)
	}
	if fl.answers[http.StatusUnauthorized] != int(fl.sent) {
		t.Errorf("answers to tokens with unknown kids: %v; want 401 to all %d", fl.answers, fl.sent)
	}
	mustAccept(t, f.procs, valid, claimsOf(t, valid)["sub"].(string))
}
