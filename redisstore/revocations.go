package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/revoke"
)

// ErrNotReplicated is wrapped, with Redis's error, by the error of
// [Revocations.Revoke] and [Revocations.FirstUse] when Redis could not be
// reached: the call took effect on this instance only. Revoke keeps the
// revocation and sends it to Redis again after the next reconnect;
// FirstUse's answer is this instance's. Callers should log it and go on:
// check with errors.Is. It matches [revoke.ErrNotShared] too.
var ErrNotReplicated = fmt.Errorf("redisstore: applied on this instance only, not sent to the cluster: %w", revoke.ErrNotShared)

// Defaults of [RevocationsOptions].
const (
	// DefaultPrefix is the prefix of keys and channels when
	// RevocationsOptions.Prefix is empty.
	DefaultPrefix = "keygate:"
	// DefaultTimeout bounds each Redis call when
	// RevocationsOptions.Timeout is zero.
	DefaultTimeout = 2 * time.Second
)

// RevocationsOptions configures [Revocations]. The zero value works.
type RevocationsOptions struct {
	// Prefix starts every key and channel name Revocations uses. Empty
	// means [DefaultPrefix]. The revocations live in a hash
	// Prefix+"{revocations}" and a sorted set by expiry
	// Prefix+"{revocations}:expiry" (one hash slot in Redis Cluster),
	// announced on channel Prefix+"revocations"; FirstUse keys are
	// Prefix+"logout-jti:"+jti. Instances that share revocations share
	// the prefix.
	Prefix string
	// TTL is how long a revocation with a zero Expires is kept: the
	// longest access token lifetime. Zero means [revoke.DefaultTTL].
	TTL time.Duration
	// MaxEntries caps the local replica (see [revoke.List.MaxEntries]).
	// Zero means [revoke.DefaultMaxEntries].
	MaxEntries int
	// Timeout bounds each Redis call. Zero means [DefaultTimeout].
	Timeout time.Duration
	// Logger receives Redis errors and reconnects, once per change of
	// state rather than per failed call. Nil means no logging.
	Logger *slog.Logger
	// OnApply, when set, is called after a revocation made by another
	// instance was applied to the local replica, with the time from its
	// At to now: the propagation lag, clock skew between instances
	// included. It runs on the subscriber goroutine and must be fast.
	// Revocations found by a resync are not reported.
	OnApply func(r revoke.Revocation, lag time.Duration)
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// RevocationStats are the counters of a [Revocations], for metrics.
type RevocationStats struct {
	// Received counts the revocations made on this instance (Revoke calls
	// that were recorded locally).
	Received uint64
	// Applied counts the revocations of other instances received by
	// pub/sub and applied to the local replica.
	Applied uint64
	// Resyncs counts the full reads of the set from Redis: at start and
	// after every reconnect.
	Resyncs uint64
	// Errors counts failed Redis calls and malformed messages.
	Errors uint64
	// LastLag is the propagation lag of the last revocation applied from
	// another instance (see RevocationsOptions.OnApply); zero before any.
	LastLag time.Duration
	// Pending is the number of local revocations not yet written to
	// Redis, to be sent after the next reconnect.
	Pending int
}

// maxPending bounds the revocations kept for sending after Redis returns;
// beyond it Revoke still applies locally and returns ErrNotReplicated.
const maxPending = 10000

// maxMessage bounds the size of a message or hash value read from Redis.
const maxMessage = 8 << 10

// health is how long the subscriber waits for a message before it pings
// Redis, and the unit of its reconnect backoff.
const health = time.Second

// Revocations is a [revoke.Store] shared by the instances of a cluster
// through Redis. Every instance holds the whole set in a local
// [revoke.List]; Revoked reads only that replica, with no Redis round
// trip on the request path.
//
// Revoke applies locally, writes the revocation to Redis (a hash and a
// sorted set by expiry, with expired entries dropped as it goes) and
// publishes it; every instance's subscriber applies what it receives. On
// start and after every reconnect the subscriber reads the whole set
// again, so revocations made while an instance was cut off reach it.
// Replicas merge revocations the same way in any order (see
// [revoke.List.Revoke]), so they converge.
//
// Without Redis, Revoke and FirstUse work locally and return an error
// wrapping [ErrNotReplicated]; the request path is never affected. A
// party with write access to Redis can add revocations (refuse valid
// tokens) but cannot make a revoked token accepted by an instance that
// has already applied the revocation: revocations are never removed
// before they expire.
//
// Create it with [NewRevocations], call Start to begin receiving, and
// Close when done. Its methods are safe for concurrent use.
type Revocations struct {
	client  redis.UniversalClient
	opts    RevocationsOptions
	local   *revoke.List
	log     *slog.Logger
	id      string // this instance, in the messages it publishes
	hash    string
	expiry  string
	channel string
	script  *redis.Script
	scan    *redis.Script

	received, applied, resyncs, errs atomic.Uint64
	lastLag                          atomic.Int64

	mu      sync.Mutex
	pending []revoke.Revocation
	pubsub  *redis.PubSub
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

var _ revoke.Store = (*Revocations)(nil)

// NewRevocations returns a Revocations on client. It does no I/O and
// starts nothing; the client stays the caller's to close, after Close.
func NewRevocations(client redis.UniversalClient, opts RevocationsOptions) *Revocations {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var id [8]byte
	rand.Read(id[:])
	return &Revocations{
		client:  client,
		opts:    opts,
		local:   &revoke.List{MaxEntries: opts.MaxEntries, TTL: opts.TTL, Now: opts.Now},
		log:     log.With("component", "redisstore.revocations"),
		id:      hex.EncodeToString(id[:]),
		hash:    opts.Prefix + "{revocations}",
		expiry:  opts.Prefix + "{revocations}:expiry",
		channel: opts.Prefix + "revocations",
		script:  redis.NewScript(revokeScript),
		scan:    redis.NewScript(scanScript),
	}
}

// Start starts the subscriber goroutine, which subscribes, reads the
// whole set from Redis and then applies what other instances publish,
// reconnecting as needed. It returns at once: until the first resync,
// the replica holds only local revocations. Start fails if called twice
// or after Close.
func (r *Revocations) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return errors.New("redisstore: Revocations already started or closed")
	}
	r.started = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan struct{})
	// Subscribe sends SUBSCRIBE when it can connect and otherwise
	// remembers the channel for the reconnects of the run loop.
	sctx, scancel := context.WithTimeout(ctx, r.opts.Timeout)
	r.pubsub = r.client.Subscribe(sctx, r.channel)
	scancel()
	go r.run(ctx, r.pubsub)
	return nil
}

// Close stops the subscriber and waits for it to return. It does not
// close the client. Revoked keeps answering from the replica.
func (r *Revocations) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ps, done := r.pubsub, r.done
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
	if ps == nil {
		return nil
	}
	ps.Close() // unblocks a pending receive
	<-done
	return nil
}

// Revoked reports whether p is revoked, from the local replica.
func (r *Revocations) Revoked(p *keygate.Principal) bool { return r.local.Revoked(p) }

// Revoke records rev: on this instance first (it holds for every later
// Verify here when Revoke returns, whatever Redis does), then in Redis,
// and publishes it to the other instances. Zero At, IssuedBefore and
// Expires are filled as [revoke.List.Revoke] does, before sending.
//
// The error wraps [revoke.ErrInvalid] or is [revoke.ErrFull] when the
// revocation was not recorded at all; it wraps [ErrNotReplicated] when
// it was recorded here but Redis could not be reached within the
// Timeout: it is sent again after the next reconnect.
func (r *Revocations) Revoke(ctx context.Context, rev revoke.Revocation) error {
	now := r.opts.Now()
	if rev.At.IsZero() {
		rev.At = now
	}
	if rev.Kind == revoke.Subject && rev.IssuedBefore.IsZero() {
		rev.IssuedBefore = rev.At
	}
	if rev.Expires.IsZero() {
		ttl := r.opts.TTL
		if ttl <= 0 {
			ttl = revoke.DefaultTTL
		}
		rev.Expires = rev.At.Add(ttl)
	}
	if err := r.local.Revoke(ctx, rev); err != nil {
		return err
	}
	if !rev.Expires.After(now) {
		return nil
	}
	r.received.Add(1)
	if err := r.publish(ctx, rev); err != nil {
		r.errs.Add(1)
		queued := r.queue(rev)
		r.log.Warn("revocation not sent to redis", "kind", string(rev.Kind), "queued", queued, "err", err)
		return fmt.Errorf("%w: %w", ErrNotReplicated, err)
	}
	return nil
}

// revokeScript merges a revocation into the hash (the later
// IssuedBefore, Expires and At win, as in revoke.List), indexes it by
// expiry, drops up to 100 expired entries and publishes the merged
// record. KEYS: hash, expiry set. ARGV: field, record, channel, now (ms).
// A record in the hash that is not ours (not JSON, or a time that is not
// a number) is replaced, not merged: otherwise the script would fail for
// that field for ever, and the revocation would never reach Redis.
const revokeScript = `
local new = cjson.decode(ARGV[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local ok, old = false, nil
if cur then ok, old = pcall(cjson.decode, cur) end
if ok and type(old) == 'table' then
  if type(old.ib) == 'number' and old.ib > new.ib then new.ib = old.ib end
  if type(old.exp) == 'number' and old.exp > new.exp then new.exp = old.exp end
  if type(old.at) == 'number' and type(old.src) == 'string' and type(old.o) == 'string' and
     (old.at > new.at or (old.at == new.at and old.src > new.src)) then
    new.at = old.at; new.src = old.src; new.o = old.o
  end
end
local rec = cjson.encode(new)
redis.call('HSET', KEYS[1], ARGV[1], rec)
redis.call('ZADD', KEYS[2], new.exp, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, f in ipairs(gone) do redis.call('HDEL', KEYS[1], f) end
if #gone > 0 then redis.call('ZREM', KEYS[2], unpack(gone)) end
redis.call('PUBLISH', ARGV[3], rec)
return 1
`

// scanScript is one HSCAN step (COUNT 500) over KEYS[1] from cursor
// ARGV[1], with each field cut to 64 bytes and each value longer than
// ARGV[2] bytes replaced by "": a record planted in the hash is not sent
// whole to every instance at every resync. It returns {cursor, {field,
// value, ...}}.
const scanScript = `
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', 500)
local kv, max = r[2], tonumber(ARGV[2])
for i = 1, #kv, 2 do
  kv[i] = string.sub(kv[i], 1, 64)
  if #kv[i+1] > max then kv[i+1] = '' end
end
return r
`

// scanReply decodes scanScript's reply.
func scanReply(res []any) (kv []string, cursor uint64, err error) {
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("scan reply of %d elements", len(res))
	}
	c, _ := res[0].(string)
	if cursor, err = strconv.ParseUint(c, 10, 64); err != nil {
		return nil, 0, fmt.Errorf("scan cursor %q: %w", cut(c), err)
	}
	elems, _ := res[1].([]any)
	kv = make([]string, len(elems))
	for i, e := range elems {
		kv[i], _ = e.(string)
	}
	return kv, cursor, nil
}

// publish runs revokeScript for rev, within the Timeout.
func (r *Revocations) publish(ctx context.Context, rev revoke.Revocation) error {
	rec, err := json.Marshal(toWire(rev, r.id))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	field := string(rev.Kind) + ":" + rev.Value
	return r.script.Run(ctx, r.client, []string{r.hash, r.expiry}, field, rec, r.channel, r.opts.Now().UnixMilli()).Err()
}

// queue keeps rev for sending after the next reconnect, and reports
// whether there was room.
func (r *Revocations) queue(rev revoke.Revocation) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) >= maxPending {
		return false
	}
	r.pending = append(r.pending, rev)
	return true
}

// List returns the revocations in force in the local replica: the
// cluster's as of the last resync and the messages since. ctx is not
// used.
func (r *Revocations) List(ctx context.Context) ([]revoke.Revocation, error) {
	return r.local.List(ctx)
}

// FirstUse records jti until until, on this instance and in Redis with
// SET NX PX, and reports whether no instance had recorded it before. A
// jti already recorded here is refused without asking Redis. When Redis
// cannot be reached, the answer is this instance's and the error wraps
// [ErrNotReplicated]; other errors are [revoke.List.FirstUse]'s.
func (r *Revocations) FirstUse(ctx context.Context, jti string, until time.Time) (bool, error) {
	first, err := r.local.FirstUse(ctx, jti, until)
	if err != nil || !first {
		return false, err
	}
	ttl := until.Sub(r.opts.Now())
	if ttl <= 0 {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	ok, err := r.client.SetNX(ctx, r.opts.Prefix+"logout-jti:"+jti, r.id, ttl).Result()
	if err != nil {
		r.errs.Add(1)
		r.log.Warn("logout token id not checked in redis", "err", err)
		return true, fmt.Errorf("%w: %w", ErrNotReplicated, err)
	}
	return ok, nil
}

// Stats returns the counters.
func (r *Revocations) Stats() RevocationStats {
	r.mu.Lock()
	pending := len(r.pending)
	r.mu.Unlock()
	return RevocationStats{
		Received: r.received.Load(),
		Applied:  r.applied.Load(),
		Resyncs:  r.resyncs.Load(),
		Errors:   r.errs.Load(),
		LastLag:  time.Duration(r.lastLag.Load()),
		Pending:  pending,
	}
}

// run is the subscriber: it applies messages, resyncs after every
// (re)subscription, pings when idle and sweeps the replica. go-redis
// reconnects the PubSub and subscribes again on the next receive after
// an error; the confirmation tells run to resync.
func (r *Revocations) run(ctx context.Context, ps *redis.PubSub) {
	defer close(r.done)
	var (
		resync    bool // a resync is due
		down      bool // the last receive failed
		failures  int
		lastSweep = r.opts.Now()
	)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, health+r.opts.Timeout)
		msg, err := ps.ReceiveTimeout(rctx, health)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if now := r.opts.Now(); now.Sub(lastSweep) > time.Minute {
			r.local.Sweep()
			lastSweep = now
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Idle: a ping keeps the connection checked (its
				// failure makes go-redis reconnect), and a failed
				// resync is tried again.
				pctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
				ps.Ping(pctx)
				cancel()
				if resync {
					resync = !r.resyncOnce(ctx)
				}
				continue
			}
			r.errs.Add(1)
			if !down {
				r.log.Warn("redis subscription lost, reconnecting", "err", err)
				down = true
			}
			failures++
			sleep(ctx, min(time.Duration(failures)*100*time.Millisecond, health))
			continue
		}
		if down {
			r.log.Info("redis subscription restored")
			down = false
		}
		failures = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				resync = !r.resyncOnce(ctx)
			}
		case *redis.Message:
			r.apply(m.Payload)
		}
	}
}

// resyncOnce sends the pending revocations and reads the whole set from
// Redis into the replica. It reports whether the set was read: pending
// revocations Redis refused stay queued for the next resync, and do not
// make the subscriber read the whole set again at every idle tick.
func (r *Revocations) resyncOnce(ctx context.Context) bool {
	sendErr, readErr := r.resync(ctx)
	if ctx.Err() == nil {
		if sendErr != nil {
			r.log.Warn("pending revocations not sent", "err", sendErr)
		}
		if readErr != nil {
			r.log.Warn("revocation resync failed", "err", readErr)
		}
	}
	return readErr == nil
}

// Resync sends the revocations Redis missed and reads every revocation
// in Redis into the local replica, each call within the Timeout. The
// subscriber does it at start and after every reconnect; callers need
// not. The set is read even when sending fails; the revocations not sent
// stay queued. The error reports either failure.
func (r *Revocations) Resync(ctx context.Context) error {
	sendErr, readErr := r.resync(ctx)
	return errors.Join(sendErr, readErr)
}

func (r *Revocations) resync(ctx context.Context) (sendErr, readErr error) {
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	for i, rev := range pending {
		if err := r.publish(ctx, rev); err != nil {
			r.errs.Add(1)
			r.mu.Lock()
			r.pending = append(pending[i:len(pending):len(pending)], r.pending...)
			r.mu.Unlock()
			sendErr = fmt.Errorf("redisstore: send pending revocations: %w", err)
			break
		}
	}
	var cursor uint64
	for {
		cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
		res, err := r.scan.Run(cctx, r.client, []string{r.hash}, cursor, maxMessage).Slice()
		cancel()
		var kv []string
		var next uint64
		if err == nil {
			kv, next, err = scanReply(res)
		}
		if err != nil {
			r.errs.Add(1)
			return sendErr, fmt.Errorf("redisstore: read revocations: %w", err)
		}
		for i := 1; i < len(kv); i += 2 {
			if _, err := r.decodeApply(kv[i]); err != nil {
				r.errs.Add(1)
				r.log.Warn("bad revocation in redis", "field", cut(kv[i-1]), "err", err)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	r.resyncs.Add(1)
	return sendErr, nil
}

// apply applies a published message, and reports another instance's
// revocation to the counters and OnApply.
func (r *Revocations) apply(payload string) {
	w, err := r.decodeApply(payload)
	if err != nil {
		r.errs.Add(1)
		r.log.Warn("bad revocation message", "err", err)
		return
	}
	if w.Origin == r.id {
		return
	}
	rev := w.revocation()
	lag := r.opts.Now().Sub(rev.At)
	r.applied.Add(1)
	r.lastLag.Store(int64(lag))
	if r.opts.OnApply != nil {
		r.opts.OnApply(rev, lag)
	}
}

// decodeApply decodes a record and merges it into the replica.
func (r *Revocations) decodeApply(s string) (wire, error) {
	var w wire
	if len(s) > maxMessage {
		return w, fmt.Errorf("record of %d bytes, more than %d", len(s), maxMessage)
	}
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		return w, err
	}
	rev := w.revocation()
	// A record from Redis is kept no longer than this instance would keep
	// its own, plus a margin for clock skew: a Redis writer cannot plant
	// revocations that outlive every token they could match.
	ttl := r.opts.TTL
	if ttl <= 0 {
		ttl = revoke.DefaultTTL
	}
	if limit := r.opts.Now().Add(ttl + maxClockSkew); rev.Expires.After(limit) {
		rev.Expires = limit
	}
	return w, r.local.Revoke(context.Background(), rev)
}

// maxClockSkew is the margin added to the TTL when capping the expiry of
// revocations read from Redis.
const maxClockSkew = time.Minute

// wire is a revocation as stored in Redis and published: times in unix
// milliseconds, which Lua's numbers hold exactly. IssuedBefore and
// Expires are rounded up, At down.
type wire struct {
	Kind         string `json:"k"`
	Value        string `json:"v"`
	IssuedBefore int64  `json:"ib"`
	At           int64  `json:"at"`
	Expires      int64  `json:"exp"`
	Source       string `json:"src"`
	Origin       string `json:"o"`
}

func toWire(r revoke.Revocation, origin string) wire {
	w := wire{Kind: string(r.Kind), Value: r.Value, At: r.At.UnixMilli(), Expires: ceilMilli(r.Expires), Source: r.Source, Origin: origin}
	if r.Kind == revoke.Subject {
		w.IssuedBefore = ceilMilli(r.IssuedBefore)
	}
	return w
}

func (w wire) revocation() revoke.Revocation {
	r := revoke.Revocation{Kind: revoke.Kind(w.Kind), Value: w.Value, At: time.UnixMilli(w.At), Expires: time.UnixMilli(w.Expires), Source: w.Source}
	if r.Kind == revoke.Subject {
		r.IssuedBefore = time.UnixMilli(w.IssuedBefore)
	}
	return r
}

func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}

// cut shortens s for a log line.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
