package revoke

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate"
)

// Defaults and limits of a [List].
const (
	// DefaultMaxEntries is the number of revocations a List holds when
	// [List.MaxEntries] is zero: about 100 MB at a few tens of bytes of
	// map overhead plus the values per entry.
	DefaultMaxEntries = 1_000_000
	// DefaultTTL is how long a revocation is kept when its Expires is
	// zero and [List.TTL] is zero. It must outlast the longest access
	// token lifetime, or a revoked token is accepted again once its
	// revocation is forgotten.
	DefaultTTL = 24 * time.Hour
	// MaxValueLen is the longest [Revocation.Value], [Revocation.Source]
	// and FirstUse jti a List accepts, in bytes.
	MaxValueLen = 1024
)

var (
	// ErrFull is returned by [List.Revoke] and [List.FirstUse] when the
	// list holds MaxEntries unexpired entries: the new entry is refused,
	// never silently dropped, and nothing already held is evicted.
	ErrFull = errors.New("revoke: list is full")
	// ErrInvalid is wrapped by the error for a revocation a List cannot
	// hold: unknown Kind, empty or too long Value or Source.
	ErrInvalid = errors.New("revoke: invalid revocation")
)

// List is the in-memory [Store]: the revocations of one process. It is
// what a single instance uses, and the local replica a replicated store
// (such as redisstore.Revocations) answers Revoked from.
//
// Revoked takes no lock and allocates nothing: it loads an immutable
// snapshot through an atomic pointer, and an empty List answers after one
// pointer test. Writers serialise on a mutex and publish a new snapshot.
// A snapshot has a large base layer and a small delta layer of recent
// revocations: Revoke copies only the delta (at most about sqrt(2n)
// entries for n held), and merges it into a new base when it is full, so
// a logout storm costs O(sqrt n) per Revoke, amortised, not O(n).
//
// Expired entries are dropped lazily: when the delta is merged, when the
// list is full, and by [List.Sweep]. Until then an expired revocation may
// still match; by definition every token it matches has expired too, so
// this only refuses tokens the Verifier refuses anyway. List never
// returns expired entries. No goroutine is started; nothing needs closing.
//
// The zero List is empty and ready to use, with the defaults below. A
// List must not be copied after first use. Its methods are safe for
// concurrent use.
type List struct {
	// MaxEntries caps the revocations held, and separately the FirstUse
	// records. Zero means [DefaultMaxEntries]. When full, Revoke and
	// FirstUse return [ErrFull] (fail closed: the caller learns the
	// revocation was not recorded).
	MaxEntries int
	// TTL is how long a revocation with a zero Expires is kept after its
	// At. Zero means [DefaultTTL].
	TTL time.Duration
	// Now is the clock for expiry. Nil means time.Now.
	Now func() time.Time

	snap atomic.Pointer[snapshot] // nil when empty

	mu sync.Mutex // serialises writers of snap

	usedMu    sync.Mutex
	used      map[string]int64 // FirstUse jti → expiry, unix ns
	usedSweep int              // sweep used when it reaches this size
}

var _ Store = (*List)(nil)

// snapshot is an immutable state of a List. delta holds the recent
// revocations; an entry in delta supersedes (and already includes) the
// base entry for the same key.
type snapshot struct {
	base, delta layer
	n           int // distinct keys over both layers
	nd          int // entries in delta
}

type layer struct {
	sid, sub, jti map[string]entry
	// filter has a bit set for every key of the layer (see bit), so that
	// most misses cost a few arithmetic operations instead of hashing the
	// whole key. Nil for an empty layer.
	filter []uint64
	shift  uint8
}

// bit is where key k, v sits in a filter of 1<<(64-shift) bits: a
// multiplicative hash of the kind, the length and the last 8 bytes,
// which are random in the UUIDs Keycloak uses for sid, sub and jti. Keys
// that share them only cost a false positive: a map lookup.
func bit(k Kind, v string, shift uint8) uint64 {
	x := uint64(len(v))<<56 ^ uint64(len(k))<<48 ^ uint64(k[1])<<40
	n := len(v)
	for i := max(0, n-8); i < n; i++ {
		x = x<<8 | x>>56 ^ uint64(v[i])
	}
	return (x * 0x9e3779b97f4a7c15) >> shift
}

// may reports whether the layer may hold k, v.
func (ly *layer) may(k Kind, v string) bool {
	if ly.filter == nil {
		return false
	}
	b := bit(k, v, ly.shift)
	return ly.filter[b/64]&(1<<(b%64)) != 0
}

// build sets the filter from the maps: 8 bits per key, a false positive
// rate of about 12 %.
func (ly *layer) build() {
	n := len(ly.sid) + len(ly.sub) + len(ly.jti)
	if n == 0 {
		ly.filter = nil
		return
	}
	bits := 64
	for bits < 8*n {
		bits *= 2
	}
	ly.shift = uint8(64 - bitsLen(bits) + 1)
	ly.filter = make([]uint64, bits/64)
	for _, k := range [...]Kind{Session, Subject, Token} {
		for v := range *ly.of(k) {
			b := bit(k, v, ly.shift)
			ly.filter[b/64] |= 1 << (b % 64)
		}
	}
}

// bitsLen is the number of bits needed to write n.
func bitsLen(n int) int {
	l := 0
	for ; n > 0; n >>= 1 {
		l++
	}
	return l
}

// entry is a revocation without its kind and value, times in unix ns.
type entry struct {
	issuedBefore, at, expires int64
	source                    string
}

func (ly *layer) of(k Kind) *map[string]entry {
	switch k {
	case Session:
		return &ly.sid
	case Subject:
		return &ly.sub
	default:
		return &ly.jti
	}
}

// before reports whether t is before the unix time ns, for every t: t's
// UnixNano is undefined outside the years 1678 to 2262.
func before(t time.Time, ns int64) bool {
	s, ts := t.Unix(), ns/1e9
	return s < ts || s == ts && int64(t.Nanosecond()) < ns%1e9
}

func has(m map[string]entry, k string) bool {
	if len(m) == 0 {
		return false
	}
	_, ok := m[k]
	return ok
}

func (s *snapshot) lookup(k Kind, v string) (entry, bool) {
	if e, ok := (*s.delta.of(k))[v]; ok {
		return e, true
	}
	e, ok := (*s.base.of(k))[v]
	return e, ok
}

// Revoked reports whether p is revoked: its sid or jti is, or its sub is
// by a revocation whose IssuedBefore is after p's iat (or p has no iat).
// Empty claims match nothing. It implements [keygate.Revocations].
func (l *List) Revoked(p *keygate.Principal) bool {
	s := l.snap.Load()
	if s == nil {
		return false
	}
	// A layer's map is looked up only when its filter may hold the key.
	if p.SessionID != "" {
		if s.delta.may(Session, p.SessionID) && has(s.delta.sid, p.SessionID) ||
			s.base.may(Session, p.SessionID) && has(s.base.sid, p.SessionID) {
			return true
		}
	}
	if p.JWTID != "" {
		if s.delta.may(Token, p.JWTID) && has(s.delta.jti, p.JWTID) ||
			s.base.may(Token, p.JWTID) && has(s.base.jti, p.JWTID) {
			return true
		}
	}
	if p.Subject != "" {
		var e entry
		ok := false
		if s.delta.may(Subject, p.Subject) {
			e, ok = s.delta.sub[p.Subject]
		}
		if !ok && s.base.may(Subject, p.Subject) {
			e, ok = s.base.sub[p.Subject]
		}
		if ok && (p.IssuedAt.IsZero() || before(p.IssuedAt, e.issuedBefore)) {
			return true
		}
	}
	return false
}

// Revoke records r. A zero At means now, a zero IssuedBefore of a Subject
// revocation means At, a zero Expires means At plus [List.TTL]. A
// revocation that has already expired is not recorded and Revoke returns
// nil. A revocation of a key already held merges with it: the later
// IssuedBefore and Expires win, and At and Source are those of the later
// At. So replicas that receive the same revocations in any order agree.
//
// The error wraps [ErrInvalid] for a revocation List cannot hold, or is
// [ErrFull]. ctx is not used: Revoke does no I/O.
func (l *List) Revoke(ctx context.Context, r Revocation) error {
	now := l.now()
	e, err := l.entry(&r, now)
	if err != nil {
		return err
	}
	if e.expires <= now.UnixNano() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.add(r.Kind, r.Value, e, now.UnixNano())
}

// entry validates r and fills its defaults.
func (l *List) entry(r *Revocation, now time.Time) (entry, error) {
	switch r.Kind {
	case Session, Subject, Token:
	default:
		return entry{}, fmt.Errorf("%w: unknown kind %.32q", ErrInvalid, r.Kind)
	}
	if r.Value == "" {
		return entry{}, fmt.Errorf("%w: empty %s", ErrInvalid, r.Kind)
	}
	if len(r.Value) > MaxValueLen || len(r.Source) > MaxValueLen {
		return entry{}, fmt.Errorf("%w: %s value or source longer than %d bytes", ErrInvalid, r.Kind, MaxValueLen)
	}
	if r.At.IsZero() {
		r.At = now
	}
	for _, t := range [...]time.Time{r.At, r.IssuedBefore, r.Expires} {
		if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
			return entry{}, fmt.Errorf("%w: time %v out of range", ErrInvalid, t)
		}
	}
	if r.Kind == Subject && r.IssuedBefore.IsZero() {
		r.IssuedBefore = r.At
	}
	if r.Expires.IsZero() {
		ttl := l.TTL
		if ttl <= 0 {
			ttl = DefaultTTL
		}
		r.Expires = r.At.Add(ttl)
	}
	e := entry{at: r.At.UnixNano(), expires: r.Expires.UnixNano(), source: r.Source}
	if r.Kind == Subject {
		e.issuedBefore = r.IssuedBefore.UnixNano()
	}
	return e, nil
}

// The times a List holds, in unix ns, must lie between these.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// merge combines two revocations of the same key.
func merge(a, b entry) entry {
	if b.at > a.at {
		a.at, a.source = b.at, b.source
	}
	a.issuedBefore = max(a.issuedBefore, b.issuedBefore)
	a.expires = max(a.expires, b.expires)
	return a
}

// add records e under k, v; l.mu is held.
func (l *List) add(k Kind, v string, e entry, now int64) error {
	old := l.snap.Load()
	if old == nil {
		old = &snapshot{}
	}
	cur, found := old.lookup(k, v)
	if found {
		m := merge(cur, e)
		if m == cur {
			return nil
		}
		e = m
	} else if old.n >= l.max() {
		// Make room from expired entries before refusing.
		old = old.compact(now)
		l.store(old)
		if old.n >= l.max() {
			return fmt.Errorf("%w: %d revocations held", ErrFull, old.n)
		}
	}
	s := &snapshot{base: old.base, delta: old.delta, n: old.n, nd: old.nd}
	dm := s.delta.of(k)
	_, inDelta := (*dm)[v]
	m := make(map[string]entry, len(*dm)+1)
	for key, val := range *dm {
		m[key] = val
	}
	m[v] = e
	*dm = m
	s.delta.build()
	if !found {
		s.n++
	}
	if !inDelta {
		s.nd++
	}
	if s.nd >= deltaMax(s.n) {
		s = s.compact(now)
	}
	l.store(s)
	return nil
}

// deltaMax is the delta size at which it is merged into the base: about
// sqrt(2n), which balances copying the delta on every Revoke against
// copying the base on every merge. Small lists are merged every time.
func deltaMax(n int) int {
	if n < 512 {
		return 1
	}
	r := 1
	for r*r < 2*n {
		r++
	}
	return r
}

// compact returns a snapshot with delta merged into base and the entries
// expired at now dropped.
func (s *snapshot) compact(now int64) *snapshot {
	c := &snapshot{}
	for _, k := range [...]Kind{Session, Subject, Token} {
		base, delta := *s.base.of(k), *s.delta.of(k)
		m := make(map[string]entry, len(base)+len(delta))
		for v, e := range base {
			if e.expires > now {
				m[v] = e
			}
		}
		for v, e := range delta {
			if e.expires > now {
				m[v] = e
			} else {
				delete(m, v)
			}
		}
		*c.base.of(k) = m
		c.n += len(m)
	}
	c.base.build()
	return c
}

// store publishes s, or nil when it holds nothing.
func (l *List) store(s *snapshot) {
	if s.n == 0 {
		s = nil
	}
	l.snap.Store(s)
}

// Sweep drops the expired revocations and FirstUse records and merges the
// recent revocations into the base layer, in O(n). Revoke does this as it
// goes; Sweep gives memory back in quiet periods. A caller that owns a
// ticker may call it every few minutes; it is optional.
func (l *List) Sweep() {
	now := l.now().UnixNano()
	l.mu.Lock()
	if s := l.snap.Load(); s != nil {
		l.store(s.compact(now))
	}
	l.mu.Unlock()
	l.usedMu.Lock()
	l.sweepUsed(now)
	l.usedMu.Unlock()
}

// Len returns the number of revocations held, expired ones not yet
// dropped included.
func (l *List) Len() int {
	if s := l.snap.Load(); s != nil {
		return s.n
	}
	return 0
}

// List returns the revocations in force, in no particular order, with
// their defaults filled. ctx is not used.
func (l *List) List(ctx context.Context) ([]Revocation, error) {
	s := l.snap.Load()
	if s == nil {
		return nil, nil
	}
	now := l.now().UnixNano()
	out := make([]Revocation, 0, s.n)
	for _, k := range [...]Kind{Session, Subject, Token} {
		delta := *s.delta.of(k)
		add := func(v string, e entry) {
			if e.expires <= now {
				return
			}
			r := Revocation{Kind: k, Value: v, At: time.Unix(0, e.at), Expires: time.Unix(0, e.expires), Source: e.source}
			if k == Subject {
				r.IssuedBefore = time.Unix(0, e.issuedBefore)
			}
			out = append(out, r)
		}
		for v, e := range *s.base.of(k) {
			if _, ok := delta[v]; !ok {
				add(v, e)
			}
		}
		for v, e := range delta {
			add(v, e)
		}
	}
	return out, nil
}

// FirstUse records jti until until and reports whether it was not
// recorded (and unexpired) before. A jti whose until has passed is not
// recorded, and FirstUse reports true. The error wraps [ErrInvalid] for
// an empty or too long jti, or is [ErrFull] when MaxEntries records are
// held; the bool is then false. ctx is not used.
func (l *List) FirstUse(ctx context.Context, jti string, until time.Time) (bool, error) {
	if jti == "" || len(jti) > MaxValueLen {
		return false, fmt.Errorf("%w: jti empty or longer than %d bytes", ErrInvalid, MaxValueLen)
	}
	now := l.now().UnixNano()
	exp := until.UnixNano()
	l.usedMu.Lock()
	defer l.usedMu.Unlock()
	if e, ok := l.used[jti]; ok && e > now {
		return false, nil
	}
	if exp <= now {
		return true, nil
	}
	if l.used == nil {
		l.used = make(map[string]int64)
	}
	if len(l.used) >= l.usedSweep || len(l.used) >= l.max() {
		l.sweepUsed(now)
	}
	if _, ok := l.used[jti]; !ok && len(l.used) >= l.max() {
		return false, fmt.Errorf("%w: %d logout token ids held", ErrFull, len(l.used))
	}
	l.used[jti] = exp
	return true, nil
}

// sweepUsed drops the expired FirstUse records; l.usedMu is held. The
// next sweep is when the map has doubled, so the cost is amortised O(1)
// per FirstUse.
func (l *List) sweepUsed(now int64) {
	for k, e := range l.used {
		if e <= now {
			delete(l.used, k)
		}
	}
	l.usedSweep = max(1024, 2*len(l.used))
}

func (l *List) max() int {
	if l.MaxEntries > 0 {
		return l.MaxEntries
	}
	return DefaultMaxEntries
}

func (l *List) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}
