package jwks_test

// Regression tests from the review of issue #8.

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// Close's doc: "Keys stay usable from the last snapshot, but a kid it
// lacks fails with ErrUnavailable." A kid asked for within
// MinRefetchInterval of an earlier unknown-kid refetch that succeeded
// gets ErrUnknownKey (401) after Close instead.
func TestKeyAfterCloseIsUnavailable(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	s := newSource(t, jwks.Config{URL: idp.JWKSURL(), MinRefetchInterval: time.Hour})
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Key(ctx, "forged-1"); !errors.Is(err, jwks.ErrUnknownKey) {
		t.Fatalf("Key(forged-1) = %v; want ErrUnknownKey", err)
	}
	s.Close()
	if _, err := s.Key(ctx, "forged-2"); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("Key(forged-2) after Close = %v; want ErrUnavailable as Close documents", err)
	}
}

// A token with a new kid that arrives while a refresh is under way joins
// that refresh. If the refresh's response was produced before the
// provider published the kid, the token gets ErrUnknownKey (401) although
// the provider publishes the kid and no fetch after the token was seen
// ran. The next token with the kid then succeeds at once (a joiner does
// not consume the rate limit), so this is one 401 per rotation at most.
func TestJoinedOlderFetchDoesNotRefusePublishedKid(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	var (
		mu      sync.Mutex
		slow    bool
		arrived = make(chan struct{}, 1)
		release = make(chan struct{})
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(idp.JWKSURL()) // the set as of the request's arrival
		if err != nil {
			w.WriteHeader(502)
			return
		}
		defer resp.Body.Close()
		var body []byte
		buf := make([]byte, 1<<16)
		for {
			n, err := resp.Body.Read(buf)
			body = append(body, buf[:n]...)
			if err != nil {
				break
			}
		}
		mu.Lock()
		wait := slow
		mu.Unlock()
		if wait {
			arrived <- struct{}{}
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	s := newSource(t, jwks.Config{URL: "https://kc.example.com/certs", MinRefetchInterval: time.Hour,
		HTTPClient: &http.Client{Transport: roundTripper{h}, Timeout: 10 * time.Second}})
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	slow = true
	mu.Unlock()
	go s.Refresh(ctx) // the scheduled refresh
	<-arrived
	mu.Lock()
	slow = false
	mu.Unlock()
	k2, err := idp.AddKey("RS256") // rotation: the provider now publishes k2
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { _, err := s.Key(ctx, k2); res <- err }()
	waitFor(t, "Key to join the flight", func() bool { return s.Status().KidFetches == 0 })
	time.Sleep(50 * time.Millisecond) // let Key reach the join
	close(release)
	if err := <-res; err != nil {
		t.Errorf("Key(k2) joined a flight that began before k2 was published: %v; want k2 (a fresh fetch)", err)
	}
	if _, err := s.Key(ctx, k2); err != nil {
		t.Errorf("second Key(k2) = %v", err)
	}
}

// Close racing Key and Refresh from many goroutines: no goroutine of the
// source outlives Close, and nothing is logged after it.
func TestCloseRacesKeyAndRefresh(t *testing.T) {
	idp := keycloaktest.New(t, keycloaktest.Config{})
	idp.SetFault(keycloaktest.EndpointCerts, &keycloaktest.Fault{Delay: 20 * time.Millisecond})
	for round := range 20 {
		before := runtimeGoroutines()
		s, err := jwks.NewSource(jwks.Config{URL: idp.JWKSURL(), MinRefetchInterval: time.Nanosecond,
			HTTPClient: &http.Client{Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 20 {
					if i%2 == 0 {
						s.Refresh(context.Background())
					} else {
						s.Key(context.Background(), "k"+string(rune('a'+j)))
					}
				}
			}()
		}
		time.Sleep(time.Duration(round) * time.Millisecond)
		s.Close()
		wg.Wait()
		idp.Client().CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
		waitFor(t, "goroutines to settle", func() bool { return runtimeGoroutines() <= before+2 })
	}
}

func runtimeGoroutines() int { return runtime.NumGoroutine() }

// StaticSet's doc: "Keys with the same ID overwrite earlier ones". Keys()
// still lists the overwritten key, and two keys without a kid make the
// set unusable for tokens without a kid, although one overwrote the other.
func TestStaticSetDuplicateIDs(t *testing.T) {
	a := &jwks.Key{ID: "", Type: "OKP"}
	b := &jwks.Key{ID: "", Type: "OKP"}
	s := jwks.StaticSet(a, b)
	if n := len(s.Keys()); n != 1 {
		t.Errorf("len(StaticSet(a, b).Keys()) = %d for two keys of one ID; want 1", n)
	}
	if k, ok := s.Lookup(""); !ok || k != b {
		t.Errorf("Lookup(\"\") = %v, %v; want b, which overwrote a", k, ok)
	}
}
