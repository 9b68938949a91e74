package revoke_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/revoke"
)

// clock is a settable clock for List.Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time               { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration)          { c.ns.Add(int64(d)) }
func (c *clock) At(d time.Duration) time.Time { return c.Now().Add(d) }

func TestListRevoked(t *testing.T) {
	c := newClock()
	now := c.Now()
	revs := []revoke.Revocation{
		{Kind: revoke.Session, Value: "sid-1"},
		{Kind: revoke.Token, Value: "jti-1"},
		{Kind: revoke.Subject, Value: "user-1", IssuedBefore: now},
	}
	tests := []struct {
		name string
		p    keygate.Principal
		want bool
	}{
		{"no claims", keygate.Principal{}, false},
		{"revoked session", keygate.Principal{SessionID: "sid-1"}, true},
		{"other session", keygate.Principal{SessionID: "sid-2", Subject: "user-2", JWTID: "jti-2"}, false},
		{"revoked jti", keygate.Principal{JWTID: "jti-1", SessionID: "sid-2"}, true},
		{"subject issued before", keygate.Principal{Subject: "user-1", IssuedAt: now.Add(-time.Second)}, true},
		{"subject issued at", keygate.Principal{Subject: "user-1", IssuedAt: now}, false},
		{"subject issued after", keygate.Principal{Subject: "user-1", IssuedAt: now.Add(time.Second)}, false},
		{"subject issued in year 3000", keygate.Principal{Subject: "user-1", IssuedAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
		{"subject issued in year 1000", keygate.Principal{Subject: "user-1", IssuedAt: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}, true},
		{"subject without iat", keygate.Principal{Subject: "user-1"}, true},
		{"other subject without iat", keygate.Principal{Subject: "user-2"}, false},
		{"sid is not a sub", keygate.Principal{Subject: "sid-1", JWTID: "user-1", IssuedAt: now.Add(-time.Hour)}, false},
	}
	// The same cases against a small list (merged at every Revoke) and a
	// large one (past the 1024 entries at which sweeps start).
	for _, filler := range []int{0, 5000} {
		l := &revoke.List{Now: c.Now}
		for i := range filler {
			if err := l.Revoke(context.Background(), revoke.Revocation{Kind: revoke.Token, Value: fmt.Sprint("filler-", i)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range revs {
			if err := l.Revoke(context.Background(), r); err != nil {
				t.Fatalf("Revoke(%+v) = %v", r, err)
			}
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%d/%s", filler, tt.name), func(t *testing.T) {
				if got := l.Revoked(&tt.p); got != tt.want {
					t.Errorf("Revoked(%+v) = %v; want %v", tt.p, got, tt.want)
				}
			})
		}
	}
}

func TestListRevokeInvalid(t *testing.T) {
	tests := []struct {
		name string
		r    revoke.Revocation
	}{
		{"unknown kind", revoke.Revocation{Kind: "iss", Value: "x"}},
		{"no kind", revoke.Revocation{Value: "x"}},
		{"empty value", revoke.Revocation{Kind: revoke.Session}},
		{"long value", revoke.Revocation{Kind: revoke.Token, Value: strings.Repeat("a", revoke.MaxValueLen+1)}},
		{"expires in year 3000", revoke.Revocation{Kind: revoke.Token, Value: "a", Expires: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"long source", revoke.Revocation{Kind: revoke.Token, Value: "a", Source: strings.Repeat("a", revoke.MaxValueLen+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l revoke.List
			if err := l.Revoke(context.Background(), tt.r); !errors.Is(err, revoke.ErrInvalid) {
				t.Errorf("Revoke() = %v; want ErrInvalid", err)
			}
			if l.Len() != 0 {
				t.Errorf("Len() = %d after a refused Revoke; want 0", l.Len())
			}
		})
	}
}

func TestListDefaultsAndMerge(t *testing.T) {
	c := newClock()
	l := &revoke.List{Now: c.Now, TTL: time.Hour}
	ctx := context.Background()
	if err := l.Revoke(ctx, revoke.Revocation{Kind: revoke.Subject, Value: "u", Source: "admin"}); err != nil {
		t.Fatal(err)
	}
	got := list(t, l)
	want := revoke.Revocation{Kind: revoke.Subject, Value: "u", IssuedBefore: c.Now(), At: c.Now(), Expires: c.At(time.Hour), Source: "admin"}
	if len(got) != 1 || !same(got[0], want) {
		t.Fatalf("List() = %+v; want [%+v]", got, want)
	}

	// A later revocation of the same subject moves IssuedBefore and
	// Expires forward; an older one, arriving late, moves nothing back.
	c.Add(time.Minute)
	later := revoke.Revocation{Kind: revoke.Subject, Value: "u", IssuedBefore: c.Now(), At: c.Now(), Expires: c.At(2 * time.Hour), Source: "backchannel_logout"}
	older := revoke.Revocation{Kind: revoke.Subject, Value: "u", IssuedBefore: c.At(-time.Hour), At: c.At(-time.Hour), Expires: c.At(time.Minute), Source: "old"}
	for _, r := range []revoke.Revocation{later, older} {
		if err := l.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := list(t, l); len(got) != 1 || !same(got[0], later) {
		t.Fatalf("List() after merge = %+v; want [%+v]", got, later)
	}
	if !l.Revoked(&keygate.Principal{Subject: "u", IssuedAt: c.At(-time.Second)}) {
		t.Errorf("a token issued before the later revocation is not revoked")
	}

	// Already expired: accepted and not recorded.
	if err := l.Revoke(ctx, revoke.Revocation{Kind: revoke.Token, Value: "gone", Expires: c.At(-time.Second)}); err != nil {
		t.Errorf("Revoke(expired) = %v; want nil", err)
	}
	if l.Revoked(&keygate.Principal{JWTID: "gone"}) || l.Len() != 1 {
		t.Errorf("an expired revocation was recorded (Len %d)", l.Len())
	}
}

func TestListExpiry(t *testing.T) {
	for _, filler := range []int{0, 3000} {
		t.Run(fmt.Sprint(filler), func(t *testing.T) {
			c := newClock()
			l := &revoke.List{Now: c.Now}
			ctx := context.Background()
			for i := range filler {
				mustRevoke(t, l, revoke.Revocation{Kind: revoke.Token, Value: fmt.Sprint("long-", i), Expires: c.At(time.Hour)})
			}
			mustRevoke(t, l, revoke.Revocation{Kind: revoke.Session, Value: "short", Expires: c.At(time.Minute)})
			if n := len(list(t, l)); n != filler+1 {
				t.Fatalf("List() has %d entries; want %d", n, filler+1)
			}
			c.Add(time.Minute)
			// Expired: not listed, and dropped by Sweep.
			if n := len(list(t, l)); n != filler {
				t.Errorf("List() after expiry has %d entries; want %d", n, filler)
			}
			l.Sweep()
			if l.Len() != filler || l.Revoked(&keygate.Principal{SessionID: "short"}) {
				t.Errorf("after Sweep: Len() = %d, short revoked = %v; want %d, false", l.Len(), l.Revoked(&keygate.Principal{SessionID: "short"}), filler)
			}
			c.Add(time.Hour)
			l.Sweep()
			if l.Len() != 0 {
				t.Errorf("Len() after all expired = %d; want 0", l.Len())
			}
			// Still usable.
			mustRevoke(t, l, revoke.Revocation{Kind: revoke.Session, Value: "again"})
			if !l.Revoked(&keygate.Principal{SessionID: "again"}) {
				t.Errorf("a revocation after the list emptied does not hold")
			}
			_ = ctx
		})
	}
}

func TestListFull(t *testing.T) {
	c := newClock()
	l := &revoke.List{Now: c.Now, MaxEntries: 600}
	for i := range 600 {
		mustRevoke(t, l, revoke.Revocation{Kind: revoke.Token, Value: fmt.Sprint(i), Expires: c.At(time.Duration(i+1) * time.Second)})
	}
	err := l.Revoke(context.Background(), revoke.Revocation{Kind: revoke.Session, Value: "new"})
	if !errors.Is(err, revoke.ErrFull) {
		t.Fatalf("Revoke() on a full list = %v; want ErrFull", err)
	}
	if l.Revoked(&keygate.Principal{SessionID: "new"}) {
		t.Errorf("a refused revocation holds")
	}
	for _, v := range []string{"0", "599"} {
		if !l.Revoked(&keygate.Principal{JWTID: v}) {
			t.Errorf("jti %s is no longer revoked after a refused Revoke: something was evicted", v)
		}
	}
	// An update of a key already held is not a new entry.
	mustRevoke(t, l, revoke.Revocation{Kind: revoke.Token, Value: "5", Expires: c.At(time.Hour)})
	// Once entries expire, they make room.
	c.Add(10 * time.Second)
	mustRevoke(t, l, revoke.Revocation{Kind: revoke.Session, Value: "new"})
	if !l.Revoked(&keygate.Principal{SessionID: "new"}) || l.Len() > 600 {
		t.Errorf("after expiry made room: revoked = false or Len() = %d > 600", l.Len())
	}
}

func TestListFirstUse(t *testing.T) {
	c := newClock()
	l := &revoke.List{Now: c.Now, MaxEntries: 2}
	ctx := context.Background()
	steps := []struct {
		name    string
		jti     string
		until   time.Duration
		advance time.Duration
		want    bool
		err     error
	}{
		{"first", "a", time.Minute, 0, true, nil},
		{"replay", "a", time.Minute, 0, false, nil},
		{"other", "b", time.Minute, 0, true, nil},
		{"full", "c", time.Minute, 0, false, revoke.ErrFull},
		{"replay when full", "b", time.Minute, 0, false, nil},
		{"after expiry", "a", time.Minute, time.Minute, true, nil},
		{"room after expiry", "c", time.Minute, 0, true, nil},
		{"already expired", "d", -time.Second, 0, true, nil},
		{"empty", "", time.Minute, 0, false, revoke.ErrInvalid},
		{"too long", strings.Repeat("x", revoke.MaxValueLen+1), time.Minute, 0, false, revoke.ErrInvalid},
	}
	for _, s := range steps {
		c.Add(s.advance)
		got, err := l.FirstUse(ctx, s.jti, c.At(s.until))
		if got != s.want || !errors.Is(err, s.err) {
			t.Errorf("%s: FirstUse(%.10q) = %v, %v; want %v, %v", s.name, s.jti, got, err, s.want, s.err)
		}
	}
}

// TestListConcurrent revokes from many goroutines while others read;
// run with -race. Every revocation must hold once its Revoke returned.
func TestListConcurrent(t *testing.T) {
	l := &revoke.List{}
	ctx := context.Background()
	const writers, each = 8, 500
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			p := &keygate.Principal{SessionID: "w0-0", Subject: "nobody", JWTID: "x"}
			for {
				select {
				case <-stop:
					return
				default:
					l.Revoked(p)
					if _, err := l.List(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				v := fmt.Sprintf("w%d-%d", w, i)
				if err := l.Revoke(ctx, revoke.Revocation{Kind: revoke.Session, Value: v}); err != nil {
					t.Error(err)
					return
				}
				if !l.Revoked(&keygate.Principal{SessionID: v}) {
					t.Errorf("session %s not revoked after its Revoke returned", v)
					return
				}
				if i%100 == 0 {
					l.Sweep()
				}
				if _, err := l.FirstUse(ctx, v, time.Now().Add(time.Minute)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if l.Len() != writers*each {
		t.Errorf("Len() = %d; want %d", l.Len(), writers*each)
	}
	for w := range writers {
		for i := range each {
			if v := fmt.Sprintf("w%d-%d", w, i); !l.Revoked(&keygate.Principal{SessionID: v}) {
				t.Fatalf("session %s not revoked at the end", v)
			}
		}
	}
	if got := list(t, l); len(got) != writers*each {
		t.Errorf("List() has %d entries; want %d", len(got), writers*each)
	}
}

func mustRevoke(t *testing.T, l *revoke.List, r revoke.Revocation) {
	t.Helper()
	if err := l.Revoke(context.Background(), r); err != nil {
		t.Fatalf("Revoke(%+v) = %v", r, err)
	}
}

func list(t *testing.T, l *revoke.List) []revoke.Revocation {
	t.Helper()
	got, err := l.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func same(a, b revoke.Revocation) bool {
	return a.Kind == b.Kind && a.Value == b.Value && a.Source == b.Source &&
		a.IssuedBefore.Equal(b.IssuedBefore) && a.At.Equal(b.At) && a.Expires.Equal(b.Expires)
}

// TestListFullConcurrent revokes distinct keys from more goroutines than
// the list has room for: exactly MaxEntries succeed, the others get
// ErrFull, and no success is lost.
func TestListFullConcurrent(t *testing.T) {
	const max, callers = 200, 600
	l := &revoke.List{MaxEntries: max}
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			errs[i] = l.Revoke(context.Background(), revoke.Revocation{Kind: revoke.Session, Value: fmt.Sprint("s", i)})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			if !l.Revoked(&keygate.Principal{SessionID: fmt.Sprint("s", i)}) {
				t.Errorf("s%d: Revoke returned nil but it does not hold", i)
			}
		case !errors.Is(err, revoke.ErrFull):
			t.Errorf("s%d: Revoke() = %v; want nil or ErrFull", i, err)
		}
	}
	if ok != max || l.Len() != max || len(list(t, l)) != max {
		t.Errorf("%d Revokes succeeded, Len() = %d, List() has %d; want %d each", ok, l.Len(), len(list(t, l)), max)
	}
}

// TestListMergeConcurrent revokes one subject from many goroutines, each
// with its own times: whatever the order, the later IssuedBefore and
// Expires win and At and Source come from the latest At, as replicas
// receiving them in any order must agree.
func TestListMergeConcurrent(t *testing.T) {
	c := newClock()
	const n = 64
	for round := range 20 {
		l := &revoke.List{Now: c.Now}
		var wg sync.WaitGroup
		for i := range n {
			// IssuedBefore, At and Expires peak at different i.
			r := revoke.Revocation{Kind: revoke.Subject, Value: "u",
				IssuedBefore: c.At(time.Duration((i*7)%n) * time.Second),
				At:           c.At(time.Duration((i*11)%n) * time.Second),
				Expires:      c.At(time.Hour + time.Duration((i*13)%n)*time.Second),
				Source:       fmt.Sprint("src-", (i*11)%n),
			}
			wg.Go(func() { mustRevoke(t, l, r) })
		}
		wg.Wait()
		want := revoke.Revocation{Kind: revoke.Subject, Value: "u",
			IssuedBefore: c.At((n - 1) * time.Second), At: c.At((n - 1) * time.Second),
			Expires: c.At(time.Hour + (n-1)*time.Second), Source: fmt.Sprint("src-", n-1),
		}
		if got := list(t, l); len(got) != 1 || !same(got[0], want) {
			t.Fatalf("round %d: List() = %+v; want [%+v]", round, got, want)
		}
	}
}

// TestListMergeTie: two revocations of one key with the same At and
// different Sources end with the same Source in either order.
func TestListMergeTie(t *testing.T) {
	c := newClock()
	a := revoke.Revocation{Kind: revoke.Session, Value: "s", At: c.Now(), Expires: c.At(time.Hour), Source: "admin"}
	b := a
	b.Source = "backchannel_logout"
	var got [2]string
	for i, order := range [2][2]revoke.Revocation{{a, b}, {b, a}} {
		l := &revoke.List{Now: c.Now}
		mustRevoke(t, l, order[0])
		mustRevoke(t, l, order[1])
		got[i] = list(t, l)[0].Source
	}
	if got[0] != got[1] {
		t.Errorf("Source after a tie = %q or %q depending on order; want one", got[0], got[1])
	}
}

// TestListFirstUseConcurrent: of many concurrent FirstUse calls with
// the same jti, exactly one reports true.
func TestListFirstUseConcurrent(t *testing.T) {
	c := newClock()
	for round := range 50 {
		l := &revoke.List{Now: c.Now}
		var first atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				ok, err := l.FirstUse(context.Background(), "jti", c.At(time.Minute))
				if err != nil {
					t.Error(err)
				}
				if ok {
					first.Add(1)
				}
			})
		}
		wg.Wait()
		if n := first.Load(); n != 1 {
			t.Fatalf("round %d: %d FirstUse calls reported true; want 1", round, n)
		}
	}
}
