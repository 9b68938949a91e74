package keygate

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/jwks"
)

// cacheShards spreads the verified-token cache over independent locks, so
// that concurrent hits never queue behind one lock.
const cacheShards = 64

// cache maps whole tokens to the principals they verified to. An entry
// ends at the token's exp or when its key retires, whichever comes first.
// A full shard drops its expired entries, then a random one.
type cache struct {
	seed   maphash.Seed
	limit  int // entries per shard
	shards [cacheShards]shard
}

type shard struct {
	mu     sync.RWMutex
	m      map[string]*entry
	hits   atomic.Uint64
	misses atomic.Uint64
	_      [80]byte // 128 bytes a shard: no two share a cache line pair
}

type entry struct {
	p   *Principal
	key *jwks.Key
	exp int64 // unix nanoseconds
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), limit: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	return c
}

func (c *cache) shard(raw string) *shard {
	return &c.shards[maphash.String(c.seed, raw)%cacheShards]
}

// get returns the cached principal of raw, or nil.
func (c *cache) get(raw string, now time.Time) *Principal {
	s := c.shard(raw)
	s.mu.RLock()
	e := s.m[raw]
	s.mu.RUnlock()
	if e == nil {
		s.misses.Add(1)
		return nil
	}
	if now.UnixNano() >= e.exp || e.key.Retired() {
		s.mu.Lock()
		if s.m[raw] == e {
			delete(s.m, raw)
		}
		s.mu.Unlock()
		s.misses.Add(1)
		return nil
	}
	s.hits.Add(1)
	return e.p
}

func (c *cache) put(raw string, p *Principal, key *jwks.Key, exp, at time.Time) {
	s := c.shard(raw)
	now := at.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.limit {
		for k, e := range s.m {
			if now >= e.exp || e.key.Retired() {
				delete(s.m, k)
			}
		}
		for k := range s.m {
			if len(s.m) < c.limit {
				break
			}
			delete(s.m, k) // map iteration starts at a random entry
		}
	}
	s.m[raw] = &entry{p: p, key: key, exp: exp.UnixNano()}
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
	st.Capacity = c.limit * cacheShards
	return st
}

// CacheStats describes the verified-token cache, for metrics.
type CacheStats struct {
	// Hits and Misses count lookups since the verifier was made. A miss is
	// a token verified in full.
	Hits, Misses uint64
	// Size is the number of tokens held; Capacity the most it holds.
	Size, Capacity int
}
