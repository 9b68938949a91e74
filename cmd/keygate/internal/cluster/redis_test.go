package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/cmd/keygate/internal/cluster"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/internal/redistest"
)

func TestNewRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  config.Redis
		ok   bool
	}{
		{"url with password", config.Redis{URL: srv.URL()}, true},
		{"password field overrides", config.Redis{URL: "redis://" + srv.Addr + "/0", Password: srv.Password}, true},
		{"wrong password", config.Redis{URL: "redis://:nope@" + srv.Addr + "/0"}, false},
		{"addresses", config.Redis{Addresses: []string{srv.Addr}, Password: srv.Password}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Timeout = 2 * time.Second
			c, err := cluster.NewRedis(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Ping(ctx).Err()
			if (err == nil) != tt.ok {
				t.Errorf("Ping = %v; want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestNewRedisKeepsPasswordOutOfErrors(t *testing.T) {
	_, err := cluster.NewRedis(config.Redis{URL: "redis://:s3cret-pw@host:notaport/x"})
	if err == nil {
		t.Fatal("NewRedis accepted a bad URL")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error %q holds the password", err)
	}
}

// A Redis that refuses connections must fail each call at once, so that
// the callers fall back at once: one dial per call, as MaxRetries -1
// means one attempt per command. go-redis's default of 5 dials 100 ms
// apart made every call to a killed Redis take ~400 ms (seen in
// e2e.TestClusterRedisOutage: a back-channel logout answered in 850 ms).
func TestNewRedisDialsOnce(t *testing.T) {
	for _, cfg := range []config.Redis{
		{URL: "redis://127.0.0.1:1/0"},
		{Addresses: []string{"127.0.0.1:1"}},
	} {
		cfg.Timeout = time.Second
		c, err := cluster.NewRedis(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var got int
		switch c := c.(type) {
		case *redis.Client:
			got = c.Options().DialerRetries
		case *redis.ClusterClient:
			got = c.Options().DialerRetries
		default:
			t.Fatalf("NewRedis(%+v) = %T", cfg, c)
		}
		if got != 1 {
			t.Errorf("NewRedis(%+v): DialerRetries = %d; want 1 (one dial per call)", cfg, got)
		}
	}
}
