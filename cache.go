package keygate

import (
	"context"
	"crypto"
	"crypto/sha256"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/keygate/keygate/jwks"
)

// cacheShards spreads the verified-token cache over independent locks, so
// that concurrent hits never queue behind one lock. The bounds are global
// (see cache), so the number of shards does not change how many entries
// the cache holds.
const cacheShards = 64

// tokenKey is the cache's key for a token: the SHA-256 digest of the whole
// compact token. It stands for the token without holding it, 32 bytes
// instead of the token's ~1 KiB (about half of what a Keycloak token's
// entry held), and SHA-256's collision resistance makes it as good as the
// token itself: no string other than the token that verified has its
// key, so a hit is that token again. A keyed non-cryptographic hash
// would not do: a cache hit answers for an identity.
type tokenKey [sha256.Size]byte

// keyOf returns raw's tokenKey. The hash reads raw's bytes in place;
// sha256.Sum256 neither keeps nor changes its argument.
func keyOf(raw string) tokenKey {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

// freeAdmit is how many tokens a cache holds at least before it admits
// new ones only on their second sighting (see cache.put): a verifier that
// serves fewer distinct tokens at a time answers each from the cache from
// its second request on. A cache of more than 8*freeAdmit entries admits
// an eighth of them freely.
const freeAdmit = 512

// evictSample is how many entries of a shard an eviction looks at: it
// drops the first expired one among them, or else the first it saw.
const evictSample = 8

// cache maps whole tokens to the principals they verified to. An entry
// ends at the token's exp, or as soon as the key set no longer returns the
// key that verified it: every hit asks the KeySet for the token's kid
// again (see [KeySet]), so removing a key works for every implementation,
// not only for a [jwks.Source] that marks its keys retired.
//
// It is bounded twice, by entry count and by estimated bytes (see
// entryCost), and both bounds are exact: n and bytes count the entries
// held plus those being added, and put adds an entry only after evicting
// until both counters are within their limits. So the entries held never
// exceed either limit, however many goroutines add at once.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]shard

	maxEntries int64
	maxBytes   int64
	free       int64    // entries below which every verified token is admitted
	_          [64]byte // keep the counters below off the cache line of the fields above
	n          atomic.Int64
	bytes      atomic.Int64
	evictions  atomic.Uint64
	rejected   atomic.Uint64 // not admitted, see doorkeeper

	door doorkeeper
}

// doorkeeper remembers, approximately, which tokens the cache has turned
// away once, so that it admits such a token only on its second sighting
// (TinyLFU's doorkeeper). A token seen once costs a full verification
// either way; caching it costs memory (and, in a full cache, an eviction)
// for nothing if it never comes back. A token is admitted if it was
// turned away before within the window: the last len(bits)*64/32 tokens
// turned away, at least the cache's entry capacity. A token that comes
// back later than that would have been evicted before its return anyway.
//
// It is a Bloom filter of four bits per token, taken from the token's
// maphash by double hashing, in 32 bits per remembered token: a token it
// never saw passes for seen about once in 5,000 (0.02%, 0.2% just before
// a clear), which admits it. The rate matters for a cache with room, where
// such a token is added without evicting anything: with 8 bits and 2 hashes
// a token (about 2%), tokens seen once filled the cache within a few
// passes. It is cleared after window insertions. Lookups and insertions
// are atomic and do not allocate; a clear that races an insertion may
// forget it, which costs that token one more verification.
type doorkeeper struct {
	bits   []atomic.Uint64
	mask   uint64 // bit index mask: len(bits)*64 - 1
	window int64
	added  atomic.Int64
}

// doorBits is the doorkeeper's bits per remembered token and doorProbes
// the bits it sets per token.
const (
	doorBits   = 32
	doorProbes = 4
)

func newDoorkeeper(entries int) doorkeeper {
	nbits := uint64(1 << 14)
	for nbits < doorBits*uint64(entries) && nbits < 1<<26 {
		nbits <<= 1
	}
	return doorkeeper{bits: make([]atomic.Uint64, nbits/64), mask: nbits - 1, window: int64(nbits / doorBits)}
}

// seen reports whether h was recorded in this window, and records it.
func (d *doorkeeper) seen(h uint64) bool {
	// Double hashing (Kirsch and Mitzenmacher): probe i is g + i*step.
	// A multiplication carries low bits up, never high bits down: the
	// bits of g the mask keeps are a bijection of the same bits of h, and
	// step, g's high half, mixes the lower half of h. step is odd, so a
	// token's probes are distinct.
	g := h * 0x9e3779b97f4a7c15
	step := (g>>32 | h<<32) | 1
	var idx [doorProbes]uint64
	all := true
	for i := range idx {
		idx[i] = (g + uint64(i)*step) & d.mask
		if all && d.bits[idx[i]/64].Load()&(1<<(idx[i]%64)) == 0 {
			all = false
		}
	}
	if all {
		return true
	}
	for _, i := range idx {
		d.bits[i/64].Or(1 << (i % 64))
	}
	if d.added.Add(1) >= d.window {
		d.added.Store(0)
		for k := range d.bits {
			d.bits[k].Store(0)
		}
	}
	return false
}

type shard struct {
	mu     sync.RWMutex
	m      map[tokenKey]*entry
	hits   atomic.Uint64
	misses atomic.Uint64
	_      [80]byte // 128 bytes a shard: no two share a cache line pair
}

type entry struct {
	p    *Principal
	kid  string
	key  *jwks.Key
	exp  int64 // unix nanoseconds
	cost int64 // bytes, see entryCost
}

func newCache(entries, bytes int) *cache {
	c := &cache{seed: maphash.MakeSeed(), maxEntries: int64(entries), maxBytes: int64(bytes), door: newDoorkeeper(entries)}
	c.free = min(c.maxEntries, max(c.maxEntries/8, freeAdmit))
	for i := range c.shards {
		c.shards[i].m = make(map[tokenKey]*entry)
	}
	return c
}

// hash returns the cache's seeded hash of k, which picks its shard and its
// doorkeeper bits: seeded, so that the token's digest alone does not tell
// where it lands.
func (c *cache) hash(k *tokenKey) uint64 {
	return maphash.Bytes(c.seed, k[:])
}

func (c *cache) index(k *tokenKey) int {
	return int(c.hash(k) % cacheShards)
}

// get returns the cached principal of the token whose key is k, or nil.
// An entry counts only while it has not expired and keys still returns
// its key for its kid; otherwise it is dropped and get reports a miss.
func (c *cache) get(ctx context.Context, k *tokenKey, now time.Time, keys KeySet) *Principal {
	s := &c.shards[c.index(k)]
	s.mu.RLock()
	e := s.m[*k]
	s.mu.RUnlock()
	if e == nil {
		s.misses.Add(1)
		return nil
	}
	if now.UnixNano() >= e.exp || e.key.Retired() || !stillServed(ctx, keys, e) {
		s.mu.Lock()
		if s.m[*k] == e {
			c.removeLocked(s, *k, e)
		}
		s.mu.Unlock()
		s.misses.Add(1)
		return nil
	}
	s.hits.Add(1)
	return e.p
}

// stillServed reports whether keys returns e's key for e's kid: the same
// *jwks.Key, or one with the same algorithm and an equal public key (for
// key sets that build a new Key on each call).
func stillServed(ctx context.Context, keys KeySet, e *entry) bool {
	k, err := keys.Key(ctx, e.kid)
	if err != nil || k == nil || k.Public == nil {
		return false
	}
	if k == e.key {
		return true
	}
	pub, ok := k.Public.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Algorithm == e.key.Algorithm && pub.Equal(e.key.Public)
}

// put caches p for the token whose key is k, evicting entries until both bounds hold. An entry
// that alone costs more than the byte bound is not cached.
//
// Admission: while the cache holds fewer than c.free entries and has room,
// it admits every token. Beyond that, it admits a token only on its
// second sighting (the doorkeeper saw it turned away before), or, when
// full, in place of an entry of its home shard that has ended (expired,
// or its key retired); otherwise put counts it as rejected. So tokens
// seen once fill at most c.free entries of the cache, not all of it. A
// token the cache already holds, live, is left as it is: nothing is
// evicted for it (two puts of one token that race past that check may
// still each reserve room).
func (c *cache) put(k *tokenKey, p *Principal, kid string, key *jwks.Key, exp, at time.Time, cost int64) {
	if cost > c.maxBytes {
		return
	}
	h := c.hash(k)
	home := int(h % cacheShards)
	now := at.UnixNano()
	s := &c.shards[home]
	s.mu.RLock()
	held := s.m[*k]
	s.mu.RUnlock()
	if held != nil && now < held.exp && !held.key.Retired() {
		// Another request with the token verified it and cached it first (a
		// client sending one new token on several requests at once):
		// there is nothing to add, and reserving room would evict some
		// other token's entry for nothing.
		return
	}
	n, full := c.n.Load(), c.bytes.Load()+cost > c.maxBytes
	full = full || n >= c.maxEntries
	if full || n >= c.free {
		if !(full && c.evictEnded(home, now)) && !c.door.seen(h) {
			c.rejected.Add(1)
			return
		}
	}
	// Reserve room first, then evict until the reservation fits: see cache.
	c.n.Add(1)
	c.bytes.Add(cost)
	for c.n.Load() > c.maxEntries || c.bytes.Load() > c.maxBytes {
		if !c.evict(home, now) {
			// Everything left is reserved by other puts: give way.
			c.n.Add(-1)
			c.bytes.Add(-cost)
			return
		}
	}
	s.mu.Lock()
	if old := s.m[*k]; old != nil {
		c.removeLocked(s, *k, old)
	}
	s.m[*k] = &entry{p: p, kid: kid, key: key, exp: exp.UnixNano(), cost: cost}
	s.mu.Unlock()
}

// evict drops one entry, from shard home if it holds any, else from the
// next shard that does. Among up to evictSample entries of that shard it
// prefers one that has expired or whose key retired. It reports false when
// every shard is empty.
func (c *cache) evict(home int, now int64) bool {
	for i := range cacheShards {
		s := &c.shards[(home+i)%cacheShards]
		s.mu.Lock()
		var (
			victim tokenKey
			ve     *entry
			seen   int
		)
		for k, e := range s.m { // map iteration starts at a random entry
			ended := now >= e.exp || e.key.Retired()
			if ve == nil || ended {
				victim, ve = k, e
			}
			if seen++; ended || seen == evictSample {
				break
			}
		}
		if ve != nil {
			c.removeLocked(s, victim, ve)
			s.mu.Unlock()
			c.evictions.Add(1)
			return true
		}
		s.mu.Unlock()
	}
	return false
}

// evictEnded drops one entry of shard home that has expired or whose key
// retired, among up to evictSample, and reports whether it found one.
func (c *cache) evictEnded(home int, now int64) bool {
	s := &c.shards[home]
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := 0
	for k, e := range s.m {
		if now >= e.exp || e.key.Retired() {
			c.removeLocked(s, k, e)
			return true
		}
		if seen++; seen == evictSample {
			break
		}
	}
	return false
}

// removeLocked deletes k's entry e from s, whose lock the caller holds.
func (c *cache) removeLocked(s *shard, k tokenKey, e *entry) {
	delete(s.m, k)
	c.n.Add(-1)
	c.bytes.Add(-e.cost)
}

// stats sums the shards' counters.
func (c *cache) stats() (st CacheStats) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		st.Size += len(s.m)
		s.mu.RUnlock()
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
	}
	st.Capacity = int(c.maxEntries)
	st.Bytes = c.bytes.Load()
	st.ByteCapacity = c.maxBytes
	st.Evictions = c.evictions.Load()
	st.Rejected = c.rejected.Load()
	return st
}

// Fixed parts of an entry's cost, in bytes, for a 64-bit platform. They
// are estimates of what the Go runtime allocates, rounded up.
const (
	// costEntry covers the cache's map slot (a tokenKey and a pointer,
	// with the control byte and the slack of a map that grows by doubling),
	// the entry itself and the Principal struct.
	costEntry = 2*(int64(unsafe.Sizeof(tokenKey{}))+8) + int64(unsafe.Sizeof(entry{})) + int64(unsafe.Sizeof(principalAlloc{}))
	// costString is a string header in a slice.
	costString = int64(unsafe.Sizeof(""))
	// costClaim is the allocation rounding of the two copies (name and
	// value) that the claims map of [Principal.Claim] makes of a member.
	costClaim = 32
)

// mapCost estimates a map[string]T of n members, T a slice: its header and
// groups of 8 slots (a 16-byte key and a 24-byte value each, plus a
// control word), at most 7/8 full.
func mapCost(n int) int64 {
	groups := (int64(n)*8/7 + 7) / 8
	return 48 + groups*(8+8*(16+24))
}

// entryCost estimates the memory a cached token pins: its key (see
// costEntry; not the token itself), the decoded payload (which the principal keeps for
// [Principal.Claim]), every string of the principal that is not a
// substring of the payload, the backing arrays of its slices and map, and
// the claims map [Principal.Claim] builds from the payload on first use:
// a copy of every member's name and value, so up to the payload's length
// again, plus the map's own slots (members is their count). The estimate
// errs on the high side: it charges the claims map whether or not Claim is
// ever called. TestCacheCostEstimate checks it against the heap.
func entryCost(p *Principal, members int) int64 {
	var whole string // the payload, which the principal's strings point into
	if p.claims != nil {
		whole = p.claims.payload
	}
	payload := len(whole)
	own := func(s string) int64 { // bytes of s not already counted in the payload
		if inside(s, whole) {
			return 0
		}
		return int64(len(s))
	}
	list := func(l []string) int64 {
		n := int64(cap(l)) * costString
		for _, s := range l {
			n += own(s)
		}
		return n
	}
	// The payload and the claims map's copy of it, plus 1/8 for the
	// rounding of allocations to the runtime's size classes.
	n := costEntry + 2*int64(payload)*9/8 + mapCost(members) + int64(members)*costClaim
	for _, s := range [...]string{p.Subject, p.Username, p.Email, p.Name, p.GivenName, p.FamilyName,
		p.Client, p.SessionID, p.JWTID, p.Issuer, p.scopePrefix, p.rolePrefix} {
		n += own(s)
	}
	n += list(p.Audience) + list(p.RealmRoles) + list(p.Scopes) + list(p.Groups) + list(p.RolesClaim) + list(p.Entitlements)
	if len(p.Roles) > 0 && (len(p.RealmRoles) == 0 || unsafe.SliceData(p.Roles) != unsafe.SliceData(p.RealmRoles)) {
		n += list(p.Roles)
	}
	if p.ClientRoles != nil {
		n += mapCost(len(p.ClientRoles))
	}
	for c, r := range p.ClientRoles {
		n += own(c) + list(r)
	}
	return n
}

// inside reports whether s lies within the memory of whole.
func inside(s, whole string) bool {
	if len(s) == 0 {
		return true
	}
	if len(whole) == 0 {
		return false
	}
	p, w := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(whole)))
	return p >= w && p+uintptr(len(s)) <= w+uintptr(len(whole))
}

// CacheStats describes the verified-token cache, for metrics. Its figures
// are read shard by shard, without stopping concurrent use, so they are
// each exact but not a snapshot of one instant.
type CacheStats struct {
	// Hits and Misses count lookups since the verifier was made. A miss is
	// a token verified in full.
	Hits, Misses uint64
	// Size is the number of tokens held; Capacity the most it holds
	// ([Config.CacheSize]).
	Size, Capacity int
	// Bytes is the estimated memory the held tokens pin, in bytes, counting
	// tokens being added at that moment; ByteCapacity is the most it holds
	// ([Config.CacheBytes]). See Config.CacheBytes for what an entry is
	// charged.
	Bytes, ByteCapacity int64
	// Evictions counts entries dropped to make room for new ones, since
	// the verifier was made. Entries that ended at their exp or with their
	// key and were found so on lookup are not counted.
	Evictions uint64
	// Rejected counts verified tokens the cache did not admit, since the
	// verifier was made. Past its first share of tokens (see
	// [Config.CacheSize]), the cache admits a token on the token's second
	// verification within about Capacity rejections, or, when full, in
	// place of an ended entry: a token seen once is not worth the memory
	// or an eviction. Each rejected token is also a miss.
	Rejected uint64
}
