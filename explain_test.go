package keygate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/keycloaktest"
)

// TestExplain checks that Explain reports the checks Verify runs, stops
// where Verify stops, and agrees with Verify on every token.
func TestExplain(t *testing.T) {
	f := newFixture(t, nil)
	all := []string{"size", "format", "type", "algorithm", "lifetime", "issuer", "audience", "key", "signature"}
	tests := []struct {
		name   string
		tok    keycloaktest.Token
		raw    string // instead of tok
		failed string // the check that fails; "" for none
		kind   error
	}{
		{name: "valid", tok: keycloaktest.Token{}},
		{name: "empty", raw: "", failed: "size", kind: keygate.ErrMalformed},
		{name: "Bearer prefix", raw: "Bearer x.y.z", failed: "format", kind: keygate.ErrMalformed},
		{name: "ID token", tok: keycloaktest.Token{Claims: map[string]any{"typ": "ID"}}, failed: "type", kind: keygate.ErrWrongTokenType},
		{name: "DPoP-bound", tok: keycloaktest.Token{Claims: map[string]any{"cnf": map[string]any{"jkt": "x"}}}, failed: "type", kind: keygate.ErrWrongTokenType},
		{name: "HS256", tok: keycloaktest.Token{Algorithm: "HS256"}, failed: "algorithm", kind: keygate.ErrUnsupportedAlgorithm},
		{name: "expired", tok: keycloaktest.Token{Claims: map[string]any{"exp": 1}}, failed: "lifetime", kind: keygate.ErrExpired},
		{name: "other issuer", tok: keycloaktest.Token{Claims: map[string]any{"iss": "https://evil.example/realms/shop"}}, failed: "issuer", kind: keygate.ErrWrongIssuer},
		{name: "other audience", tok: keycloaktest.Token{Claims: map[string]any{"aud": "billing"}}, failed: "audience", kind: keygate.ErrWrongAudience},
		{name: "unknown kid", tok: keycloaktest.Token{Header: map[string]any{"kid": "nope"}}, failed: "key", kind: keygate.ErrUnknownKey},
		{name: "bad signature", tok: keycloaktest.Token{}, failed: "signature", kind: keygate.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.raw
			if tt.tok.Algorithm != "" || tt.tok.Claims != nil || tt.tok.Header != nil || tt.name == "valid" || tt.name == "bad signature" {
				raw = f.mint(t, tt.tok)
			}
			if tt.name == "bad signature" {
				raw = raw[:len(raw)-4] + map[bool]string{true: "AAAA", false: "BBBB"}[!strings.HasSuffix(raw, "AAAA")]
			}
			x := f.v.Explain(context.Background(), raw)
			_, verr := f.v.Verify(context.Background(), raw)
			// The same class: the text may differ where the key set's
			// state changed between the calls (a refetch, then its limit).
			var xe, ve *keygate.Error
			if (x.Err == nil) != (verr == nil) || x.Err != nil && (!errors.As(x.Err, &xe) || !errors.As(verr, &ve) || xe.Kind != ve.Kind) {
				t.Fatalf("Explain().Err = %v; Verify = %v", x.Err, verr)
			}
			var names []string
			for i, c := range x.Checks {
				names = append(names, c.Name)
				if last := i == len(x.Checks)-1; (c.Err != nil) != (last && tt.failed != "") {
					t.Errorf("check %q: Err = %v", c.Name, c.Err)
				}
			}
			want := all
			if tt.failed != "" {
				want = nil
				for _, n := range all {
					want = append(want, n)
					if n == tt.failed {
						break
					}
				}
			}
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Errorf("checks %v; want %v", names, want)
			}
			if tt.kind != nil && !errors.Is(x.Err, tt.kind) {
				t.Errorf("Err = %v; want %v", x.Err, tt.kind)
			}
			if (x.Principal != nil) != (tt.failed == "") {
				t.Errorf("Principal = %v", x.Principal)
			}
		})
	}
}

// TestExplainSkipsCache: Explain reports the checks even for a token the
// cache holds, and does not fill the cache.
func TestExplainSkipsCache(t *testing.T) {
	f := newFixture(t, nil)
	raw := f.mint(t, keycloaktest.Token{})
	if x := f.v.Explain(context.Background(), raw); x.Err != nil {
		t.Fatal(x.Err)
	}
	if st := f.v.CacheStats(); st.Size != 0 {
		t.Errorf("cache holds %d entries after Explain; want 0", st.Size)
	}
	if _, err := f.v.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	if x := f.v.Explain(context.Background(), raw); len(x.Checks) != 9 {
		t.Errorf("Explain of a cached token ran %d checks; want 9", len(x.Checks))
	}
}
