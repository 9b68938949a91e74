package keygate_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/keycloaktest"
)

// sidRevocations revokes the sessions it holds; a stand-in for the
// revocation sets of package revoke, to test the Verifier's side alone.
type sidRevocations struct {
	mu   sync.Mutex
	sids map[string]bool
}

func (r *sidRevocations) Revoked(p *keygate.Principal) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sids[p.SessionID]
}

func TestRevocations(t *testing.T) {
	rev := &sidRevocations{sids: map[string]bool{}}
	f := newFixture(t, func(c *keygate.Config) { c.Revocations = rev })
	ctx := context.Background()
	tok := f.mint(t, keycloaktest.Token{Claims: map[string]any{"sid": "session-1"}})
	other := f.mint(t, keycloaktest.Token{Claims: map[string]any{"sid": "session-2"}})
	for _, raw := range []string{tok, other} {
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatalf("Verify() before revocation = %v", err)
		}
	}
	hits := f.v.CacheStats().Hits

	rev.mu.Lock()
	rev.sids["session-1"] = true
	rev.mu.Unlock()

	// tok sits in the verified-token cache: the hit must be refused too.
	_, err := f.v.Verify(ctx, tok)
	if !errors.Is(err, keygate.ErrRevoked) {
		t.Fatalf("Verify() of a cached, revoked token = %v; want ErrRevoked", err)
	}
	if f.v.CacheStats().Hits != hits+1 {
		t.Errorf("the revoked token was not a cache hit; the test does not cover the cached path")
	}
	var ke *keygate.Error
	if !errors.As(err, &ke) || ke.Description() != "token revoked" || !strings.Contains(ke.Detail, `"session-1"`) {
		t.Errorf("error = %#v; want description %q and the sid in the detail", err, "token revoked")
	}
	if _, err := f.v.Verify(ctx, other); err != nil {
		t.Errorf("Verify() of another session's token = %v; want it accepted", err)
	}

	// Uncached: a fresh token of the revoked session, and Explain.
	fresh := f.mint(t, keycloaktest.Token{Claims: map[string]any{"sid": "session-1", "jti": "another"}})
	if _, err := f.v.Verify(ctx, fresh); !errors.Is(err, keygate.ErrRevoked) {
		t.Errorf("Verify() of an uncached token of a revoked session = %v; want ErrRevoked", err)
	}
	x := f.v.Explain(ctx, fresh)
	if last := x.Checks[len(x.Checks)-1]; last.Name != "revocation" || !errors.Is(last.Err, keygate.ErrRevoked) {
		t.Errorf("Explain's last check = %+v; want revocation failing with ErrRevoked", last)
	}
	x = f.v.Explain(ctx, other)
	if last := x.Checks[len(x.Checks)-1]; last.Name != "revocation" || last.Err != nil || x.Err != nil {
		t.Errorf("Explain's last check = %+v, err %v; want revocation passing", last, x.Err)
	}
}
