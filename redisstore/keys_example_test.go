package redisstore_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/redisstore"
)

// Every instance of a cluster builds its source the same way: one of them
// fetches the keys per refresh interval and the others read them from
// Redis. The secret seals what is stored, so whoever can write to Redis
// but does not hold it cannot plant a key.
func ExampleNewKeys() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:    []string{"redis.internal:6379"}, // one address, Sentinel's or a Cluster's
		Password: os.Getenv("REDIS_PASSWORD"),
	})
	defer client.Close()

	src, err := jwks.NewSource(jwks.Config{
		Issuer:          "https://keycloak.example.com/realms/shop",
		RefreshInterval: time.Minute,
		Shared:          redisstore.NewKeys(client, "keygate:", 0),
		SharedSecret:    []byte(os.Getenv("KEYGATE_CLUSTER_SECRET")), // 32 bytes or more
	})
	if err != nil {
		log.Fatal(err)
	}
	src.Start()
	defer src.Close() // before client.Close

	k, err := src.Key(context.Background(), "kid-from-the-token")
	if err != nil {
		log.Print(err)
		return
	}
	log.Print(k.Algorithm)
}
