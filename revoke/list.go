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
	// [List.MaxEntries] is zero: about 200 MB with UUID-sized values
	// (measured: 212 bytes per entry, of which the value takes 36).
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
// List keeps one [sync.Map] per [Kind], whose values are immutable, and
// an atomic count of the entries. Revoked takes no lock and allocates
// nothing; an empty List answers after one atomic load. Revoke is O(1):
// a new key is stored with LoadOrStore, and a key already held is
// merged with a CompareAndSwap loop, so concurrent Revokes of the same
// key all take effect whatever their order.
//
// Expired entries are dropped lazily: when the count has doubled since
// the last sweep, when the list is full, and by [List.Sweep]. Until then
// an expired revocation may still match; by definition every token it
// matches has expired too, so this only refuses tokens the Verifier
// refuses anyway. List never returns expired entries. No goroutine is
// started; nothing needs closing.
//
// The zero List is empty and ready to use, with the defaults below. A
// List must not be copied after first use. Its methods are safe for
// concurrent use.
type List struct {
	// MaxEntries caps the revocations held, and separately the FirstUse
	// records. Zero means [DefaultMaxEntries]. When full, Revoke and
	// FirstUse return [ErrFull] (fail closed: the caller learns the
	// revocation was not recorded). The cap is exact: a new key is
	// stored only after a slot was reserved for it.
	MaxEntries int
	// TTL is how long a revocation with a zero Expires is kept after its
	// At. Zero means [DefaultTTL].
	TTL time.Duration
	// Now is the clock for expiry. Nil means time.Now.
	Now func() time.Time

	sid, sub, jti sync.Map // value → *entry
	revs          counter  // entries of sid, sub and jti

	used  sync.Map // FirstUse jti → *int64, expiry in unix ns
	nused counter
}

var _ Store = (*List)(nil)

// counter counts the entries of one or more sync.Maps against a cap. n
// is raised before a new key is stored and lowered after a key is
// deleted, so it never counts fewer entries than are held: the cap is
// exact. A Revoke or FirstUse in progress may hold a slot for a moment.
type counter struct {
	n     atomic.Int64
	sweep atomic.Int64 // sweep when n reaches this; 0 means 1024
	mu    sync.Mutex   // serialises sweeps
}

// reserve takes a slot for a new key. It first deletes expired entries
// with drop when the count has doubled since the last sweep or the cap
// is reached. It reports false, holding no slot, when the cap is
// reached even after that. A slot that ends up unused must be given
// back with n.Add(-1).
func (c *counter) reserve(limit int64, drop func() int64) bool {
	if c.due(limit) {
		c.mu.Lock()
		if c.due(limit) { // not swept by another caller meanwhile
			c.sweepLocked(drop)
		}
		c.mu.Unlock()
	}
	if c.n.Add(1) <= limit {
		return true
	}
	c.n.Add(-1)
	return false
}

func (c *counter) due(limit int64) bool {
	n := c.n.Load()
	return n >= limit || n >= max(c.sweep.Load(), 1024)
}

// sweepLocked runs drop, which returns the number of entries it
// deleted, and sets the next amortised sweep at twice the count left,
// so its cost is O(1) per new key; c.mu is held.
func (c *counter) sweepLocked(drop func() int64) {
	c.n.Add(-drop())
	c.sweep.Store(2 * c.n.Load())
}

// sweepWith runs drop under c.mu; see sweepLocked.
func (c *counter) sweepWith(drop func() int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(drop)
}

// entry is a revocation without its kind and value, times in unix ns.
type entry struct {
	issuedBefore, at, expires int64
	source                    string
}

func (l *List) of(k Kind) *sync.Map {
	switch k {
	case Session:
		return &l.sid
	case Subject:
		return &l.sub
	default:
		return &l.jti
	}
}

// before reports whether t is before the unix time ns, for every t: t's
// UnixNano is undefined outside the years 1678 to 2262.
func before(t time.Time, ns int64) bool {
	s, ts := t.Unix(), ns/1e9
	return s < ts || s == ts && int64(t.Nanosecond()) < ns%1e9
}

// Revoked reports whether p is revoked: its sid or jti is, or its sub is
// by a revocation whose IssuedBefore is after p's iat (or p has no iat).
// Empty claims match nothing. It implements [keygate.Revocations].
func (l *List) Revoked(p *keygate.Principal) bool {
	if l.revs.n.Load() == 0 {
		return false
	}
	if p.SessionID != "" {
		if _, ok := l.sid.Load(p.SessionID); ok {
			return true
		}
	}
	if p.JWTID != "" {
		if _, ok := l.jti.Load(p.JWTID); ok {
			return true
		}
	}
	if p.Subject != "" {
		if v, ok := l.sub.Load(p.Subject); ok {
			e := v.(*entry)
			return p.IssuedAt.IsZero() || before(p.IssuedAt, e.issuedBefore)
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

// merge combines two revocations of the same key. It is commutative and
// associative, so the result does not depend on the order revocations
// arrive in: a tie on At goes to the greater Source.
func merge(a, b entry) entry {
	if b.at > a.at || b.at == a.at && b.source > a.source {
		a.at, a.source = b.at, b.source
	}
	a.issuedBefore = max(a.issuedBefore, b.issuedBefore)
	a.expires = max(a.expires, b.expires)
	return a
}

// add records e under k, v.
func (l *List) add(k Kind, v string, e entry, now int64) error {
	m := l.of(k)
	for {
		if cur, ok := m.Load(v); ok {
			old := cur.(*entry)
			merged := merge(*old, e)
			if merged == *old || m.CompareAndSwap(v, cur, &merged) {
				return nil
			}
			continue // changed or deleted meanwhile: merge again
		}
		if !l.revs.reserve(int64(l.max()), func() int64 { return l.dropRevs(now) }) {
			return fmt.Errorf("%w: %d revocations held", ErrFull, l.revs.n.Load())
		}
		if _, loaded := m.LoadOrStore(v, &e); !loaded {
			return nil
		}
		l.revs.n.Add(-1) // stored by another Revoke meanwhile: merge with it
	}
}

// dropRevs deletes the revocations expired at now and returns how many.
// An entry replaced meanwhile by a merge is kept: CompareAndDelete fails.
func (l *List) dropRevs(now int64) int64 {
	var n int64
	for _, m := range [...]*sync.Map{&l.sid, &l.sub, &l.jti} {
		m.Range(func(k, v any) bool {
			if v.(*entry).expires <= now && m.CompareAndDelete(k, v) {
				n++
			}
			return true
		})
	}
	return n
}

// dropUsed deletes the FirstUse records expired at now and returns how
// many.
func (l *List) dropUsed(now int64) int64 {
	var n int64
	l.used.Range(func(k, v any) bool {
		if *v.(*int64) <= now && l.used.CompareAndDelete(k, v) {
			n++
		}
		return true
	})
	return n
}

// Sweep drops the expired revocations and FirstUse records, in O(n).
// Revoke and FirstUse do this as they go, amortised; Sweep gives memory
// back in quiet periods. A caller that owns a ticker may call it every
// few minutes; it is optional.
func (l *List) Sweep() {
	now := l.now().UnixNano()
	l.revs.sweepWith(func() int64 { return l.dropRevs(now) })
	l.nused.sweepWith(func() int64 { return l.dropUsed(now) })
}

// Len returns the number of revocations held, expired ones not yet
// dropped included. While a Revoke of a new key is in progress it may
// count that key already.
func (l *List) Len() int {
	return int(l.revs.n.Load())
}

// List returns the revocations in force, in no particular order, with
// their defaults filled. A Revoke concurrent with List may or may not be
// included. ctx is not used.
func (l *List) List(ctx context.Context) ([]Revocation, error) {
	n := l.revs.n.Load()
	if n == 0 {
		return nil, nil
	}
	now := l.now().UnixNano()
	out := make([]Revocation, 0, n)
	for _, k := range [...]Kind{Session, Subject, Token} {
		l.of(k).Range(func(key, val any) bool {
			e := val.(*entry)
			if e.expires <= now {
				return true
			}
			r := Revocation{Kind: k, Value: key.(string), At: time.Unix(0, e.at), Expires: time.Unix(0, e.expires), Source: e.source}
			if k == Subject {
				r.IssuedBefore = time.Unix(0, e.issuedBefore)
			}
			out = append(out, r)
			return true
		})
	}
	return out, nil
}

// FirstUse records jti until until and reports whether it was not
// recorded (and unexpired) before. A jti whose until has passed is not
// recorded, and FirstUse reports true. Of concurrent calls with the same
// jti, exactly one reports true. The error wraps [ErrInvalid] for an
// empty or too long jti, or is [ErrFull] when MaxEntries records are
// held; the bool is then false. ctx is not used.
func (l *List) FirstUse(ctx context.Context, jti string, until time.Time) (bool, error) {
	if jti == "" || len(jti) > MaxValueLen {
		return false, fmt.Errorf("%w: jti empty or longer than %d bytes", ErrInvalid, MaxValueLen)
	}
	now := l.now().UnixNano()
	exp := until.UnixNano()
	for {
		cur, ok := l.used.Load(jti)
		if ok && *cur.(*int64) > now {
			return false, nil
		}
		if exp <= now {
			return true, nil
		}
		if ok {
			// Expired record: take it over, unless another call did.
			if l.used.CompareAndSwap(jti, cur, &exp) {
				return true, nil
			}
			continue
		}
		if !l.nused.reserve(int64(l.max()), func() int64 { return l.dropUsed(now) }) {
			return false, fmt.Errorf("%w: %d logout token ids held", ErrFull, l.nused.n.Load())
		}
		if _, loaded := l.used.LoadOrStore(jti, &exp); !loaded {
			return true, nil
		}
		l.nused.n.Add(-1)
	}
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
