package revoke_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
	"github.com/keygate/keygate/revoke"
)

// filled returns a List holding n revocations, a third of each kind,
// with UUID-sized values, swept; with delta, 30 more recorded after the
// sweep. (The case names come from the layered List this one replaced,
// so that benchstat lines up before and after.)
func filled(b *testing.B, n int, delta bool) *revoke.List {
	b.Helper()
	l := &revoke.List{}
	kinds := [...]revoke.Kind{revoke.Session, revoke.Subject, revoke.Token}
	for i := range n {
		r := revoke.Revocation{Kind: kinds[i%3], Value: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)}
		if err := l.Revoke(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
	l.Sweep()
	if delta {
		// A few recent revocations of each kind.
		for i := range 30 {
			r := revoke.Revocation{Kind: kinds[i%3], Value: fmt.Sprintf("recent-%d", i)}
			if err := l.Revoke(context.Background(), r); err != nil {
				b.Fatal(err)
			}
		}
	}
	return l
}

// BenchmarkRevoked measures the per-request check: Keycloak-shaped
// principals (sid, sub, jti, iat all set) against an empty List and one
// holding 10,000 revocations, missing (the common case) and hitting.
func BenchmarkRevoked(b *testing.B) {
	miss := &keygate.Principal{
		SessionID: "5b1d2c7e-8f0a-4c1b-9d3e-2a4f6b8c0d1e", Subject: "9f8e7d6c-5b4a-4321-8fed-cba987654321",
		JWTID: "onrtac:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", IssuedAt: time.Now(),
	}
	hitSID := *miss
	hitSID.SessionID = fmt.Sprintf("%08x-0000-4000-8000-%012x", 3000, 3000)
	hitSub := *miss
	hitSub.Subject = fmt.Sprintf("%08x-0000-4000-8000-%012x", 3001, 3001)
	hitSub.IssuedAt = time.Now().Add(-time.Minute)
	cases := []struct {
		name  string
		n     int
		delta bool
		p     *keygate.Principal
	}{
		{"empty", 0, false, miss},
		{"10k/miss", 10000, false, miss},
		{"10k+delta/miss", 10000, true, miss},
		{"10k/hit-sid", 10000, false, &hitSID},
		{"10k/hit-sub", 10000, false, &hitSub},
		{"100k+delta/miss", 100000, true, miss},
	}
	for _, c := range cases {
		l := filled(b, c.n, c.delta)
		want := c.p != miss
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if l.Revoked(c.p) != want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

// BenchmarkRevoke measures recording a new session revocation in a List
// that already holds n, as in a logout storm: the sweeps of expired
// entries (here none) are included, amortised.
func BenchmarkRevoke(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			l := filled(b, n, false)
			l.MaxEntries = math.MaxInt // b.Loop may run more than DefaultMaxEntries
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := l.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: fmt.Sprintf("storm-%012d", i)}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// benchIssuer starts a test issuer with a service client, worker, whose
// tokens carry aud orders-api, and a key source holding its keys.
func benchIssuer(b *testing.B) (*keycloaktest.Server, *jwks.Source) {
	b.Helper()
	idp, err := keycloaktest.NewServer(keycloaktest.Config{Realm: "bench", Clients: []keycloaktest.Client{
		{ID: "worker", Secret: "s", ServiceAccount: true, Audiences: []string{"orders-api"}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(idp.Close)
	src, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	if err := src.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	return idp, src
}

// BenchmarkVerifyCached measures Verify of a cached token with no
// Revocations, with an empty List and with a List of 10,000: the cost
// revocation adds to the cached path.
func BenchmarkVerifyCached(b *testing.B) {
	idp, src := benchIssuer(b)
	ctx := context.Background()
	tok := idp.MustMint(b, keycloaktest.Token{Claims: map[string]any{
		"sid": "5b1d2c7e-8f0a-4c1b-9d3e-2a4f6b8c0d1e", "jti": "onrtac:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
	}})
	for _, c := range []struct {
		name string
		rev  keygate.Revocations
	}{
		{"none", nil},
		{"empty", &revoke.List{}},
		{"10k", filled(b, 10000, false)},
		{"10k+delta", filled(b, 10000, true)},
	} {
		v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: src, Revocations: c.rev})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// mutexSet is the naive revocation set: three maps behind a
// sync.RWMutex. BenchmarkRevokedParallel compares List with it, every
// core reading at once, as requests do.
type mutexSet struct {
	mu              sync.RWMutex
	sids, subs, jti map[string]time.Time
}

func (m *mutexSet) Revoked(p *keygate.Principal) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.sids[p.SessionID]; ok {
		return true
	}
	if before, ok := m.subs[p.Subject]; ok && p.IssuedAt.Before(before) {
		return true
	}
	_, ok := m.jti[p.JWTID]
	return ok
}

func BenchmarkRevokedParallel(b *testing.B) {
	const n = 10000
	miss := &keygate.Principal{
		SessionID: "5b1d2c7e-8f0a-4c1b-9d3e-2a4f6b8c0d1e", Subject: "9f8e7d6c-5b4a-4321-8fed-cba987654321",
		JWTID: "onrtac:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", IssuedAt: time.Now(),
	}
	ms := &mutexSet{sids: map[string]time.Time{}, subs: map[string]time.Time{}, jti: map[string]time.Time{}}
	later := time.Now().Add(time.Hour)
	for i := range n {
		v := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		m := [...]map[string]time.Time{ms.sids, ms.subs, ms.jti}[i%3]
		m[v] = later
	}
	for _, c := range []struct {
		name string
		set  keygate.Revocations
	}{
		{"List", filled(b, n, true)},
		{"RWMutex+maps", ms},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if c.set.Revoked(miss) {
						b.Fatal("wrong answer")
					}
				}
			})
		})
	}
}

// BenchmarkVerifyUncached is BenchmarkVerifyCached's unique-token path:
// the verified-token cache off (CacheSize -1), 256 distinct tokens (each
// with its own sid and jti) in turn, so that every Verify checks the
// signature and then consults Revocations, as for a token never seen
// before.
func BenchmarkVerifyUncached(b *testing.B) {
	idp, src := benchIssuer(b)
	ctx := context.Background()
	toks := make([]string, 256)
	for i := range toks {
		toks[i] = idp.MustMint(b, keycloaktest.Token{Claims: map[string]any{
			"sid": fmt.Sprintf("5b1d2c7e-8f0a-4c1b-9d3e-%012x", i), "jti": fmt.Sprintf("onrtac:0a1b2c3d-4e5f-4a6b-8c7d-%012x", i),
		}})
	}
	for _, c := range []struct {
		name string
		rev  keygate.Revocations
	}{
		{"none", nil},
		{"empty", &revoke.List{}},
		{"10k", filled(b, 10000, false)},
		{"10k+delta", filled(b, 10000, true)},
	} {
		v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: src,
			Revocations: c.rev, CacheSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := v.Verify(ctx, toks[i%len(toks)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
