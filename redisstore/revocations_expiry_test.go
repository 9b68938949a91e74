package redisstore_test

import (
	"context"
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
