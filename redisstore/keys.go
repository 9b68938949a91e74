// Package redisstore keeps keygate's cluster state in Redis or Valkey,
// through go-redis's universal client, so that a single node, Sentinel and
// Cluster all work. It is a package of its own so that programs without
// Redis do not link it.
//
// [Keys] is the shared key cache of [jwks.Config.Shared]. It is transport
// only: the jwks package seals what it stores, so a Redis writer without
// the cluster secret cannot plant keys.
//
// [Revocations] is a [revoke.Store] whose revocations reach every
// instance: each keeps a local replica ([revoke.List]) that answers the
// verifier from memory, kept current by pub/sub and resynced from Redis on
// every (re)connect. Its records are not sealed: a Redis writer can add
// revocations (refusing valid tokens) but cannot remove one an instance
// holds.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/jwks"
)

// DefaultKeysTimeout bounds each Redis call of a [Keys] when the timeout
// given to [NewKeys] is zero.
const DefaultKeysTimeout = 500 * time.Millisecond

// MaxEntrySize is the largest entry [Keys.Get] reads, in bytes: room
// for the sealed key set of a jwks.Config.MaxResponseSize up to 6 MiB
// (the default is 1 MiB). A larger entry is refused by its length,
// without being read, so that a Redis writer cannot make every instance
// allocate what it planted.
const MaxEntrySize = 8 << 20

// getScript returns the string under KEYS[1], or its length when that is
// over ARGV[1], or nil when there is none.
const getScript = `
local n = redis.call('STRLEN', KEYS[1])
if n > tonumber(ARGV[1]) then return n end
return redis.call('GET', KEYS[1])
`

// Keys is a [jwks.SharedCache] on Redis. Entries are strings under
// prefix+name with a TTL, leases are SET NX PX under the same names, and
// changes are announced on the pub/sub channel prefix+"keys:changed". It
// is safe for concurrent use. It does not own the client: the caller
// closes it, after closing the sources that use it.
type Keys struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	get     *redis.Script
}

var _ jwks.SharedCache = (*Keys)(nil)

// NewKeys returns a Keys that stores under keys starting with prefix (such
// as "keygate:"; the empty prefix is allowed) through client. timeout
// bounds each call, and each wait for a reconnection of the subscription;
// zero means [DefaultKeysTimeout]. It does no I/O.
func NewKeys(client redis.UniversalClient, prefix string, timeout time.Duration) *Keys {
	if timeout <= 0 {
		timeout = DefaultKeysTimeout
	}
	return &Keys{client: client, prefix: prefix, timeout: timeout, get: redis.NewScript(getScript)}
}

func (k *Keys) channel() string { return k.prefix + "keys:changed" }

// Get returns the entry under name, or (nil, nil) when there is none. An
// entry over [MaxEntrySize] bytes is an error, and is not read.
func (k *Keys) Get(ctx context.Context, name string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	v, err := k.get.Run(ctx, k.client, []string{k.prefix + name}, MaxEntrySize).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: get %s: %w", name, err)
	}
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case int64:
		return nil, fmt.Errorf("redisstore: get %s: entry of %d bytes, more than %d", name, v, MaxEntrySize)
	}
	return nil, fmt.Errorf("redisstore: get %s: unexpected reply %T", name, v)
}

// Set stores entry under name for ttl; a ttl under a millisecond keeps it
// with no expiry.
func (k *Keys) Set(ctx context.Context, name string, entry []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if ttl < time.Millisecond {
		ttl = 0
	}
	if err := k.client.Set(ctx, k.prefix+name, entry, ttl).Err(); err != nil {
		return fmt.Errorf("redisstore: set %s: %w", name, err)
	}
	return nil
}

// TryLease takes the lease called name for ttl (at least a millisecond)
// with SET NX PX, and reports whether it was taken.
func (k *Keys) TryLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	ok, err := k.client.SetNX(ctx, k.prefix+name, "1", max(ttl, time.Millisecond)).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: lease %s: %w", name, err)
	}
	return ok, nil
}

// Publish announces a change of name on the channel.
func (k *Keys) Publish(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if err := k.client.Publish(ctx, k.channel(), name).Err(); err != nil {
		return fmt.Errorf("redisstore: publish %s: %w", name, err)
	}
	return nil
}

// Subscribe calls changed with each name published on the channel, and
// with "" whenever the subscription is (re)established, until ctx ends;
// then it returns ctx's error. While Redis is unreachable it retries every
// timeout or so; go-redis re-subscribes on reconnection.
func (k *Keys) Subscribe(ctx context.Context, changed func(name string)) error {
	ps := k.client.Subscribe(ctx)
	stop := context.AfterFunc(ctx, func() { ps.Close() }) // unblocks a read
	defer func() {
		if stop() {
			ps.Close()
		}
	}()
	// A failure here is retried by the loop below: the channel is
	// remembered and subscribed to on each (re)connection.
	sctx, cancel := context.WithTimeout(ctx, k.timeout)
	ps.Subscribe(sctx, k.channel())
	cancel()
	for ctx.Err() == nil {
		// A read times out now and then, so that a dead connection is
		// noticed by the ping below even when no error arrives.
		msg, err := ps.ReceiveTimeout(ctx, 10*k.timeout)
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				changed("")
			}
			continue
		case *redis.Message:
			changed(m.Payload)
			continue
		}
		if err == nil || ctx.Err() != nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, k.timeout)
		perr := ps.Ping(pctx)
		cancel()
		if perr != nil && !k.pause(ctx) {
			break
		}
	}
	return ctx.Err()
}

// pause waits for the timeout or ctx, and reports whether ctx is still
// live.
func (k *Keys) pause(ctx context.Context) bool {
	t := time.NewTimer(k.timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
