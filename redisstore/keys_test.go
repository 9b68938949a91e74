package redisstore_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/redistest"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
	"github.com/keygate/keygate/redisstore"
)

var secret = []byte("cluster-secret-cluster-secret-32")

func newKeysClient(t *testing.T, srv *redistest.Server) redis.UniversalClient {
	t.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{srv.Addr}, Password: srv.Password,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds; the deadline only guards against a
// hang and is not a measurement.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// instances starts n sources, each with its own Redis client as separate
// processes would have, sharing srv and idp.
func instances(t *testing.T, n int, srv *redistest.Server, idp *keycloaktest.Server, mod func(*jwks.Config)) []*jwks.Source {
	t.Helper()
	var srcs []*jwks.Source
	for range n {
		cfg := jwks.Config{
			Issuer:        idp.Issuer(),
			HTTPClient:    &http.Client{Timeout: 5 * time.Second},
			Shared:        redisstore.NewKeys(newKeysClient(t, srv), "test:", 200*time.Millisecond),
			SharedSecret:  secret,
			SharedTimeout: 300 * time.Millisecond,
		}
		if mod != nil {
			mod(&cfg)
		}
		s, err := jwks.NewSource(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		srcs = append(srcs, s)
	}
	for _, s := range srcs {
		s.Start()
	}
	for i, s := range srcs {
		select {
		case <-s.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("source %d not ready: %+v", i, s.Status())
		}
	}
	return srcs
}

func sum(srcs []*jwks.Source, f func(jwks.Status) uint64) uint64 {
	var n uint64
	for _, s := range srcs {
		n += f(s.Status())
	}
	return n
}

func TestKeys(t *testing.T) {
	srv := redistest.Start(t)
	k := redisstore.NewKeys(newKeysClient(t, srv), "p:", 0)
	ctx := context.Background()

	got := make(chan string, 10)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- k.Subscribe(sctx, func(name string) { got <- name }) }()
	if name := <-got; name != "" {
		t.Fatalf("first call of changed = %q; want \"\" for the subscription", name)
	}

	if b, err := k.Get(ctx, "e"); b != nil || err != nil {
		t.Errorf("Get(absent) = %q, %v; want nil, nil", b, err)
	}
	if err := k.Set(ctx, "e", []byte("entry\x00bytes"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if b, err := k.Get(ctx, "e"); string(b) != "entry\x00bytes" || err != nil {
		t.Errorf("Get() = %q, %v; want the entry", b, err)
	}
	for i, want := range []bool{true, false} {
		if ok, err := k.TryLease(ctx, "lease", time.Minute); ok != want || err != nil {
			t.Errorf("TryLease() #%d = %v, %v; want %v", i+1, ok, err, want)
		}
	}
	if err := k.Publish(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if name := <-got; name != "e" {
		t.Errorf("changed(%q); want \"e\"", name)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe() = %v; want context.Canceled", err)
	}
}

// N instances with a short refresh interval: at most one provider fetch
// per interval for the cluster, where each would fetch once per interval
// on its own.
func TestClusterOneFetchPerInterval(t *testing.T) {
	const n, interval = 4, time.Second
	srv := redistest.Start(t)
	idp := keycloaktest.New(t, keycloaktest.Config{})
	start := time.Now()
	srcs := instances(t, n, srv, idp, func(c *jwks.Config) { c.RefreshInterval = interval })
	waitFor(t, "every instance to install a shared copy after a refresh", func() bool {
		for _, s := range srcs {
			if s.Status().SharedHits < 3 {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	fetches := idp.Requests(keycloaktest.EndpointCerts)
	limit := int(elapsed/interval) + 2
	t.Logf("%d provider fetches in %v for %d instances (limit %d; %d without sharing)", fetches, elapsed, n, limit, n*int(elapsed/interval))
	if fetches > limit {
		t.Errorf("provider JWKS requests = %d in %v; want at most %d", fetches, elapsed, limit)
	}
	if got := sum(srcs, func(s jwks.Status) uint64 { return s.ProviderFetches }); got != uint64(fetches) {
		t.Errorf("sum of ProviderFetches = %d; want %d", got, fetches)
	}
}

// A flood of random kids over every instance costs at most one provider
// fetch per MinRefetchInterval for the cluster; a key the provider
// publishes reaches every instance through one fetch.
func TestClusterKidFlood(t *testing.T) {
	const n, minRefetch = 4, 500 * time.Millisecond
	srv := redistest.Start(t)
	idp := keycloaktest.New(t, keycloaktest.Config{})
	srcs := instances(t, n, srv, idp, func(c *jwks.Config) { c.RefreshInterval = time.Hour; c.MinRefetchInterval = minRefetch })

	before := idp.Requests(keycloaktest.EndpointCerts)
	start := time.Now()
	var wg sync.WaitGroup
	var served atomic.Int64
	for i, s := range srcs {
		for g := range 4 {
			wg.Go(func() {
				for j := 0; time.Since(start) < 3*time.Second; j++ {
					_, err := s.Key(context.Background(), fmt.Sprintf("random-%d-%d-%d", i, g, j))
					if !errors.Is(err, jwks.ErrUnknownKey) {
						t.Errorf("Key(random kid) = %v; want ErrUnknownKey; status %+v", err, s.Status())
						return
					}
					served.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	flood := idp.Requests(keycloaktest.EndpointCerts) - before
	limit := int(elapsed/minRefetch) + 2 // windows need not align with the start
	t.Logf("%d answers, %d provider fetches in %v (limit %d)", served.Load(), flood, elapsed, limit)
	if flood > limit {
		t.Errorf("provider JWKS requests during the flood = %d in %v; want at most %d", flood, elapsed, limit)
	}

	kid, err := idp.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(minRefetch + 100*time.Millisecond) // let the flood's last kid lease end
	before = idp.Requests(keycloaktest.EndpointCerts)
	if _, err := srcs[0].Key(context.Background(), kid); err != nil {
		t.Fatalf("Key(new kid) = %v", err)
	}
	for i, s := range srcs {
		waitFor(t, fmt.Sprintf("instance %d to learn the new key", i), func() bool {
			_, ok := s.Keys().Lookup(kid)
			return ok
		})
	}
	if got := idp.Requests(keycloaktest.EndpointCerts) - before; got != 1 {
		t.Errorf("provider JWKS requests for the new key = %d; want 1", got)
	}
}

// entryKey returns the Redis key of the shared entry.
func entryKey(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	var keys []string
	waitFor(t, "the shared entry", func() bool {
		all, err := c.Keys(context.Background(), "test:jwks:*").Result()
		keys = keys[:0]
		for _, k := range all {
			if !strings.Contains(k[len("test:"):], ":") || strings.Count(k, ":") == 2 {
				keys = append(keys, k)
			}
		}
		return err == nil && len(keys) == 1
	})
	return keys[0]
}

// A document altered in Redis is ignored and counted by every instance,
// and keys are still served.
func TestClusterTampered(t *testing.T) {
	const n = 3
	srv := redistest.Start(t)
	idp := keycloaktest.New(t, keycloaktest.Config{})
	srcs := instances(t, n, srv, idp, func(c *jwks.Config) { c.RefreshInterval = time.Hour })
	c := newKeysClient(t, srv)
	key := entryKey(t, c)
	ctx := context.Background()
	b, err := c.Get(ctx, key).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// Put the attacker's document in, keeping the MAC: the entry is
	// "kgjwks1.", 32 bytes of HMAC, then JSON with the document in "doc".
	const head = len("kgjwks1.") + 32
	var payload map[string]any
	if err := json.Unmarshal(b[head:], &payload); err != nil {
		t.Fatalf("entry layout changed: %v", err)
	}
	evil, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	payload["doc"] = fmt.Appendf(nil, `{"keys":[{"kty":"RSA","kid":"evil","alg":"RS256","use":"sig","n":%q,"e":"AQAB"}]}`,
		base64.RawURLEncoding.EncodeToString(evil.N.Bytes()))
	p, _ := json.Marshal(payload)
	forged := append(b[:head:head], p...)
	if err := c.Set(ctx, key, forged, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "test:keys:changed", strings.TrimPrefix(key, "test:")).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every instance to reject the altered entry", func() bool {
		for _, s := range srcs {
			if s.Status().SharedAuthFailures == 0 {
				return false
			}
		}
		return true
	})
	for i, s := range srcs {
		if _, err := s.Key(ctx, idp.ActiveKeyID("RS256")); err != nil {
			t.Errorf("instance %d: Key() = %v", i, err)
		}
		if _, ok := s.Keys().Lookup("evil"); ok {
			t.Errorf("instance %d holds the planted key", i)
		}
	}
}

// Redis killed during use: keys are still served, every instance fetches
// on its own; after a restart they go back to the shared copy.
func TestClusterRedisRestart(t *testing.T) {
	const n, interval = 3, 500 * time.Millisecond
	srv := redistest.Start(t)
	idp := keycloaktest.New(t, keycloaktest.Config{})
	srcs := instances(t, n, srv, idp, func(c *jwks.Config) { c.RefreshInterval = interval })
	kid := idp.ActiveKeyID("RS256")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refused atomic.Int64
	for _, s := range srcs {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Key(context.Background(), kid); err != nil {
					refused.Add(1)
					t.Errorf("Key() = %v", err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	before := make([]jwks.Status, n)
	for i, s := range srcs {
		before[i] = s.Status()
	}
	srv.Kill()
	for i, s := range srcs {
		waitFor(t, fmt.Sprintf("instance %d to fetch on its own", i), func() bool {
			st := s.Status()
			return st.ProviderFetches > before[i].ProviderFetches+1 && st.SharedError != nil
		})
	}

	srv.Restart()
	for i, s := range srcs {
		before[i] = s.Status()
	}
	for i, s := range srcs {
		waitFor(t, fmt.Sprintf("instance %d to install a shared copy again", i), func() bool {
			st := s.Status()
			return st.SharedHits > before[i].SharedHits+1 && st.SharedError == nil
		})
	}
	if refused.Load() != 0 {
		t.Errorf("%d valid requests refused", refused.Load())
	}
}
