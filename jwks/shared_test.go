package jwks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// memCache is a jwks.SharedCache in memory, with leases on a test clock.
// down makes every call fail; slow makes every call wait for its context.
type memCache struct {
	now        func() time.Time
	down, slow atomic.Bool
	held       atomic.Bool // every lease is someone else's, for ever
	leaseCalls atomic.Int32

	mu      sync.Mutex
	entries map[string][]byte
	leases  map[string]time.Time // name → end
	subs    map[int]func(string)
	nextSub int
}

func newMemCache(now func() time.Time) *memCache {
	return &memCache{now: now, entries: map[string][]byte{}, leases: map[string]time.Time{}, subs: map[int]func(string){}}
}

var errDown = errors.New("memcache: down")

func (c *memCache) fail(ctx context.Context) error {
	if c.slow.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if c.down.Load() {
		return errDown
	}
	return nil
}

func (c *memCache) Get(ctx context.Context, name string) ([]byte, error) {
	if err := c.fail(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[name], nil
}

func (c *memCache) Set(ctx context.Context, name string, entry []byte, _ time.Duration) error {
	if err := c.fail(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[name] = append([]byte(nil), entry...)
	return nil
}

func (c *memCache) TryLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	c.leaseCalls.Add(1)
	if err := c.fail(ctx); err != nil {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if end, ok := c.leases[name]; ok && c.now().Before(end) || c.held.Load() {
		return false, nil
	}
	c.leases[name] = c.now().Add(ttl)
	return true, nil
}

func (c *memCache) Publish(ctx context.Context, name string) error {
	if err := c.fail(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fn := range c.subs {
		fn(name)
	}
	return nil
}

func (c *memCache) Subscribe(ctx context.Context, changed func(string)) error {
	if err := c.fail(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = changed
	c.mu.Unlock()
	changed("")
	<-ctx.Done()
	c.mu.Lock()
	delete(c.subs, id)
	c.mu.Unlock()
	return ctx.Err()
}

// entry returns the only entry's name and bytes, once there is one: a
// source is ready before it has stored what it fetched.
func (c *memCache) entry(t *testing.T) (string, []byte) {
	t.Helper()
	waitFor(t, "an entry in the store", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.entries) > 0
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) != 1 {
		t.Fatalf("store holds %d entries; want 1", len(c.entries))
	}
	for name, b := range c.entries {
		return name, append([]byte(nil), b...)
	}
	panic("unreachable")
}

func (c *memCache) put(name string, b []byte) {
	c.mu.Lock()
	c.entries[name] = b
	c.mu.Unlock()
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// cluster starts n sources sharing store, with a RefreshInterval long
// enough that only the test's calls refresh.
func cluster(t *testing.T, n int, idp *keycloaktest.Server, store jwks.SharedCache, clk *clock, mod func(*jwks.Config)) []*jwks.Source {
	t.Helper()
	var srcs []*jwks.Source
	for range n {
		cfg := jwks.Config{
			Issuer: idp.Issuer(), Now: clk.Now, Shared: store, SharedSecret: testSecret,
			RefreshInterval: time.Hour, MinRefetchInterval: 10 * time.Second, MaxStale: 24 * time.Hour,
		}
		if mod != nil {
			mod(&cfg)
		}
		srcs = append(srcs, newSource(t, cfg))
	}
	for _, s := range srcs {
		s.Start()
	}
	for _, s := range srcs {
		waitReady(t, s)
	}
	return srcs
}

func total(srcs []*jwks.Source, f func(jwks.Status) uint64) uint64 {
	var n uint64
	for _, s := range srcs {
		n += f(s.Status())
	}
	return n
}

func hasKid(s *jwks.Source, kid string) bool {
	_, ok := s.Keys().Lookup(kid)
	return ok
}

func TestSharedConfig(t *testing.T) {
	store := newMemCache(time.Now)
	tests := []struct {
		name  string
		cfg   jwks.Config
		field string
	}{
		{"no secret", jwks.Config{URL: "https://idp.example/certs", Shared: store}, "SharedSecret"},
		{"short secret", jwks.Config{URL: "https://idp.example/certs", Shared: store, SharedSecret: testSecret[:31]}, "SharedSecret"},
		{"negative timeout", jwks.Config{URL: "https://idp.example/certs", Shared: store, SharedSecret: testSecret, SharedTimeout: -1}, "SharedTimeout"},
		{"secret without store", jwks.Config{URL: "https://idp.example/certs", SharedSecret: []byte("x")}, ""},
		{"ok", jwks.Config{URL: "https://idp.example/certs", Shared: store, SharedSecret: testSecret}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := jwks.NewSource(tt.cfg)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("NewSource() = %v; want nil", err)
				}
				s.Close()
				return
			}
			var ce *jwks.ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field {
				t.Fatalf("NewSource() = %v; want *ConfigError for %s", err, tt.field)
			}
		})
	}
}

// One provider fetch per RefreshInterval for the cluster: the others
// install the shared copy, at start and at each refresh.
func TestSharedOneFetchPerInterval(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	store := newMemCache(clk.Now)
	srcs := cluster(t, 3, idp, store, clk, nil)

	if n := idp.Requests(keycloaktest.EndpointCerts); n != 1 {
		t.Errorf("provider JWKS requests after start = %d; want 1", n)
	}
	if n := idp.Requests(keycloaktest.EndpointDiscovery); n != 1 {
		t.Errorf("discovery requests after start = %d; want 1 (readers take the URL from the store)", n)
	}
	if w, h := total(srcs, func(s jwks.Status) uint64 { return s.LeaseWins }), total(srcs, func(s jwks.Status) uint64 { return s.SharedHits }); w != 1 || h != 2 {
		t.Errorf("lease wins %d, shared hits %d; want 1 and 2", w, h)
	}
	for i, s := range srcs {
		if st := s.Status(); st.URL != idp.JWKSURL() {
			t.Errorf("source %d: Status().URL = %q; want %q", i, st.URL, idp.JWKSURL())
		}
	}
	for round := 2; round <= 4; round++ {
		clk.Advance(30 * time.Minute) // fresh: nobody fetches
		for _, s := range srcs {
			if err := s.Refresh(context.Background()); err != nil {
				t.Fatalf("Refresh() = %v", err)
			}
		}
		clk.Advance(31 * time.Minute) // stale: one fetches for all
		for _, s := range srcs {
			if err := s.Refresh(context.Background()); err != nil {
				t.Fatalf("Refresh() = %v", err)
			}
		}
		if n := idp.Requests(keycloaktest.EndpointCerts); n != round {
			t.Errorf("provider JWKS requests after %d intervals = %d; want %d", round, n, round)
		}
	}
	if n := total(srcs, func(s jwks.Status) uint64 { return s.ProviderFetches }); n != 4 {
		t.Errorf("sum of ProviderFetches = %d; want 4", n)
	}
}

// A new kid: one provider fetch for the cluster, and every instance learns
// the key from the broadcast. A flood of random kids over every instance
// costs at most one provider fetch per MinRefetchInterval.
func TestSharedKidRefetch(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	store := newMemCache(clk.Now)
	srcs := cluster(t, 3, idp, store, clk, nil)

	kid, err := idp.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * time.Second)
	if _, err := srcs[0].Key(context.Background(), kid); err != nil {
		t.Fatalf("Key(new kid) = %v", err)
	}
	for i, s := range srcs {
		waitFor(t, fmt.Sprintf("source %d to learn the new key", i), func() bool { return hasKid(s, kid) })
	}
	if n := idp.Requests(keycloaktest.EndpointCerts); n != 2 {
		t.Errorf("provider JWKS requests = %d; want 2 (start, new kid)", n)
	}

	for window := 1; window <= 3; window++ {
		var wg sync.WaitGroup
		for i, s := range srcs {
			for j := range 20 {
				wg.Go(func() {
					_, err := s.Key(context.Background(), fmt.Sprintf("random-%d-%d-%d", window, i, j))
					if !errors.Is(err, jwks.ErrUnknownKey) {
						t.Errorf("Key(random kid) = %v; want ErrUnknownKey", err)
					}
				})
			}
		}
		wg.Wait()
		if n := idp.Requests(keycloaktest.EndpointCerts); n > 2+window {
			t.Errorf("provider JWKS requests after %d flood windows = %d; want at most %d", window, n, 2+window)
		}
		clk.Advance(11 * time.Second)
	}
	// The new key is still served everywhere.
	for i, s := range srcs {
		if _, err := s.Key(context.Background(), kid); err != nil {
			t.Errorf("source %d: Key(new kid) = %v", i, err)
		}
	}
}

// An entry not sealed with the secret, altered, or sealed for another
// issuer is ignored, logged without its content, and counted; the source
// fetches from the provider instead and repairs the store.
func TestSharedTampered(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	store := newMemCache(clk.Now)
	writer := cluster(t, 1, idp, store, clk, nil)[0]
	name, good := store.entry(t)

	// The same secret, another issuer: a valid seal, for another source.
	other := keycloaktest.New(t, keycloaktest.Config{Realm: "other"})
	otherStore := newMemCache(clk.Now)
	cluster(t, 1, other, otherStore, clk, nil)
	_, foreign := otherStore.entry(t)

	// Another secret: what a writer to the store without it can make.
	forgerStore := newMemCache(clk.Now)
	cluster(t, 1, idp, forgerStore, clk, func(c *jwks.Config) { c.SharedSecret = []byte(strings.Repeat("f", 32)) })
	_, forged := forgerStore.entry(t)

	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1

	tests := []struct {
		name  string
		entry []byte
	}{
		{"flipped bit", flipped},
		{"another secret", forged},
		{"another issuer", foreign},
		{"garbage", []byte("{\"keys\":[]} SECRET-DOC-CONTENT")},
		{"empty", []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(2 * time.Hour) // nothing held is fresh any more
			store.put(name, tt.entry)
			var warned atomic.Bool
			logger := slog.New(funcHandler{func(r slog.Record) {
				text := recordText(r)
				if r.Level == slog.LevelWarn && strings.Contains(text, "jwks shared key set ignored") {
					warned.Store(true)
				}
				if strings.Contains(text, "SECRET-DOC-CONTENT") || strings.Contains(text, `"kty"`) {
					t.Errorf("log record holds the entry's content: %s", text)
				}
			}})
			before := idp.Requests(keycloaktest.EndpointCerts)
			s := cluster(t, 1, idp, store, clk, func(c *jwks.Config) { c.Logger = logger })[0]
			st := s.Status()
			if st.SharedAuthFailures == 0 || st.SharedHits != 0 || !warned.Load() {
				t.Errorf("auth failures %d, shared hits %d, warned %v; want ≥ 1, 0, true", st.SharedAuthFailures, st.SharedHits, warned.Load())
			}
			if n := idp.Requests(keycloaktest.EndpointCerts); n != before+1 {
				t.Errorf("provider JWKS requests = %d; want %d", n, before+1)
			}
			if _, err := s.Key(context.Background(), idp.ActiveKeyID("RS256")); err != nil {
				t.Errorf("Key() = %v", err)
			}
			waitFor(t, "the bad entry to be replaced by the fetch", func() bool {
				_, b := store.entry(t)
				return string(b) != string(tt.entry)
			})
		})
	}
	_ = writer
}

// An older sealed entry put back into the store (a replay) is not
// installed over a newer set.
func TestSharedReplay(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	store := newMemCache(clk.Now)
	srcs := cluster(t, 2, idp, store, clk, nil)
	name, old := store.entry(t)
	oldKid := idp.ActiveKeyID("RS256")

	newKid, err := idp.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	if err := idp.SetActiveKey(newKid); err != nil {
		t.Fatal(err)
	}
	idp.RemoveKey(oldKid)
	clk.Advance(61 * time.Minute)
	if err := srcs[0].Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "source 1 to install the rotated set", func() bool { return hasKid(srcs[1], newKid) })
	hits := srcs[1].Status().SharedHits

	store.put(name, old)
	if err := store.Publish(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second) // past the refresh lease srcs[0] took
	if err := srcs[1].Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hasKid(srcs[1], oldKid) || !hasKid(srcs[1], newKid) || srcs[1].Status().SharedHits != hits {
		t.Errorf("after replay: kids %v, shared hits %d → %d; want the rotated set kept", srcs[1].Status().KeyIDs, hits, srcs[1].Status().SharedHits)
	}
}

// With the store down or hanging, every source fetches on its own within
// SharedTimeout, and serves keys; once the store answers, they go back to
// the shared copy.
func TestSharedStoreDown(t *testing.T) {
	for _, mode := range []string{"down", "slow"} {
		t.Run(mode, func(t *testing.T) {
			idp := keycloaktest.New(t, keycloaktest.Config{})
			clk := newClock()
			store := newMemCache(clk.Now)
			if mode == "down" {
				store.down.Store(true)
			} else {
				store.slow.Store(true)
			}
			srcs := cluster(t, 3, idp, store, clk, func(c *jwks.Config) { c.SharedTimeout = 20 * time.Millisecond })
			if n := idp.Requests(keycloaktest.EndpointCerts); n != 3 {
				t.Errorf("provider JWKS requests with the store %s = %d; want 3, one each", mode, n)
			}
			kid := idp.ActiveKeyID("RS256")
			newKid, err := idp.AddKey("RS256")
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range srcs {
				st := s.Status()
				if st.SharedErrors == 0 || st.SharedError == nil {
					t.Errorf("source %d: SharedErrors %d, SharedError %v; want counted", i, st.SharedErrors, st.SharedError)
				}
				if _, err := s.Key(context.Background(), kid); err != nil {
					t.Errorf("source %d: Key() = %v", i, err)
				}
				if _, err := s.Key(context.Background(), newKid); err != nil {
					t.Errorf("source %d: Key(new kid) = %v; want fetched on its own", i, err)
				}
			}

			store.down.Store(false)
			store.slow.Store(false)
			clk.Advance(61 * time.Minute)
			for _, s := range srcs {
				if err := s.Refresh(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			before := idp.Requests(keycloaktest.EndpointCerts)
			clk.Advance(61 * time.Minute)
			for _, s := range srcs {
				if err := s.Refresh(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if n := idp.Requests(keycloaktest.EndpointCerts); n != before+1 {
				t.Errorf("provider JWKS requests in an interval after the store returned = %d; want 1", n-before)
			}
			for i, s := range srcs {
				if st := s.Status(); st.SharedError != nil {
					t.Errorf("source %d: SharedError = %v; want nil once the store answers", i, st.SharedError)
				}
			}
		})
	}
}

// A source that lost the refresh lease waits for the winner's entry, also
// through announcements that are not it (a subscription made again,
// another source's entry), and fetches nothing itself.
func TestSharedLoserWaits(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	// The winner, on a store of its own, makes the entry.
	winnerStore := newMemCache(clk.Now)
	cluster(t, 1, idp, winnerStore, clk, nil)
	name, entry := winnerStore.entry(t)

	store := newMemCache(clk.Now)
	if ok, _ := store.TryLease(context.Background(), name+":refresh", time.Hour); !ok {
		t.Fatal("TryLease() = false")
	}
	s := newSource(t, jwks.Config{Issuer: idp.Issuer(), Now: clk.Now, Shared: store, SharedSecret: testSecret, RefreshInterval: time.Hour})
	before := idp.Requests(keycloaktest.EndpointCerts)
	s.Start()
	waitFor(t, "the source to try the lease", func() bool { return store.leaseCalls.Load() >= 2 })
	for range 3 {
		store.Publish(context.Background(), "")
		store.Publish(context.Background(), "jwks:another")
		time.Sleep(10 * time.Millisecond)
	}
	store.put(name, entry)
	store.Publish(context.Background(), name)
	waitReady(t, s)
	st := s.Status()
	if st.Failures != 0 || st.ProviderFetches != 0 || st.SharedHits != 1 || idp.Requests(keycloaktest.EndpointCerts) != before {
		t.Errorf("status %+v; want the winner's entry installed, no failure, no provider fetch", st)
	}
}

// A writer to the store who holds every lease for ever cannot stop the
// sources from refreshing or from learning a new kid: after a bounded
// wait a source fetches on its own (and stores what it fetched, so a
// source that asks after it may install that copy instead: which one
// fetches depends on timing, so the provider's count is checked for the
// cluster, not per source).
func TestSharedLeaseHeldForever(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	clk := newClock()
	store := newMemCache(clk.Now)
	store.held.Store(true)
	srcs := cluster(t, 2, idp, store, clk, func(c *jwks.Config) {
		c.HTTPClient = &http.Client{Timeout: time.Second}
		c.SharedTimeout = 100 * time.Millisecond
	})
	kid, err := idp.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * time.Second)
	for i, s := range srcs {
		if _, err := s.Key(context.Background(), kid); err != nil {
			t.Errorf("source %d: Key(new kid) = %v", i, err)
		}
	}
	before := idp.Requests(keycloaktest.EndpointCerts)
	clk.Advance(2 * time.Hour)
	for i, s := range srcs {
		if err := s.Refresh(context.Background()); err != nil {
			t.Errorf("source %d: Refresh() = %v", i, err)
		}
	}
	if n := idp.Requests(keycloaktest.EndpointCerts); n == before {
		t.Error("no provider fetch for a stale copy while the lease is held")
	}
	for i, s := range srcs {
		if st := s.Status(); st.LeaseWins != 0 || st.Failures != 0 {
			t.Errorf("source %d: status %+v; want no lease, no failure", i, st)
		}
		if st := s.Status(); !hasKid(s, kid) || clk.Now().Sub(st.LastSuccess) > time.Minute {
			t.Errorf("source %d: status %+v; want the new kid and a key set from after the 2-hour jump", i, st)
		}
	}
	if n := total(srcs, func(st jwks.Status) uint64 { return st.ProviderFetches }); n == 0 {
		t.Error("no source fetched from the provider while every lease is held")
	}
}
