// Package cluster builds what cluster mode needs from the configuration:
// the Redis client the shared key cache and the revocation store use.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
)

// NewRedis returns a client for cfg (with defaults applied): a single
// node for url, a Sentinel-managed master for addresses with master_name,
// a Redis Cluster for addresses alone. Every dial and command is bounded
// by cfg.Timeout. It does no I/O: the client connects on first use.
func NewRedis(cfg config.Redis) (redis.UniversalClient, error) {
	opts := &redis.UniversalOptions{
		Addrs:        cfg.Addresses,
		MasterName:   cfg.MasterName,
		Username:     cfg.Username,
		Password:     cfg.Password,
		DB:           cfg.DB,
		DialTimeout:  cfg.Timeout,
		ReadTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		PoolTimeout:  cfg.Timeout,
		// Retries would multiply the timeout; the callers fall back.
		MaxRetries: -1,
		// One dial per attempt: go-redis otherwise dials 5 times, 100 ms
		// apart, so each call to a Redis that refuses connections took
		// ~400 ms (up to Timeout) instead of failing at once.
		DialerRetries: 1,
	}
	if cfg.URL != "" {
		u, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("cluster.redis.url: %w", redactErr(err, cfg.URL))
		}
		opts.Addrs = []string{u.Addr}
		opts.DB = u.DB
		opts.TLSConfig = u.TLSConfig
		if opts.Username == "" {
			opts.Username = u.Username
		}
		if opts.Password == "" {
			opts.Password = u.Password
		}
	}
	if t := cfg.TLS; t != nil {
		tc, err := tlsConfig(t, opts.TLSConfig)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig = tc
	}
	if opts.TLSConfig != nil && opts.TLSConfig.MinVersion < tls.VersionTLS12 {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return redis.NewUniversalClient(opts), nil
}

// tlsConfig builds the TLS settings of t on top of base (from rediss://).
func tlsConfig(t *config.RedisTLS, base *tls.Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		tc = base.Clone()
	}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.redis.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster.redis.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// redactErr keeps raw, which may hold a password, out of err's text: a
// *url.Error is reduced to its cause, and a password that url.Parse finds
// is masked in what remains.
func redactErr(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return errors.New(msg)
}

// RouteRedisLog sends go-redis's own log lines (dial retries, pool
// errors), which it prints to standard error by default, to log at Debug
// level: keygate logs Redis trouble itself, once per change of state.
// go-redis keeps one logger per process, so only the serve command calls
// this, once.
func RouteRedisLog(log *slog.Logger) {
	redis.SetLogger(redisLog{log})
}

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}
