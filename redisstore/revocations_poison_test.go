package redisstore_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/redistest"
	"github.com/keygate/keygate/redisstore"
	"github.com/keygate/keygate/revoke"
)

// TestRevocationsPoisonedRecord: a record in the hash that is not one of
// ours (garbage written by a Redis writer, or by another version) must not
// stop revocations of the same value from reaching Redis, nor stop the
// instance from reading the set on its next resync.
func TestRevocationsPoisonedRecord(t *testing.T) {
	ctx := context.Background()
	for _, rec := range []string{"not json", `{}`, `{"k":"sub","v":"victim"}`, `[]`, `{"ib":"x","exp":{},"at":null}`} {
		t.Run(rec, func(t *testing.T) {
			srv := redistest.Start(t)
			c := newClient(t, srv)
			hash := redisstore.DefaultPrefix + "{revocations}"
			if err := c.HSet(ctx, hash, "sub:victim", rec).Err(); err != nil {
				t.Fatal(err)
			}
			a := startRevocations(t, srv, redisstore.RevocationsOptions{})
			if err := a.Revoke(ctx, revoke.Revocation{Kind: revoke.Subject, Value: "victim"}); err != nil {
				t.Errorf("Revoke over a poisoned record = %v; want it recorded in Redis", err)
			}
			// Another instance, started later, learns it from Redis.
			b := startRevocations(t, srv, redisstore.RevocationsOptions{})
			if !b.Revoked(&keygate.Principal{Subject: "victim", IssuedAt: time.Now().Add(-time.Minute)}) {
				t.Errorf("a later instance does not hold the revocation made over a poisoned record")
			}
			// A pending revocation that cannot be written must not stop a
			// resync from reading the set.
			if err := c.HSet(ctx, hash, "sid:other", `{"k":"sid","v":"other","ib":0,"at":1,"exp":`+
				strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)+`,"src":"x","o":"y"}`).Err(); err != nil {
				t.Fatal(err)
			}
			if err := a.Resync(ctx); err != nil {
				t.Errorf("Resync = %v; want the set read", err)
			}
			if !a.Revoked(&keygate.Principal{SessionID: "other"}) {
				t.Errorf("resync did not read the set")
			}
		})
	}
}

// TestRevocationsResyncPastRefusedPending: a pending revocation that
// Redis refuses (here the expiry index is not a sorted set) does not stop
// a resync from reading the revocations of the other instances.
func TestRevocationsResyncPastRefusedPending(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClient(t, srv)
	a := startRevocations(t, srv, redisstore.RevocationsOptions{})
	expiry := redisstore.DefaultPrefix + "{revocations}:expiry"
	if err := c.Set(ctx, expiry, "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: "refused"}); err == nil {
		t.Fatal("Revoke succeeded with the expiry index broken; the test needs a refused write")
	}
	if err := c.HSet(ctx, redisstore.DefaultPrefix+"{revocations}", "sid:other", `{"k":"sid","v":"other","ib":0,"at":1,"exp":`+
		strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)+`,"src":"x","o":"y"}`).Err(); err != nil {
		t.Fatal(err)
	}
	a.Resync(ctx)
	if !a.Revoked(&keygate.Principal{SessionID: "other"}) {
		t.Errorf("a resync with a refused pending revocation did not read the set")
	}
	if !a.Revoked(&keygate.Principal{SessionID: "refused"}) {
		t.Errorf("the refused revocation is not held locally")
	}
}

// TestRevocationsResyncSkipsHugeRecord: a huge value planted in the
// revocation hash is not carried to the instance at every resync: the
// size check applies in Redis, before the reply is sent.
func TestRevocationsResyncSkipsHugeRecord(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClient(t, srv)
	const huge = 32 << 20
	hash := redisstore.DefaultPrefix + "{revocations}"
	if err := c.HSet(ctx, hash, "sid:huge", strings.Repeat("x", huge)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, hash, "sid:other", `{"k":"sid","v":"other","ib":0,"at":1,"exp":`+
		strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)+`,"src":"x","o":"y"}`).Err(); err != nil {
		t.Fatal(err)
	}
	r := redisstore.NewRevocations(redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password,
		ReadTimeout: 10 * time.Second}), redisstore.RevocationsOptions{Timeout: 10 * time.Second})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > huge/2 {
		t.Errorf("Resync allocated %d bytes with a %d-byte record in the hash; want it refused in Redis", got, huge)
	}
	if !r.Revoked(&keygate.Principal{SessionID: "other"}) || r.Revoked(&keygate.Principal{SessionID: "huge"}) {
		t.Errorf("Resync did not read the good record only")
	}
}
