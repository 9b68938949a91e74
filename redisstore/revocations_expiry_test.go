package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/redistest"
	"github.com/keygate/keygate/redisstore"
	"github.com/keygate/keygate/revoke"
)

// TestRevocationsCapPlantedExpiry: a revocation in Redis whose expiry is
// years away (planted by a Redis writer, or sent by an instance with a far
// longer TTL) is kept by the replica no longer than its own TTL plus the
// clock-skew margin.
func TestRevocationsCapPlantedExpiry(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	writer := startRevocations(t, srv, redisstore.RevocationsOptions{Prefix: "cap:", TTL: 10 * 365 * 24 * time.Hour})
	if err := writer.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: "planted"}); err != nil {
		t.Fatal(err)
	}
	reader := startRevocations(t, srv, redisstore.RevocationsOptions{Prefix: "cap:", TTL: time.Hour})
	list, err := reader.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("reader holds %d revocations; want the planted one", len(list))
	}
	if limit := time.Now().Add(time.Hour + 2*time.Minute); list[0].Expires.After(limit) {
		t.Errorf("planted revocation expires %v; want no later than %v (TTL + skew margin)", list[0].Expires, limit)
	}
}

// TestRevocationsMergeTieInRedis: two revocations of one key with the same
// At keep the greater Source in Redis, whatever their order, as the
// replicas' revoke.List does, so that Redis and every replica agree.
func TestRevocationsMergeTieInRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	at := time.Now().Truncate(time.Millisecond)
	for i, order := range [][2]string{{"admin", "backchannel_logout"}, {"backchannel_logout", "admin"}} {
		prefix := fmt.Sprintf("tie%d:", i)
		r := startRevocations(t, srv, redisstore.RevocationsOptions{Prefix: prefix, TTL: time.Hour})
		for _, src := range order {
			if err := r.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: "s", At: at, Source: src}); err != nil {
				t.Fatal(err)
			}
		}
		rec, err := newClient(t, srv).HGet(ctx, prefix+"{revocations}", "sid:s").Result()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rec, `"src":"backchannel_logout"`) {
			t.Errorf("order %v: Redis holds %s; want the greater source, backchannel_logout", order, rec)
		}
	}
}
