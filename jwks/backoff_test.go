package jwks

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		refresh  time.Duration
		max      time.Duration // the wait lies in [max/2, max]
	}{
		{1, 5 * time.Minute, time.Second},
		{2, 5 * time.Minute, 2 * time.Second},
		{4, 5 * time.Minute, 8 * time.Second},
		{6, 5 * time.Minute, 30 * time.Second},
		{60, 5 * time.Minute, 30 * time.Second},
		{10, 5 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		s, err := NewSource(Config{URL: "https://kc.example.com/certs", RefreshInterval: tt.refresh})
		if err != nil {
			t.Fatal(err)
		}
		s.consecutive = tt.failures
		seen := map[time.Duration]bool{}
		for range 200 {
			d := s.backoff()
			if d < tt.max/2 || d > tt.max {
				t.Fatalf("backoff() after %d failures = %v; want within [%v, %v]", tt.failures, d, tt.max/2, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("backoff() after %d failures took %d distinct values in 200 draws; want jitter", tt.failures, len(seen))
		}
	}
}
