package redisstore_test

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/redisstore"
	"github.com/keygate/keygate/revoke"
)

// Every instance of a cluster shares revocations through Redis; each
// answers Revoked from its own replica.
func ExampleRevocations() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"redis:6379"}})
	defer client.Close()
	revs := redisstore.NewRevocations(client, redisstore.RevocationsOptions{
		Prefix: "keygate:orders:",
		TTL:    time.Hour, // the longest access token lifetime
		Logger: slog.Default(),
	})
	if err := revs.Start(); err != nil {
		panic(err)
	}
	defer revs.Close()

	v, err := keygate.NewVerifier(keygate.Config{ /* Issuer, Audiences, Keys, */ Revocations: revs})
	_, _ = v, err

	// On a logout, on any instance:
	err = revs.Revoke(context.Background(), revoke.Revocation{Kind: revoke.Session, Value: "session-1", Source: "admin"})
	if errors.Is(err, redisstore.ErrNotReplicated) {
		slog.Warn("revocation holds on this instance only until Redis is back", "err", err)
	}
}
