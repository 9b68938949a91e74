package jwks

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKidFetchJoinedFlightEnded checks the unknown-kid limiter when the
// fetch a caller was told to join ends before the caller joins it: the
// caller must ask the limiter again, not start a fetch of its own.
// Otherwise, under a flood of unknown kids, each fetch's end could let a
// caller start the next, back to back, past MinRefetchInterval.
func TestKidFetchJoinedFlightEnded(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":%q,"e":%q}]}`,
		base64.RawURLEncoding.EncodeToString(key.N.Bytes()), base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()))
	var (
		requests atomic.Int32
		block    atomic.Bool
		arrived  = make(chan struct{})
		release  = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if block.CompareAndSwap(true, false) {
			close(arrived)
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, doc)
	}))
	defer srv.Close()

	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s, err := NewSource(Config{URL: srv.URL, Now: func() time.Time { return now }, MinRefetchInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	before := requests.Load()

	// The second caller is told to join the first caller's fetch, and
	// acts on that only once the fetch has ended.
	var once sync.Once
	s.afterAllow = func(a kidFetch) {
		if a != kidFetchJoined {
			return
		}
		once.Do(func() {
			close(release)
			for {
				s.mu.Lock()
				done := s.inflight == nil
				s.mu.Unlock()
				if done {
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	block.Store(true)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := s.Key(ctx, "attacker-1"); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Key(attacker-1) = %v; want ErrUnknownKey", err)
		}
	}()
	<-arrived
	if _, err := s.Key(ctx, "attacker-2"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Key(attacker-2) = %v; want ErrUnknownKey", err)
	}
	wg.Wait()
	if got := requests.Load() - before; got != 1 {
		t.Errorf("provider requests for two unknown kids within MinRefetchInterval = %d; want 1", got)
	}
	if st := s.Status(); st.KidFetches != 1 {
		t.Errorf("Status().KidFetches = %d; want 1", st.KidFetches)
	}
}
