package keygate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/keycloaktest"
)

// logoutAudience is the client the test realm sends logout tokens to.
const logoutAudience = "cli"

func (f *fixture) logout(t *testing.T, tok keycloaktest.Token) string {
	t.Helper()
	if tok.Client == "" {
		tok.Client = logoutAudience
	}
	if tok.User == "" {
		tok.User = "alice"
	}
	return f.idp.MustMintLogout(t, tok)
}

func TestVerifyLogoutToken(t *testing.T) {
	f := newFixture(t, nil)
	now := f.Now()
	rsKid := f.idp.ActiveKeyID("RS256")

	// other is another issuer: its keys are not ours.
	other := keycloaktest.New(t, realm())
	forgedByOther := other.MustMintLogout(t, keycloaktest.Token{Client: logoutAudience, User: "alice",
		Claims: map[string]any{"iss": f.idp.Issuer()}, Header: map[string]any{"kid": rsKid}})
	otherKid := other.MustMintLogout(t, keycloaktest.Token{Client: logoutAudience, User: "alice",
		Claims: map[string]any{"iss": f.idp.Issuer()}})

	valid := f.logout(t, keycloaktest.Token{SessionID: "s-1"})
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		payload, _ := jsonB64Decode(parts[1])
		payload["sid"] = "someone-else"
		parts[1] = jsonB64Encode(payload)
		return strings.Join(parts, ".")
	}
	event := map[string]any{keycloaktest.LogoutEvent: map[string]any{}}

	tests := []struct {
		name     string
		tok      string
		audience string // "" means logoutAudience
		want     error  // nil means valid
	}{
		{"as Keycloak sends it", valid, "", nil},
		{"sub only (session not required)", f.logout(t, keycloaktest.Token{Claims: map[string]any{"sid": nil}}), "", nil},
		{"sid only", f.logout(t, keycloaktest.Token{Claims: map[string]any{"sub": nil}}), "", nil},
		{"no header typ", f.logout(t, keycloaktest.Token{Header: map[string]any{"typ": nil}}), "", nil},
		{"header typ JWT", f.logout(t, keycloaktest.Token{Header: map[string]any{"typ": "JWT"}}), "", nil},
		{"header typ application/logout+jwt", f.logout(t, keycloaktest.Token{Header: map[string]any{"typ": "application/logout+jwt"}}), "", nil},
		{"no typ claim (not Keycloak)", f.logout(t, keycloaktest.Token{Claims: map[string]any{"typ": nil}}), "", nil},
		{"aud list holding ours", f.logout(t, keycloaktest.Token{Claims: map[string]any{"aud": []string{"stranger", logoutAudience}}}), "", nil},
		{"other events beside", f.logout(t, keycloaktest.Token{Claims: map[string]any{"events": map[string]any{"urn:x": 1, keycloaktest.LogoutEvent: map[string]any{"a": 1}}}}), "", nil},
		{"ES256 client", f.logout(t, keycloaktest.Token{Client: "svc-ES256"}), "svc-ES256", nil},
		{"exp just past, inside leeway", f.logout(t, keycloaktest.Token{Claims: map[string]any{"exp": now.Add(-30 * time.Second)}}), "", nil},

		{"no events", f.logout(t, keycloaktest.Token{Claims: map[string]any{"events": nil}}), "", keygate.ErrWrongTokenType},
		{"events without the logout event", f.logout(t, keycloaktest.Token{Claims: map[string]any{"events": map[string]any{"urn:x": map[string]any{}}}}), "", keygate.ErrWrongTokenType},
		{"events as an array", f.logout(t, keycloaktest.Token{Claims: map[string]any{"events": []string{keycloaktest.LogoutEvent}}}), "", keygate.ErrWrongTokenType},
		{"logout event not an object", f.logout(t, keycloaktest.Token{Claims: map[string]any{"events": map[string]any{keycloaktest.LogoutEvent: true}}}), "", keygate.ErrWrongTokenType},
		{"with nonce", f.logout(t, keycloaktest.Token{Claims: map[string]any{"nonce": "n-0S6_WzA2Mj"}}), "", keygate.ErrWrongTokenType},
		{"header typ at+jwt", f.logout(t, keycloaktest.Token{Header: map[string]any{"typ": "at+jwt"}}), "", keygate.ErrWrongTokenType},
		{"typ claim Bearer", f.logout(t, keycloaktest.Token{Claims: map[string]any{"typ": "Bearer"}}), "", keygate.ErrWrongTokenType},
		{"access token", f.mint(t, keycloaktest.Token{Client: logoutAudience, User: "alice", Claims: map[string]any{"aud": logoutAudience}}), "", keygate.ErrWrongTokenType},
		{"access token with the event but typ Bearer", f.mint(t, keycloaktest.Token{Client: logoutAudience, User: "alice",
			Claims: map[string]any{"aud": logoutAudience, "events": event}}), "", keygate.ErrWrongTokenType},
		{"ID token", f.mint(t, keycloaktest.Token{Client: logoutAudience, User: "alice", Claims: map[string]any{"typ": "ID", "aud": logoutAudience, "nonce": "n"}}), "", keygate.ErrWrongTokenType},

		{"no jti", f.logout(t, keycloaktest.Token{Claims: map[string]any{"jti": nil}}), "", keygate.ErrInvalidClaims},
		{"neither sid nor sub", f.logout(t, keycloaktest.Token{Claims: map[string]any{"sid": nil, "sub": nil}}), "", keygate.ErrInvalidClaims},
		{"no iat", f.logout(t, keycloaktest.Token{Claims: map[string]any{"iat": nil}}), "", keygate.ErrInvalidClaims},
		{"no exp", f.logout(t, keycloaktest.Token{Claims: map[string]any{"exp": nil}}), "", keygate.ErrInvalidClaims},
		{"expired", f.logout(t, keycloaktest.Token{Claims: map[string]any{"exp": now.Add(-2 * time.Minute)}}), "", keygate.ErrExpired},
		{"iat in the future", f.logout(t, keycloaktest.Token{Claims: map[string]any{"iat": now.Add(5 * time.Minute)}}), "", keygate.ErrNotYetValid},

		{"other issuer", f.logout(t, keycloaktest.Token{Claims: map[string]any{"iss": "https://evil.example.com/realms/shop"}}), "", keygate.ErrWrongIssuer},
		{"wrong aud", f.logout(t, keycloaktest.Token{Client: "stranger"}), "", keygate.ErrWrongAudience},
		{"resource server's aud", f.logout(t, keycloaktest.Token{Claims: map[string]any{"aud": "orders-api"}}), "", keygate.ErrWrongAudience},
		{"no aud", f.logout(t, keycloaktest.Token{Claims: map[string]any{"aud": nil}}), "", keygate.ErrWrongAudience},
		{"empty audience asked", valid, "-", keygate.ErrWrongAudience},
		{"empty audience asked, empty aud", f.logout(t, keycloaktest.Token{Claims: map[string]any{"aud": ""}}), "-", keygate.ErrWrongAudience},

		{"alg none", f.logout(t, keycloaktest.Token{Algorithm: keycloaktest.AlgNone}), "", keygate.ErrUnsupportedAlgorithm},
		{"HS256 keyed with the RSA public key", f.logout(t, keycloaktest.Token{Algorithm: "HS256", KeyID: rsKid}), "", keygate.ErrUnsupportedAlgorithm},
		{"other issuer's key under our kid", forgedByOther, "", keygate.ErrBadSignature},
		{"other issuer's key and kid", otherKid, "", keygate.ErrUnknownKey},
		{"tampered sid", tamper(valid), "", keygate.ErrBadSignature},
		{"garbage", "not-a-token", "", keygate.ErrMalformed},
		{"oversized", valid + strings.Repeat("A", 17<<10), "", keygate.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aud := tt.audience
			switch aud {
			case "":
				aud = logoutAudience
			case "-":
				aud = ""
			}
			lt, err := f.v.VerifyLogoutToken(context.Background(), tt.tok, aud)
			if tt.want == nil {
				if err != nil || lt == nil {
					t.Fatalf("VerifyLogoutToken() = %v, %v; want a logout token", lt, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyLogoutToken() error = %v; want %v", err, tt.want)
			}
			if lt != nil {
				t.Errorf("VerifyLogoutToken() returned a token with error %v", err)
			}
			var ke *keygate.Error
			if !errors.As(err, &ke) || strings.Contains(err.Error(), tt.tok) {
				t.Errorf("error %v is not a *keygate.Error, or quotes the token", err)
			}
		})
	}
}

func TestVerifyLogoutTokenFields(t *testing.T) {
	f := newFixture(t, nil)
	now := f.Now().Truncate(time.Second)
	raw := f.logout(t, keycloaktest.Token{SessionID: "s-1", Claims: map[string]any{"jti": "j-1", "iat": now}})
	lt, err := f.v.VerifyLogoutToken(context.Background(), raw, logoutAudience)
	if err != nil {
		t.Fatal(err)
	}
	want := keygate.LogoutToken{
		Issuer: f.idp.Issuer(), Subject: f.idp.Subject("alice"), SessionID: "s-1", JWTID: "j-1",
		IssuedAt: now, ExpiresAt: f.Now().Truncate(time.Second).Add(keycloaktest.LogoutTokenLifespan),
	}
	want.AcceptedUntil = want.ExpiresAt.Add(keygate.DefaultLeeway)
	if lt.Issuer != want.Issuer || lt.Subject != want.Subject || lt.SessionID != want.SessionID || lt.JWTID != want.JWTID ||
		len(lt.Audience) != 1 || lt.Audience[0] != logoutAudience ||
		!lt.IssuedAt.Equal(want.IssuedAt) || !lt.ExpiresAt.Equal(want.ExpiresAt) || !lt.AcceptedUntil.Equal(want.AcceptedUntil) {
		t.Errorf("VerifyLogoutToken() = %+v; want %+v", *lt, want)
	}
}

// TestLogoutTokenIsNotAnAccessToken checks both directions: no logout
// token passes Verify, even when it names the service's audience and the
// verifier accepts untyped tokens, and no access token passes
// VerifyLogoutToken.
func TestLogoutTokenIsNotAnAccessToken(t *testing.T) {
	f := newFixture(t, func(c *keygate.Config) { c.AllowUntypedTokens = true })
	ctx := context.Background()
	aud := map[string]any{"aud": "orders-api"}
	logouts := map[string]string{
		"as Keycloak sends it":   f.logout(t, keycloaktest.Token{Client: "orders-api"}),
		"no typ claim":           f.logout(t, keycloaktest.Token{Client: "orders-api", Claims: map[string]any{"typ": nil}}),
		"no typ at all":          f.logout(t, keycloaktest.Token{Client: "orders-api", Claims: map[string]any{"typ": nil}, Header: map[string]any{"typ": nil}}),
		"header typ JWT, no typ": f.logout(t, keycloaktest.Token{Client: "orders-api", Claims: map[string]any{"typ": nil}, Header: map[string]any{"typ": "JWT"}}),
		"typ claim Bearer":       f.logout(t, keycloaktest.Token{Client: "orders-api", Claims: map[string]any{"typ": "Bearer"}, Header: map[string]any{"typ": "JWT"}}),
	}
	for name, tok := range logouts {
		if _, err := f.v.Verify(ctx, tok); !errors.Is(err, keygate.ErrWrongTokenType) {
			t.Errorf("%s: Verify(logout token) error = %v; want %v", name, err, keygate.ErrWrongTokenType)
		}
	}
	accesses := map[string]string{
		"service account": f.mint(t, keycloaktest.Token{}),
		"user":            f.mint(t, keycloaktest.Token{Client: "cli", User: "alice", Claims: aud}),
		"untyped":         f.mint(t, keycloaktest.Token{Claims: map[string]any{"typ": nil}}),
		"at+jwt":          f.mint(t, keycloaktest.Token{Header: map[string]any{"typ": "at+jwt"}, Claims: map[string]any{"typ": nil}}),
		"nonce-less, sid": f.mint(t, keycloaktest.Token{Client: "cli", User: "alice", SessionID: "s"}),
	}
	for name, tok := range accesses {
		if _, err := f.v.Verify(ctx, tok); err != nil {
			t.Fatalf("%s: Verify(access token) = %v; the test needs a valid access token", name, err)
		}
		for _, a := range []string{"orders-api", "cli"} {
			if _, err := f.v.VerifyLogoutToken(ctx, tok, a); !errors.Is(err, keygate.ErrWrongTokenType) {
				t.Errorf("%s: VerifyLogoutToken(access token, %q) error = %v; want %v", name, a, err, keygate.ErrWrongTokenType)
			}
		}
	}
}

// TestVerifyLogoutTokenAlgorithms checks that Config.Algorithms binds
// logout tokens too.
func TestVerifyLogoutTokenAlgorithms(t *testing.T) {
	f := newFixture(t, func(c *keygate.Config) { c.Algorithms = []string{"RS256"} })
	ctx := context.Background()
	if _, err := f.v.VerifyLogoutToken(ctx, f.logout(t, keycloaktest.Token{}), logoutAudience); err != nil {
		t.Errorf("RS256: %v", err)
	}
	tok := f.logout(t, keycloaktest.Token{Client: "svc-ES256"})
	if _, err := f.v.VerifyLogoutToken(ctx, tok, "svc-ES256"); !errors.Is(err, keygate.ErrUnsupportedAlgorithm) {
		t.Errorf("ES256 outside the allowlist: error = %v; want %v", err, keygate.ErrUnsupportedAlgorithm)
	}
}
