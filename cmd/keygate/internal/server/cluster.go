package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/backchannel"
	"github.com/keygate/keygate/cmd/keygate/internal/cluster"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/metrics"
	"github.com/keygate/keygate/redisstore"
	"github.com/keygate/keygate/revoke"
)

// clusterParts are what cluster mode and revocation add to a Server: all
// nil or zero when the configuration has neither block.
type clusterParts struct {
	redis      redis.UniversalClient   // nil without cluster
	sharedRevs *redisstore.Revocations // nil without cluster or revocation
	localRevs  *revoke.List            // nil with cluster or without revocation
}

// newClusterParts builds the Redis client and the revocation store of
// cfg (with defaults). It does no I/O.
func newClusterParts(cfg config.Config, log *slog.Logger, m *metrics.Metrics) (clusterParts, error) {
	var p clusterParts
	if cfg.Cluster != nil {
		c, err := cluster.NewRedis(cfg.Cluster.Redis)
		if err != nil {
			return p, err
		}
		p.redis = c
	}
	if r := cfg.Revocation; r != nil {
		if p.redis != nil {
			p.sharedRevs = redisstore.NewRevocations(p.redis, redisstore.RevocationsOptions{
				Prefix:  cfg.Cluster.KeyPrefix,
				TTL:     r.TTL,
				Timeout: cfg.Cluster.Redis.Timeout,
				Logger:  log.With("component", "revocations"),
				OnApply: func(_ revoke.Revocation, lag time.Duration) { m.RevocationApplied(lag) },
			})
		} else {
			p.localRevs = &revoke.List{TTL: r.TTL}
		}
	}
	return p, nil
}

// store returns the revocation store, nil without revocation.
func (p clusterParts) store() revoke.Store {
	switch {
	case p.sharedRevs != nil:
		return p.sharedRevs
	case p.localRevs != nil:
		return p.localRevs
	}
	return nil
}

// start starts the revocation subscriber.
func (p clusterParts) start() error {
	if p.sharedRevs != nil {
		return p.sharedRevs.Start()
	}
	return nil
}

// close stops the subscriber and closes the Redis client.
func (p clusterParts) close() {
	if p.sharedRevs != nil {
		p.sharedRevs.Close()
	}
	if p.redis != nil {
		p.redis.Close()
	}
}

// newLogoutHandler returns the back-channel logout receiver of cfg.
func newLogoutHandler(cfg config.Config, v backchannel.Config) (*backchannel.Handler, error) {
	v.Audience = cfg.Revocation.BackchannelLogout.ClientID
	v.TTL = cfg.Revocation.TTL
	return backchannel.New(v)
}

// redisStatus is the Redis part of /readyz.
type redisStatus struct {
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// pingRedis reports whether Redis answers PING within the configured
// timeout. Only /readyz calls it: no request waits for Redis.
func (s *Server) pingRedis(ctx context.Context) *redisStatus {
	if s.cluster.redis == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Cluster.Redis.Timeout)
	defer cancel()
	if err := s.cluster.redis.Ping(ctx).Err(); err != nil {
		return &redisStatus{Error: clipValue(err.Error())}
	}
	return &redisStatus{Reachable: true}
}

// recordingStore counts the revocations recorded through it (back-channel
// logout and the admin endpoint) by source and result. The verifier reads
// the store underneath: the request path pays nothing for it.
type recordingStore struct {
	revoke.Store
	m *metrics.Metrics
}

func (r recordingStore) Revoke(ctx context.Context, rv revoke.Revocation) error {
	err := r.Store.Revoke(ctx, rv)
	result := "ok"
	switch {
	case errors.Is(err, revoke.ErrNotShared):
		result = "local_only"
	case err != nil:
		result = "failed"
	}
	r.m.RevocationRecorded(rv.Source, result)
	return err
}
