package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/redistest"
	"github.com/keygate/keygate/redisstore"
	"github.com/keygate/keygate/revoke"
)

// newClient returns a client of srv with short timeouts, closed when the
// test ends.
func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	return c
}

// startRevocations starts a Revocations on its own client of srv, waits
// for its first resync, and closes it when the test ends.
func startRevocations(t testing.TB, srv *redistest.Server, opts redisstore.RevocationsOptions) *redisstore.Revocations {
	t.Helper()
	r := redisstore.NewRevocations(newClient(t, srv), opts)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	eventually(t, "first resync", func() bool { return r.Stats().Resyncs > 0 })
	return r
}

// eventually waits, with a generous deadline, until cond holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 30s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRevocationsPropagate(t *testing.T) {
	srv := redistest.Start(t)
	var applied atomic.Int64
	opts := redisstore.RevocationsOptions{OnApply: func(r revoke.Revocation, lag time.Duration) { applied.Add(1) }}
	insts := []*redisstore.Revocations{startRevocations(t, srv, opts), startRevocations(t, srv, opts), startRevocations(t, srv, opts)}
	ctx := context.Background()
	iat := time.Now().Add(-time.Minute)
	tests := []struct {
		from int
		rev  revoke.Revocation
		p    keygate.Principal
	}{
		{0, revoke.Revocation{Kind: revoke.Session, Value: "sid-1", Source: "backchannel_logout"}, keygate.Principal{SessionID: "sid-1", IssuedAt: iat}},
		{1, revoke.Revocation{Kind: revoke.Subject, Value: "user-1"}, keygate.Principal{Subject: "user-1", IssuedAt: iat}},
		{2, revoke.Revocation{Kind: revoke.Token, Value: "jti-1"}, keygate.Principal{JWTID: "jti-1", IssuedAt: iat}},
	}
	for _, tt := range tests {
		for i, in := range insts {
			if in.Revoked(&tt.p) {
				t.Fatalf("instance %d: %+v revoked before Revoke", i, tt.p)
			}
		}
		if err := insts[tt.from].Revoke(ctx, tt.rev); err != nil {
			t.Fatalf("Revoke(%+v) = %v", tt.rev, err)
		}
		if !insts[tt.from].Revoked(&tt.p) {
			t.Errorf("instance %d: not revoked on the instance that revoked, when Revoke returned", tt.from)
		}
		for i, in := range insts {
			eventually(t, fmt.Sprintf("instance %d to refuse %+v", i, tt.p), func() bool { return in.Revoked(&tt.p) })
		}
	}
	eventually(t, "OnApply for each revocation on the 2 other instances", func() bool { return applied.Load() == 6 })
	for i, in := range insts {
		st := in.Stats()
		if st.Received != 1 || st.Applied != 2 || st.Errors != 0 {
			t.Errorf("instance %d: Stats() = %+v; want 1 received, 2 applied, no errors", i, st)
		}
		got, err := in.List(ctx)
		if err != nil || len(got) != 3 {
			t.Errorf("instance %d: List() = %d entries, %v; want 3", i, len(got), err)
		}
	}
	// A principal issued after the subject's revocation is accepted.
	if insts[2].Revoked(&keygate.Principal{Subject: "user-1", IssuedAt: time.Now().Add(time.Minute)}) {
		t.Errorf("a token issued after the subject's revocation is refused")
	}

	// An instance started later reads the set from Redis.
	late := startRevocations(t, srv, redisstore.RevocationsOptions{})
	for _, tt := range tests {
		if !late.Revoked(&tt.p) {
			t.Errorf("instance started later: %+v not revoked after its first resync", tt.p)
		}
	}
}

// TestRevocationsRedisDown: with Redis gone, Revoke applies locally and
// says it did not reach the cluster; once Redis is back (empty), the
// revocation is sent again and reaches the other instance.
func TestRevocationsRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	a := startRevocations(t, srv, redisstore.RevocationsOptions{Timeout: time.Second})
	b := startRevocations(t, srv, redisstore.RevocationsOptions{Timeout: time.Second})
	ctx := context.Background()
	p := &keygate.Principal{SessionID: "during-outage"}

	srv.Kill()
	err := a.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: "during-outage"})
	if !errors.Is(err, redisstore.ErrNotReplicated) || !errors.Is(err, revoke.ErrNotShared) {
		t.Fatalf("Revoke() with Redis down = %v; want ErrNotReplicated", err)
	}
	if !a.Revoked(p) {
		t.Fatalf("not revoked locally after Revoke with Redis down")
	}
	if st := a.Stats(); st.Pending != 1 || st.Errors == 0 {
		t.Errorf("Stats() = %+v; want 1 pending and errors counted", st)
	}
	if first, err := a.FirstUse(ctx, "logout-1", time.Now().Add(time.Minute)); !first || !errors.Is(err, redisstore.ErrNotReplicated) {
		t.Errorf("FirstUse() with Redis down = %v, %v; want true, ErrNotReplicated", first, err)
	}
	if first, _ := a.FirstUse(ctx, "logout-1", time.Now().Add(time.Minute)); first {
		t.Errorf("FirstUse() replayed on the same instance with Redis down = true")
	}

	resyncs := b.Stats().Resyncs
	srv.Restart()
	eventually(t, "b to reconnect and resync", func() bool { return b.Stats().Resyncs > resyncs })
	eventually(t, "the outage's revocation to reach b", func() bool { return b.Revoked(p) })
	eventually(t, "a's pending queue to drain", func() bool { return a.Stats().Pending == 0 })
	// It is in Redis too: a new instance sees it.
	if c := startRevocations(t, srv, redisstore.RevocationsOptions{}); !c.Revoked(p) {
		t.Errorf("an instance started after the restart does not see the outage's revocation")
	}
}

// TestRevocationsResyncMissed: a revocation written to Redis without a
// message (as if made while this instance's subscription was down)
// arrives with the resync that follows a reconnect.
func TestRevocationsResyncMissed(t *testing.T) {
	srv := redistest.Start(t)
	r := startRevocations(t, srv, redisstore.RevocationsOptions{})
	ctx := context.Background()
	c := newClient(t, srv)
	exp := time.Now().Add(time.Hour).UnixMilli()
	rec := fmt.Sprintf(`{"k":"sid","v":"missed","ib":0,"at":%d,"exp":%d,"src":"admin","o":"elsewhere"}`, time.Now().UnixMilli(), exp)
	if err := c.HSet(ctx, redisstore.DefaultPrefix+"{revocations}", "sid:missed", rec).Err(); err != nil {
		t.Fatal(err)
	}
	p := &keygate.Principal{SessionID: "missed"}
	if r.Revoked(p) {
		t.Fatalf("revoked before any resync: the test does not test the resync")
	}
	resyncs := r.Stats().Resyncs
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a resync after the reconnect", func() bool { return r.Stats().Resyncs > resyncs })
	if !r.Revoked(p) {
		t.Errorf("the missed revocation is not held after the resync")
	}
}

func TestRevocationsFirstUse(t *testing.T) {
	srv := redistest.Start(t)
	a := startRevocations(t, srv, redisstore.RevocationsOptions{})
	b := startRevocations(t, srv, redisstore.RevocationsOptions{})
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	steps := []struct {
		in   *redisstore.Revocations
		name string
		jti  string
		want bool
	}{
		{a, "first on a", "j1", true},
		{b, "replayed to b", "j1", false},
		{a, "replayed to a", "j1", false},
		{b, "another on b", "j2", true},
		{a, "that one replayed to a", "j2", false},
	}
	for _, s := range steps {
		got, err := s.in.FirstUse(ctx, s.jti, until)
		if got != s.want || err != nil {
			t.Errorf("%s: FirstUse(%q) = %v, %v; want %v, nil", s.name, s.jti, got, err, s.want)
		}
	}
}

// clock is a settable clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func TestRevocationsExpiry(t *testing.T) {
	srv := redistest.Start(t)
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	a := startRevocations(t, srv, redisstore.RevocationsOptions{Now: c.Now, TTL: time.Hour})
	ctx := context.Background()
	if err := a.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: "old"}); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	if got, _ := a.List(ctx); len(got) != 0 {
		t.Errorf("List() after the TTL = %+v; want none", got)
	}
	// A resync on a new instance at the same time skips it.
	b := startRevocations(t, srv, redisstore.RevocationsOptions{Now: c.Now})
	if b.Revoked(&keygate.Principal{SessionID: "old"}) {
		t.Errorf("an expired revocation was applied by a resync")
	}
	// The next Revoke drops it from Redis.
	if err := a.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: "new"}); err != nil {
		t.Fatal(err)
	}
	fields, err := newClient(t, srv).HKeys(ctx, redisstore.DefaultPrefix+"{revocations}").Result()
	if err != nil || !slices.Equal(fields, []string{"sid:new"}) {
		t.Errorf("fields in Redis = %q, %v; want only sid:new", fields, err)
	}
}

// TestRevocationsBadRecords: what an attacker with write access to Redis
// (or a bug) puts there is ignored and counted, never a crash or a hang.
func TestRevocationsBadRecords(t *testing.T) {
	srv := redistest.Start(t)
	r := startRevocations(t, srv, redisstore.RevocationsOptions{})
	ctx := context.Background()
	c := newClient(t, srv)
	exp := time.Now().Add(time.Hour).UnixMilli()
	bad := []string{
		"not json",
		`{"k":"iss","v":"x","at":1,"exp":` + fmt.Sprint(exp) + `}`,
		`{"k":"sid","v":"","at":1,"exp":` + fmt.Sprint(exp) + `}`,
		`{"k":"sid","v":"` + string(make([]byte, 9000)) + `"}`,
	}
	for _, m := range bad {
		if err := c.Publish(ctx, redisstore.DefaultPrefix+"revocations", m).Err(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the bad messages to be counted", func() bool { return r.Stats().Errors >= uint64(len(bad)) })
	if got, _ := r.List(ctx); len(got) != 0 || r.Stats().Applied != 0 {
		t.Errorf("bad messages were applied: %+v", got)
	}
	// The subscriber still works.
	other := startRevocations(t, srv, redisstore.RevocationsOptions{})
	if err := other.Revoke(ctx, revoke.Revocation{Kind: revoke.Token, Value: "after"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a good message after bad ones", func() bool { return r.Revoked(&keygate.Principal{JWTID: "after"}) })
}

// TestRevocationsPropagation measures the time from the start of Revoke
// on one of 3 instances to the revocation applied on the other 2, over
// 200 revocations, and logs p50 and p99 (for BENCHMARKS.md). It asserts
// only that every revocation arrives.
func TestRevocationsPropagation(t *testing.T) {
	srv := redistest.Start(t)
	const n, size = 200, 3
	var (
		mu      sync.Mutex
		started = map[string]time.Time{}
		lags    []time.Duration
	)
	onApply := func(r revoke.Revocation, _ time.Duration) {
		now := time.Now()
		mu.Lock()
		lags = append(lags, now.Sub(started[r.Value]))
		mu.Unlock()
	}
	var insts []*redisstore.Revocations
	for range size {
		insts = append(insts, startRevocations(t, srv, redisstore.RevocationsOptions{OnApply: onApply}))
	}
	ctx := context.Background()
	for i := range n {
		v := fmt.Sprintf("session-%d", i)
		mu.Lock()
		started[v] = time.Now()
		mu.Unlock()
		if err := insts[i%size].Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every revocation applied on the other instances", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lags) == n*(size-1)
	})
	slices.Sort(lags)
	t.Logf("revoke → applied on another instance, %d samples: p50 %v, p99 %v, max %v",
		len(lags), lags[len(lags)/2], lags[len(lags)*99/100], lags[len(lags)-1])
}

// TestRevocationsMergeInRedis: a subject's revocation that arrives late
// with an older IssuedBefore does not lower the one in Redis.
func TestRevocationsMergeInRedis(t *testing.T) {
	srv := redistest.Start(t)
	a := startRevocations(t, srv, redisstore.RevocationsOptions{})
	ctx := context.Background()
	now := time.Now()
	for _, ib := range []time.Time{now, now.Add(-time.Hour)} {
		if err := a.Revoke(ctx, revoke.Revocation{Kind: revoke.Subject, Value: "u", IssuedBefore: ib, At: ib}); err != nil {
			t.Fatal(err)
		}
	}
	b := startRevocations(t, srv, redisstore.RevocationsOptions{})
	if !b.Revoked(&keygate.Principal{Subject: "u", IssuedAt: now.Add(-time.Minute)}) {
		t.Errorf("the later IssuedBefore was lowered in Redis by an older revocation")
	}
}
