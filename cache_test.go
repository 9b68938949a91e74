package keygate

import (
	"context"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/jwks"
)

// check verifies the cache's books: the counters equal what the shards
// hold, and neither bound is exceeded.
func (c *cache) check(t *testing.T) {
	t.Helper()
	var n, bytes int64
	for i := range c.shards {
		for _, e := range c.shards[i].m {
			n++
			bytes += e.cost
		}
	}
	if n != c.n.Load() || bytes != c.bytes.Load() {
		t.Errorf("cache counts %d entries, %d bytes; shards hold %d, %d", c.n.Load(), c.bytes.Load(), n, bytes)
	}
	if n > c.maxEntries || bytes > c.maxBytes {
		t.Errorf("cache holds %d entries, %d bytes; limits %d, %d", n, bytes, c.maxEntries, c.maxBytes)
	}
}

func TestCacheBounds(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	key := &jwks.Key{ID: "k"}
	tests := []struct {
		name              string
		entries, bytes    int
		cost              func(i int) int64
		wantSize          int // after adding 1000 tokens from 8 goroutines
		wantMin, wantMost int
	}{
		{"count 1", 1, 1 << 30, func(int) int64 { return 100 }, 1, 1, 1},
		{"count 10", 10, 1 << 30, func(int) int64 { return 100 }, 10, 10, 10},
		{"count 100", 100, 1 << 30, func(int) int64 { return 100 }, 100, 100, 100},
		{"bytes", 1 << 20, 10_000, func(i int) int64 { return int64(100 + i%400) }, -1, 20, 100},
		{"too big alone", 10, 1000, func(int) int64 { return 1001 }, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(tt.entries, tt.bytes)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 125 {
						n := g*125 + i
						c.put(kp("tok"+strconv.Itoa(n)), &Principal{}, "k", key, exp, time.Now(), tt.cost(n))
					}
				})
			}
			wg.Wait()
			c.check(t)
			st := c.stats()
			if tt.wantSize >= 0 && st.Size != tt.wantSize {
				t.Errorf("Size = %d; want %d", st.Size, tt.wantSize)
			}
			if st.Size < tt.wantMin || st.Size > tt.wantMost {
				t.Errorf("Size = %d; want %d to %d", st.Size, tt.wantMin, tt.wantMost)
			}
			if st.Capacity != tt.entries || st.ByteCapacity != int64(tt.bytes) {
				t.Errorf("Capacity, ByteCapacity = %d, %d; want %d, %d", st.Capacity, st.ByteCapacity, tt.entries, tt.bytes)
			}
		})
	}
}

// TestCacheBoundsUnderChurn adds, replaces and looks up tokens from many
// goroutines at once, then checks the books.
func TestCacheBoundsUnderChurn(t *testing.T) {
	c := newCache(50, 20_000)
	now := time.Now()
	key := &jwks.Key{ID: "k"}
	keys := jwks.StaticSet(key)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				raw := "tok" + strconv.Itoa((g*7919+i)%300)
				exp := now.Add(time.Duration(i%5-1) * time.Second) // some already expired
				if c.get(context.Background(), kp(raw), now, keys) == nil {
					c.put(kp(raw), &Principal{}, "k", key, exp, now, int64(200+i%600))
				}
			}
		})
	}
	wg.Wait()
	c.check(t)
}

func TestCacheEvictsEndedFirst(t *testing.T) {
	c := newCache(8, 1<<20)
	now := time.Now()
	key := &jwks.Key{ID: "k"}
	// One shard's worth: the eviction looks at the home shard first.
	var toks []string
	for i := 0; len(toks) < 9; i++ {
		raw := "tok" + strconv.Itoa(i)
		if c.index(kp(raw)) == c.index(kp("tok0")) {
			toks = append(toks, raw)
		}
	}
	for i, raw := range toks[:8] {
		exp := now.Add(time.Hour)
		if i == 3 {
			exp = now.Add(-time.Second)
		}
		c.put(kp(raw), &Principal{}, "k", key, exp, now, 10)
	}
	c.put(kp(toks[8]), &Principal{}, "k", key, now.Add(time.Hour), now, 10)
	s := &c.shards[c.index(kp("tok0"))]
	if _, ok := s.m[keyOf(toks[3])]; ok {
		t.Errorf("the expired entry survived; a live one was evicted")
	}
	if len(s.m) != 8 {
		t.Errorf("shard holds %d entries; want 8", len(s.m))
	}
}

func TestQuote(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes; a cut at 64 falls on a rune boundary
	tests := []struct{ in, want string }{
		{"", `""`},
		{"RS256", `"RS256"`},
		{strings.Repeat("a", 64), `"` + strings.Repeat("a", 64) + `"`},
		{strings.Repeat("a", 11000), `"` + strings.Repeat("a", 64) + `"…(11000 bytes)`},
		{"a" + long, `"a` + strings.Repeat("é", 31) + `"…(201 bytes)`},
	}
	for _, tt := range tests {
		if got := quote(tt.in); got != tt.want {
			t.Errorf("quote(%.20q...) = %s; want %s", tt.in, got, tt.want)
		}
	}
	if got, want := quoteList([]string{"a", "b", "c", "d", "e", "f"}), `["a" "b" "c" "d" ... and 2 more]`; got != want {
		t.Errorf("quoteList() = %s; want %s", got, want)
	}
}

// BenchmarkCache measures the cache alone: "hit" looks up one of 4096
// held tokens from every goroutine; "put-full" adds to a full cache, so
// each put evicts one entry.
func BenchmarkCache(b *testing.B) {
	now := time.Now()
	exp := now.Add(time.Hour)
	key := &jwks.Key{ID: "k"}
	keys := jwks.StaticSet(key)
	toks := make([]string, 8192)
	for i := range toks {
		toks[i] = strings.Repeat("x", 900) + strconv.Itoa(i)
	}
	b.Run("hit", func(b *testing.B) {
		c := newCache(DefaultCacheSize, DefaultCacheBytes)
		for _, raw := range toks[:4096] {
			c.put(kp(raw), &Principal{}, "k", key, exp, now, 3000)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if c.get(context.Background(), kp(toks[i%4096]), now, keys) == nil {
					b.Fatal("miss")
				}
				i++
			}
		})
	})
	b.Run("put-full", func(b *testing.B) {
		c := newCache(DefaultCacheSize, DefaultCacheBytes)
		p := &Principal{}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.put(kp(toks[i%len(toks)]), p, "k", key, exp, now, 3000)
			i++
		}
	})
}

// TestCacheAdmission fills a cache, then offers it tokens seen once:
// they are turned away (but for the doorkeeper's rare false positive),
// the books stay exact, and the same tokens seen again are admitted.
// Turning a token away allocates nothing.
func TestCacheAdmission(t *testing.T) {
	c := newCache(10, 1<<30)
	now := time.Now()
	exp := now.Add(time.Hour)
	key := &jwks.Key{ID: "k"}
	toks := make([]string, 110)
	for i := range toks {
		toks[i] = "tok" + strconv.Itoa(i)
	}
	for _, raw := range toks[:10] {
		c.put(kp(raw), &Principal{}, "k", key, exp, now, 100)
	}
	if st := c.stats(); st.Size != 10 || st.Rejected != 0 || st.Evictions != 0 {
		t.Fatalf("after 10 tokens stats() = %+v; want 10 held, none rejected", st)
	}
	for _, raw := range toks[10:] {
		c.put(kp(raw), &Principal{}, "k", key, exp, now, 100)
	}
	st := c.stats()
	if st.Size != 10 || st.Evictions+st.Rejected != 100 || st.Rejected < 50 {
		t.Errorf("after 100 more tokens seen once stats() = %+v; want 10 held, 100 evicted or rejected, mostly rejected", st)
	}
	for _, raw := range toks[10:] {
		c.put(kp(raw), &Principal{}, "k", key, exp, now, 100)
	}
	if st2 := c.stats(); st2.Rejected != st.Rejected || st2.Size != 10 {
		t.Errorf("after a second sighting stats() = %+v; want none more rejected", st2)
	}
	c.check(t)

	fresh := make([]string, 200)
	for i := range fresh {
		fresh[i] = "new" + strconv.Itoa(i)
	}
	p := &Principal{}
	i := 0
	if n := testing.AllocsPerRun(100, func() {
		c.put(kp(fresh[i%len(fresh)]), p, "k", key, exp, now, 100)
		i++
	}); n > 0.5 {
		t.Errorf("put of a rejected token allocates %v times; want 0", n)
	}
}

// TestCacheAdmitsOverEnded checks that a full cache admits a token seen
// once when an ended entry of its home shard makes room.
func TestCacheAdmitsOverEnded(t *testing.T) {
	c := newCache(1, 1<<30)
	now := time.Now()
	key := &jwks.Key{ID: "k"}
	var a, b string
	for i := 0; b == ""; i++ {
		raw := "tok" + strconv.Itoa(i)
		switch {
		case a == "":
			a = raw
		case c.index(kp(raw)) == c.index(kp(a)):
			b = raw
		}
	}
	c.put(kp(a), &Principal{}, "k", key, now.Add(-time.Second), now, 10)
	c.put(kp(b), &Principal{}, "k", key, now.Add(time.Hour), now, 10)
	if st := c.stats(); st.Size != 1 || st.Rejected != 0 {
		t.Errorf("stats() = %+v; want the new token in place of the expired one", st)
	}
	if _, ok := c.shards[c.index(kp(b))].m[keyOf(b)]; !ok {
		t.Errorf("the new token was not admitted")
	}
}

// TestCacheSeenOnce offers a large cache 20,000 tokens seen once each,
// as make bench-proxy's distinct-token case does: they fill only its
// free-admission share (cache.free, 512 of 4,096), not the whole cache,
// so they do not pin its whole memory budget. Seen again, they are
// admitted.
func TestCacheSeenOnce(t *testing.T) {
	c := newCache(DefaultCacheSize, 1<<30)
	now := time.Now()
	exp := now.Add(time.Hour)
	key := &jwks.Key{ID: "k"}
	p := &Principal{}
	toks := make([]string, 20000)
	for i := range toks {
		toks[i] = "tok" + strconv.Itoa(i)
		c.put(kp(toks[i]), p, "k", key, exp, now, 100)
	}
	c.check(t)
	st := c.stats()
	// The doorkeeper's false positives admit a few more (about 0.02%).
	if st.Size < int(c.free) || st.Size > int(c.free)+40 || st.Rejected < 19000 {
		t.Errorf("after 20000 tokens seen once stats() = %+v; want %d to %d held, the rest rejected", st, c.free, c.free+40)
	}
	for _, raw := range toks[len(toks)-3000:] {
		c.put(kp(raw), p, "k", key, exp, now, 100)
	}
	c.check(t)
	if st2 := c.stats(); st2.Size < st.Size+2900 || st2.Rejected != st.Rejected {
		t.Errorf("after 3000 of them seen again stats() = %+v; want them admitted (%d held before)", st2, st.Size)
	}
}

func TestCacheFreeAdmission(t *testing.T) {
	for _, tt := range []struct{ entries, want int64 }{
		{1, 1}, {100, 100}, {512, 512}, {DefaultCacheSize, 512}, {8192, 1024}, {1 << 20, 1 << 17},
	} {
		if got := newCache(int(tt.entries), 1<<20).free; got != tt.want {
			t.Errorf("newCache(%d, _).free = %d; want %d", tt.entries, got, tt.want)
		}
	}
}

// TestDoorkeeperFalsePositives counts the tokens never seen that the
// doorkeeper takes for seen, over several of its windows. Each one is
// admitted to a cache with room, so the rate bounds how fast tokens seen
// once fill the cache past its free-admission share.
func TestDoorkeeperFalsePositives(t *testing.T) {
	seed := maphash.MakeSeed()
	for _, entries := range []int{1, 128, DefaultCacheSize, 100_000} {
		d := newDoorkeeper(entries)
		n := 4 * int(d.window)
		fp := 0
		for i := range n {
			if d.seen(maphash.String(seed, "tok"+strconv.Itoa(i))) {
				fp++
			}
		}
		if rate := float64(fp) / float64(n); rate > 0.001 {
			t.Errorf("newDoorkeeper(%d): %d of %d tokens never seen passed for seen (%.3f%%); want at most 0.1%%", entries, fp, n, 100*rate)
		}
		if d.window < int64(entries) {
			t.Errorf("newDoorkeeper(%d).window = %d; want at least the cache's capacity", entries, d.window)
		}
	}
}

// TestCachePutHeld offers a full cache a token it already holds, as
// concurrent requests with one new token do: each verifies the token and
// puts it after the first put cached it. Such a put has nothing to add,
// so it must not evict another caller's entry. The tokens share a shard,
// where an eviction looks first.
func TestCachePutHeld(t *testing.T) {
	c := newCache(10, 1<<30)
	now := time.Now()
	exp := now.Add(time.Hour)
	key := &jwks.Key{ID: "k"}
	var toks []string
	for i := 0; len(toks) < 10; i++ {
		if raw := "tok" + strconv.Itoa(i); c.index(kp(raw)) == c.index(kp("tok0")) {
			toks = append(toks, raw)
		}
	}
	for _, raw := range toks {
		c.put(kp(raw), &Principal{}, "k", key, exp, now, 100)
	}
	for range 5 { // the doorkeeper admits from the second put on
		c.put(kp(toks[0]), &Principal{}, "k", key, exp, now, 100)
	}
	c.check(t)
	for _, raw := range toks {
		if _, ok := c.shards[c.index(kp(raw))].m[keyOf(raw)]; !ok {
			t.Errorf("%s was evicted by puts of the held token %s", raw, toks[0])
		}
	}
	if st := c.stats(); st.Evictions != 0 {
		t.Errorf("Evictions = %d; want 0", st.Evictions)
	}
}

// kp returns a pointer to raw's cache key, as verify passes it.
func kp(raw string) *tokenKey {
	k := keyOf(raw)
	return &k
}
