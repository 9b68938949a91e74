package tokentool_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cmd/keygate/internal/tokentool"
	"github.com/keygate/keygate/keycloaktest"
)

func issuer(tb testing.TB) *keycloaktest.Server {
	tb.Helper()
	return keycloaktest.New(tb, keycloaktest.Config{
		OmitDefaultRoles: true,
		Clients: []keycloaktest.Client{
			{ID: "app", DirectAccessGrants: true, Audiences: []string{"api"}},
			{ID: "svc", Secret: "s3cret", ServiceAccount: true, Audiences: []string{"api"}},
		},
		Users: []keycloaktest.User{{Username: "alice", Password: "pw", RealmRoles: []string{"user"}}},
	})
}

func TestInspect(t *testing.T) {
	iat := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	iss := keycloaktest.New(t, keycloaktest.Config{Now: func() time.Time { return iat }})
	tok := iss.MustMint(t, keycloaktest.Token{})
	tests := []struct {
		name, raw string
		want      []string
		err       string
	}{
		{name: "access token", raw: tok, want: []string{
			"UNVERIFIED", `"alg": "RS256"`, `"typ": "Bearer"`, `"iss": "` + iss.Issuer() + `"`,
			"exp       2026-01-02T03:09:05Z  (in 5m0s)", "iat       2026-01-02T03:04:05Z  (now)",
		}},
		{name: "with Bearer prefix", raw: "Bearer " + tok, want: []string{"UNVERIFIED"}},
		{name: "two parts", raw: "a.b", err: "has 2 dot-separated parts"},
		{name: "JWE", raw: "a.b.c.d.e", err: "encrypted JWE"},
		{name: "bad base64", raw: "!!.e30.", err: "the header is not base64url"},
		{name: "not JSON", raw: "bm90.e30.", err: "the header is not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			err := tokentool.Inspect(&b, tt.raw, iat)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Inspect error = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

func TestVerify(t *testing.T) {
	iss := issuer(t)
	good := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice"})
	expired := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", Claims: map[string]any{
		"exp": time.Now().Add(-time.Hour), "iat": time.Now().Add(-2 * time.Hour)}})
	idToken := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", Claims: map[string]any{"typ": "ID", "aud": "app"}})
	tampered := good[:strings.LastIndexByte(good, '.')+1] + strings.Repeat("A", 342)
	unknownKid := iss.MustMint(t, keycloaktest.Token{Client: "app", Header: map[string]any{"kid": "nope"}})
	dpop := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice", Claims: map[string]any{"cnf": map[string]any{"jkt": "x"}}})
	tests := []struct {
		name      string
		raw       string
		audiences []string
		ok        bool
		want      []string
	}{
		{"valid", good, []string{"api"}, true, []string{
			"ok    size", "ok    format     three base64url parts; header alg \"RS256\"", `ok    type       header typ "JWT", claim typ "Bearer"`,
			"ok    algorithm", "ok    lifetime", "ok    issuer", `ok    audience   aud ["api"] holds one of ["api"]`,
			"ok    key", "ok    signature  verifies", "verdict: VALID", "username  alice", "roles     user"}},
		{"wrong audience", good, []string{"other"}, false, []string{`FAIL  audience   wrong audience: aud ["api"] holds none of ["other"]`, "verdict: INVALID (wrong audience); the checks after audience did not run"}},
		{"expired", expired, []string{"api"}, false, []string{"FAIL  lifetime   token expired: expired at", "verdict: INVALID (token expired)"}},
		{"id token", idToken, []string{"api"}, false, []string{"FAIL  type       wrong token type: an ID token is not an access token", "verdict: INVALID (wrong token type)"}},
		{"DPoP-bound", dpop, []string{"api"}, false, []string{"FAIL  type       wrong token type: a DPoP-bound token", "verdict: INVALID (wrong token type)"}},
		{"tampered", tampered, []string{"api"}, false, []string{"ok    key", "FAIL  signature", "verdict: INVALID (invalid signature)"}},
		{"unknown kid", unknownKid, []string{"api"}, false, []string{`FAIL  key        unknown signing key`, "verdict: INVALID (unknown signing key)", "kids in the key set: "}},
		{"garbage", "not-a-token", []string{"api"}, false, []string{"FAIL  format", "verdict: INVALID (malformed token)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			ok, err := tokentool.Verify(context.Background(), &b, tt.raw, tokentool.VerifyOptions{
				Issuer: iss.Issuer(), Audiences: tt.audiences, HTTPClient: iss.Client()})
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok {
				t.Errorf("Verify = %v; want %v", ok, tt.ok)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			if strings.Contains(b.String(), tt.raw) && len(tt.raw) > 20 {
				t.Error("the output holds the token")
			}
		})
	}
}

// The tool refuses what serve would refuse, instead of fixing it up:
// a "Bearer " prefix, and no audience.
func TestVerifyRefusesWhatServeRefuses(t *testing.T) {
	iss := issuer(t)
	good := iss.MustMint(t, keycloaktest.Token{Client: "app", User: "alice"})
	var b strings.Builder
	o := tokentool.VerifyOptions{Issuer: iss.Issuer(), Audiences: []string{"api"}, HTTPClient: iss.Client()}
	if _, err := tokentool.Verify(context.Background(), &b, "Bearer "+good, o); !errors.Is(err, tokentool.ErrBearerPrefix) {
		t.Errorf("Verify(Bearer token) error = %v; want ErrBearerPrefix", err)
	}
	o.Audiences = nil
	if _, err := tokentool.Verify(context.Background(), &b, good, o); !errors.Is(err, tokentool.ErrNoAudience) {
		t.Errorf("Verify without audience error = %v; want --audience is required", err)
	}
	o.InsecureSkipAudienceCheck = true
	if ok, err := tokentool.Verify(context.Background(), &b, good, o); !ok || err != nil {
		t.Errorf("Verify with InsecureSkipAudienceCheck = %v, %v; want true, nil", ok, err)
	}
}

func TestMint(t *testing.T) {
	iss := issuer(t)
	tests := []struct {
		name string
		o    tokentool.MintOptions
		user string // want preferred_username
		err  string
	}{
		{name: "password grant", o: tokentool.MintOptions{User: "alice", Password: "pw", Client: "app"}, user: "alice"},
		{name: "client credentials", o: tokentool.MintOptions{Client: "svc", Secret: "s3cret"}, user: "service-account-svc"},
		{name: "wrong password", o: tokentool.MintOptions{User: "alice", Password: "no", Client: "app"}, err: "invalid_grant"},
		{name: "no grant", o: tokentool.MintOptions{Client: "app"}, err: "give --user and --password"},
		{name: "remote issuer", o: tokentool.MintOptions{Issuer: "https://sso.example.com/realms/r", User: "a", Client: "app"}, err: "is not on this machine"},
		{name: "not a URL", o: tokentool.MintOptions{Issuer: "sso", User: "a", Client: "app"}, err: "is not an issuer URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.o.Issuer == "" {
				tt.o.Issuer = iss.Issuer()
			}
			tr, err := tokentool.Mint(context.Background(), tt.o)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Mint error = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			tokentool.Inspect(&b, tr.AccessToken, time.Now())
			if !strings.Contains(b.String(), `"preferred_username": "`+tt.user+`"`) {
				t.Errorf("token is not for %s:\n%s", tt.user, b.String())
			}
		})
	}
}
