package bench

import (
	"context"
	"flag"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

var heapProfile = flag.String("cachemem.heapprofile", "", "TestCacheMemory writes a heap profile of the filled cache to this file")

// TestCacheMemory measures what the verified-token cache pins in the Go
// heap with distinct tokens shaped like make bench-proxy's (keycloaktest's
// default service-account token, about 1 kB): it verifies 20,000 tokens
// once each, as the distinct-token case of run.sh sends them, then twice
// more, and logs the live heap, the cache's statistics and the heap per
// held token. It reads memory, never time, and asserts only that the cache
// stays within its bounds. See BENCHMARKS.md (issue #9 point 2).
//
//	go test -run CacheMemory -v -cachemem.heapprofile /tmp/heap.prof .
//	go tool pprof -sample_index=inuse_space -top /tmp/heap.prof
func TestCacheMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("mints 20,000 tokens")
	}
	if *heapProfile != "" {
		runtime.MemProfileRate = 256
	}
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:            "bench",
		OmitDefaultRoles: true,
		Clients: []keycloaktest.Client{{ID: "svc", Secret: "s", ServiceAccount: true,
			Audiences: []string{"bench-api"}, ServiceAccountRealmRoles: []string{"user"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	const n = 20000
	toks := make([]string, n)
	for i := range toks {
		if toks[i], err = idp.MintToken(keycloaktest.Token{}); err != nil {
			t.Fatal(err)
		}
	}
	src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"bench-api"}, Keys: src})
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for round := range 3 {
		start := time.Now()
		for _, tok := range toks {
			// A copy, as a request's header is: the cache must not pin
			// the minted list.
			if _, err := v.Verify(ctx, strings.Clone(tok)); err != nil {
				t.Fatal(err)
			}
		}
		live := heap()
		st := v.CacheStats()
		per := int64(0)
		if st.Size > 0 {
			per = (int64(live) - int64(before)) / int64(st.Size)
		}
		t.Logf("round %d (%d tokens of %d bytes, %v): live heap +%.2f MiB; cache %d tokens, %.2f MiB estimated, %d hits, %d misses, %d evictions, %d rejected; %d heap bytes a held token",
			round+1, n, len(toks[0]), time.Since(start).Round(time.Millisecond), float64(int64(live)-int64(before))/(1<<20),
			st.Size, float64(st.Bytes)/(1<<20), st.Hits, st.Misses, st.Evictions, st.Rejected, per)
		if st.Size > st.Capacity || st.Bytes > st.ByteCapacity {
			t.Errorf("cache holds %d tokens, %d bytes; bounds %d, %d", st.Size, st.Bytes, st.Capacity, st.ByteCapacity)
		}
	}
	if *heapProfile != "" {
		f, err := os.Create(*heapProfile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		runtime.GC() // a profile shows the heap as of the last complete cycle
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	runtime.KeepAlive(toks)
	runtime.KeepAlive(v) // the profile shows the cache
}
