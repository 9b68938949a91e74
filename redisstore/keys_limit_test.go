package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/redistest"
	"github.com/keygate/keygate/redisstore"
)

// TestKeysGetRefusesHugeEntry: an entry planted in Redis far larger than
// any sealed key set is refused by its length, not read into memory on
// every instance (a Redis writer could otherwise make each instance
// allocate hundreds of MB per announcement).
func TestKeysGetRefusesHugeEntry(t *testing.T) {
	srv := redistest.Start(t)
	c := newKeysClient(t, srv)
	ctx := context.Background()
	if err := c.SetRange(ctx, "test:jwks:x", redisstore.MaxEntrySize, "x").Err(); err != nil {
		t.Fatal(err)
	}
	k := redisstore.NewKeys(c, "test:", 5*time.Second)
	b, err := k.Get(ctx, "jwks:x")
	if err == nil {
		t.Fatalf("Get of a %d-byte entry = %d bytes, nil error; want an error", redisstore.MaxEntrySize+1, len(b))
	}
	// Entries within the limit, and missing ones, read as before.
	if err := c.Set(ctx, "test:jwks:y", "sealed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if b, err := k.Get(ctx, "jwks:y"); err != nil || string(b) != "sealed" {
		t.Errorf("Get(jwks:y) = %q, %v; want \"sealed\", nil", b, err)
	}
	if b, err := k.Get(ctx, "jwks:none"); err != nil || b != nil {
		t.Errorf("Get(jwks:none) = %q, %v; want nil, nil", b, err)
	}
}
