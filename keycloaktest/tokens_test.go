package keycloaktest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/keycloaktest"
)

// testConfig is a realm with clients and users of every kind.
func testConfig() keycloaktest.Config {
	return keycloaktest.Config{
		Realm: "acme",
		Clients: []keycloaktest.Client{
			{
				ID: "svc", Secret: "svc-secret", ServiceAccount: true,
				ServiceAccountRealmRoles:  []string{"batch"},
				ServiceAccountClientRoles: map[string][]string{"api": {"read"}},
			},
			{
				ID: "web", DirectAccessGrants: true,
				Audiences: []string{"api"}, WebOrigins: []string{"https://app.example.com"},
			},
			{ID: "conf", Secret: "c:onf/s+cret%", DirectAccessGrants: true},
			{ID: "es", Secret: "es-secret", ServiceAccount: true, Algorithm: "ES256"},
		},
		Users: []keycloaktest.User{
			{
				Username: "Alice", Password: "alice-pw", Email: "Alice@Example.com", EmailVerified: true,
				FirstName: "Alice", LastName: "Liddell",
				RealmRoles:  []string{"admin"},
				ClientRoles: map[string][]string{"api": {"write"}, "web": {"web-user"}},
				Groups:      []string{"/staff"},
			},
			{Username: "nopw"},
		},
	}
}

func TestTokenEndpoint(t *testing.T) {
	s := keycloaktest.New(t, testConfig())
	cc := url.Values{"grant_type": {"client_credentials"}}
	pw := func(client, user, password, scope string, extra ...string) url.Values {
		v := url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {user}, "password": {password}}
		if scope != "" {
			v.Set("scope", scope)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	with := func(v url.Values, kv ...string) url.Values {
		v2 := url.Values{}
		for k, vs := range v {
			v2[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v2.Set(kv[i], kv[i+1])
		}
		return v2
	}

	for _, tc := range []struct {
		name        string
		form        url.Values
		basic       []string
		wantStatus  int
		wantError   string
		wantDesc    string
		wantRefresh bool
		wantID      bool
	}{
		{name: "client_credentials basic", form: cc, basic: []string{"svc", "svc-secret"}, wantStatus: 200},
		{name: "client_credentials form", form: with(cc, "client_id", "svc", "client_secret", "svc-secret"), wantStatus: 200},
		{name: "client_credentials openid", form: with(cc, "scope", "openid"), basic: []string{"svc", "svc-secret"}, wantStatus: 200},
		{name: "client_credentials wrong secret", form: cc, basic: []string{"svc", "nope"}, wantStatus: 401, wantError: "invalid_client"},
		{name: "client_credentials wrong form secret", form: with(cc, "client_id", "svc", "client_secret", "nope"), wantStatus: 401, wantError: "invalid_client"},
		{name: "client_credentials missing secret", form: with(cc, "client_id", "svc"), wantStatus: 401, wantError: "invalid_client"},
		{name: "client_credentials unknown client", form: cc, basic: []string{"ghost", "x"}, wantStatus: 401, wantError: "invalid_client"},
		{name: "client_credentials no client", form: cc, wantStatus: 401, wantError: "invalid_client"},
		{name: "client_credentials public client", form: with(cc, "client_id", "web"), wantStatus: 401, wantError: "unauthorized_client"},
		{name: "client_credentials without service account", form: cc, basic: []string{"conf", "c:onf/s+cret%"}, wantStatus: 401, wantError: "unauthorized_client"},
		{name: "password", form: pw("web", "alice", "alice-pw", ""), wantStatus: 200, wantRefresh: true},
		{name: "password openid", form: pw("web", "alice", "alice-pw", "openid"), wantStatus: 200, wantRefresh: true, wantID: true},
		{name: "password username case-insensitive", form: pw("web", "ALICE", "alice-pw", ""), wantStatus: 200, wantRefresh: true},
		{name: "password confidential basic", form: pw("", "alice", "alice-pw", "openid"), basic: []string{"conf", "c:onf/s+cret%"}, wantStatus: 200, wantRefresh: true, wantID: true},
		{name: "password confidential form", form: pw("conf", "alice", "alice-pw", "", "client_secret", "c:onf/s+cret%"), wantStatus: 200, wantRefresh: true},
		{name: "password confidential without secret", form: pw("conf", "alice", "alice-pw", ""), wantStatus: 401, wantError: "invalid_client"},
		{name: "password wrong password", form: pw("web", "alice", "wrong", ""), wantStatus: 401, wantError: "invalid_grant", wantDesc: "Invalid user credentials"},
		{name: "password unknown user", form: pw("web", "bob", "alice-pw", ""), wantStatus: 401, wantError: "invalid_grant", wantDesc: "Invalid user credentials"},
		{name: "password user without password", form: pw("web", "nopw", "", ""), wantStatus: 401, wantError: "invalid_grant"},
		{name: "password not allowed", form: pw("svc", "alice", "alice-pw", "", "client_secret", "svc-secret"), wantStatus: 400, wantError: "unauthorized_client"},
		{name: "invalid scope", form: pw("web", "alice", "alice-pw", "openid admin"), wantStatus: 400, wantError: "invalid_scope"},
		{name: "unsupported grant", form: url.Values{"grant_type": {"authorization_code"}, "client_id": {"web"}}, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "missing grant", form: url.Values{"client_id": {"web"}}, wantStatus: 400, wantError: "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tokenRequest(t, s, tc.form, tc.basic)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %v", status, tc.wantStatus, body)
			}
			if tc.wantError != "" {
				if body["error"] != tc.wantError {
					t.Errorf("error = %v, want %q", body["error"], tc.wantError)
				}
				if tc.wantDesc != "" && body["error_description"] != tc.wantDesc {
					t.Errorf("error_description = %v, want %q", body["error_description"], tc.wantDesc)
				}
				if _, ok := body["access_token"]; ok {
					t.Error("error response has an access_token")
				}
				return
			}
			if body["token_type"] != "Bearer" || body["expires_in"] != 300.0 {
				t.Errorf("token_type %v, expires_in %v", body["token_type"], body["expires_in"])
			}
			if tok, _ := body["access_token"].(string); strings.Count(tok, ".") != 2 {
				t.Errorf("access_token = %q", tok)
			}
			if _, ok := body["refresh_token"]; ok != tc.wantRefresh {
				t.Errorf("refresh_token present: %v, want %v", ok, tc.wantRefresh)
			}
			if _, ok := body["session_state"]; ok != tc.wantRefresh {
				t.Errorf("session_state present: %v, want %v", ok, tc.wantRefresh)
			}
			if _, ok := body["id_token"]; ok != tc.wantID {
				t.Errorf("id_token present: %v, want %v", ok, tc.wantID)
			}
			wantRefreshExp := 0.0
			if tc.wantRefresh {
				wantRefreshExp = 1800
			}
			if body["refresh_expires_in"] != wantRefreshExp {
				t.Errorf("refresh_expires_in = %v, want %v", body["refresh_expires_in"], wantRefreshExp)
			}
		})
	}

	t.Run("GET", func(t *testing.T) {
		resp, err := s.Client().Get(s.TokenURL())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", resp.StatusCode)
		}
	})
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestPasswordTokenShapes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := testConfig()
	cfg.Now = func() time.Time { return now }
	s := keycloaktest.New(t, cfg)
	body := mustToken(t, s, url.Values{
		"grant_type": {"password"}, "client_id": {"web"},
		"username": {"alice"}, "password": {"alice-pw"}, "scope": {"openid phone roles"},
	}, nil)
	keys := fetchJWKS(t, s)

	access := body["access_token"].(string)
	if err := verifyJWT(access, keys); err != nil {
		t.Errorf("access token: %v", err)
	}
	hdr, c := decodeJWT(t, access)
	if hdr["alg"] != "RS256" || hdr["typ"] != "JWT" || hdr["kid"] != s.ActiveKeyID("RS256") {
		t.Errorf("access header = %v", hdr)
	}
	sid, _ := c["sid"].(string)
	for _, tc := range []struct {
		claim string
		want  any
	}{
		{"iss", s.Issuer()},
		{"typ", "Bearer"},
		{"azp", "web"},
		{"sub", s.Subject("alice")},
		{"iat", float64(now.Unix())},
		{"exp", float64(now.Add(5 * time.Minute).Unix())},
		{"acr", "1"},
		{"scope", "openid profile email phone"},
		{"preferred_username", "alice"},
		{"email", "alice@example.com"},
		{"email_verified", true},
		{"given_name", "Alice"},
		{"family_name", "Liddell"},
		{"name", "Alice Liddell"},
		{"sid", body["session_state"]},
	} {
		if got := c[tc.claim]; got != tc.want {
			t.Errorf("access %s = %#v, want %#v", tc.claim, got, tc.want)
		}
	}
	if !uuidRE.MatchString(sid) || !uuidRE.MatchString(c["sub"].(string)) || !uuidRE.MatchString(c["jti"].(string)) {
		t.Errorf("sid %v, sub %v, jti %v: want UUIDs", sid, c["sub"], c["jti"])
	}
	for _, tc := range []struct {
		claim string
		got   []string
		want  []string
	}{
		{"aud", strs(c["aud"]), []string{"api", "account"}},
		{"allowed-origins", strs(c["allowed-origins"]), []string{"https://app.example.com"}},
		{"realm_access", roles(c, ""), []string{"admin", "default-roles-acme", "offline_access", "uma_authorization"}},
		{"resource_access.api", roles(c, "api"), []string{"write"}},
		{"resource_access.web", roles(c, "web"), []string{"web-user"}},
		{"resource_access.account", roles(c, "account"), []string{"manage-account", "manage-account-links", "view-profile"}},
		{"groups", strs(c["groups"]), []string{"/staff"}},
	} {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("access %s = %v, want %v", tc.claim, tc.got, tc.want)
		}
	}
	for _, absent := range []string{"client_id", "clientHost", "clientAddress", "nonce"} {
		if _, ok := c[absent]; ok {
			t.Errorf("access token has %s", absent)
		}
	}

	idTok := body["id_token"].(string)
	if err := verifyJWT(idTok, keys); err != nil {
		t.Errorf("ID token: %v", err)
	}
	_, id := decodeJWT(t, idTok)
	sum := sha256.Sum256([]byte(access))
	for _, tc := range []struct {
		claim string
		want  any
	}{
		{"typ", "ID"},
		{"aud", "web"},
		{"azp", "web"},
		{"iss", s.Issuer()},
		{"sub", s.Subject("alice")},
		{"sid", sid},
		{"at_hash", base64.RawURLEncoding.EncodeToString(sum[:16])},
		{"auth_time", float64(now.Unix())},
		{"preferred_username", "alice"},
		{"email", "alice@example.com"},
	} {
		if got := id[tc.claim]; got != tc.want {
			t.Errorf("ID %s = %#v, want %#v", tc.claim, got, tc.want)
		}
	}
	for _, absent := range []string{"nonce", "realm_access", "scope"} {
		if _, ok := id[absent]; ok {
			t.Errorf("ID token has %s", absent)
		}
	}

	refresh := body["refresh_token"].(string)
	if verifyJWT(refresh, keys) == nil {
		t.Error("refresh token verifies against the published keys")
	}
	rh, r := decodeJWT(t, refresh)
	if rh["alg"] != "HS512" || rh["typ"] != "JWT" || !uuidRE.MatchString(rh["kid"].(string)) {
		t.Errorf("refresh header = %v", rh)
	}
	for _, tc := range []struct {
		claim string
		want  any
	}{
		{"typ", "Refresh"},
		{"aud", s.Issuer()},
		{"iss", s.Issuer()},
		{"azp", "web"},
		{"sid", sid},
		{"sub", s.Subject("alice")},
		{"exp", float64(now.Add(30 * time.Minute).Unix())},
	} {
		if got := r[tc.claim]; got != tc.want {
			t.Errorf("refresh %s = %#v, want %#v", tc.claim, got, tc.want)
		}
	}
}

func TestServiceAccountTokenShape(t *testing.T) {
	s := keycloaktest.New(t, testConfig())
	body := mustToken(t, s, url.Values{"grant_type": {"client_credentials"}}, []string{"svc", "svc-secret"})
	if err := verifyJWT(body["access_token"].(string), fetchJWKS(t, s)); err != nil {
		t.Fatal(err)
	}
	if body["scope"] != "profile email" {
		t.Errorf("response scope = %v", body["scope"])
	}
	_, c := decodeJWT(t, body["access_token"].(string))
	for _, tc := range []struct {
		claim string
		want  any
	}{
		{"typ", "Bearer"},
		{"azp", "svc"},
		{"client_id", "svc"},
		{"clientHost", "127.0.0.1"},
		{"clientAddress", "127.0.0.1"},
		{"preferred_username", "service-account-svc"},
		{"sub", s.Subject("service-account-svc")},
		{"scope", "profile email"},
		{"email_verified", false},
	} {
		if got := c[tc.claim]; got != tc.want {
			t.Errorf("%s = %#v, want %#v", tc.claim, got, tc.want)
		}
	}
	if got, want := strs(c["aud"]), []string{"account", "api"}; !slices.Equal(got, want) {
		t.Errorf("aud = %v, want %v", got, want)
	}
	if got := roles(c, ""); !slices.Contains(got, "batch") || !slices.Contains(got, "default-roles-acme") {
		t.Errorf("realm roles = %v", got)
	}
	if got := roles(c, "api"); !slices.Equal(got, []string{"read"}) {
		t.Errorf("api roles = %v", got)
	}
	for _, absent := range []string{"sid", "email", "name", "given_name", "groups", "allowed-origins"} {
		if _, ok := c[absent]; ok {
			t.Errorf("service account token has %s", absent)
		}
	}
}

func TestOmitDefaultRoles(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{
		OmitDefaultRoles: true,
		Clients: []keycloaktest.Client{
			{ID: "bare", Secret: "x", ServiceAccount: true},
			{ID: "one", Secret: "x", ServiceAccount: true, Audiences: []string{"api"}, ServiceAccountRealmRoles: []string{"r"}},
		},
	})
	for _, tc := range []struct {
		client string
		aud    any
		realm  bool
	}{
		{"bare", nil, false},
		{"one", "api", true},
	} {
		body := mustToken(t, s, url.Values{"grant_type": {"client_credentials"}}, []string{tc.client, "x"})
		_, c := decodeJWT(t, body["access_token"].(string))
		if c["aud"] != tc.aud {
			t.Errorf("%s: aud = %#v, want %#v", tc.client, c["aud"], tc.aud)
		}
		if _, ok := c["realm_access"]; ok != tc.realm {
			t.Errorf("%s: realm_access present %v, want %v", tc.client, ok, tc.realm)
		}
		if _, ok := c["resource_access"]; ok {
			t.Errorf("%s: resource_access present", tc.client)
		}
	}
}

func TestOfflineAccess(t *testing.T) {
	s := keycloaktest.New(t, testConfig())
	body := mustToken(t, s, url.Values{
		"grant_type": {"password"}, "client_id": {"web"}, "username": {"alice"}, "password": {"alice-pw"},
		"scope": {"offline_access"},
	}, nil)
	_, r := decodeJWT(t, body["refresh_token"].(string))
	if r["typ"] != "Offline" || r["exp"] != nil || body["refresh_expires_in"] != 0.0 {
		t.Errorf("typ %v, exp %v, refresh_expires_in %v", r["typ"], r["exp"], body["refresh_expires_in"])
	}
}

var allAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func TestAlgorithms(t *testing.T) {
	wantKey := map[string][2]string{ // kty, crv
		"RS256": {"RSA", ""}, "RS384": {"RSA", ""}, "RS512": {"RSA", ""},
		"PS256": {"RSA", ""}, "PS384": {"RSA", ""}, "PS512": {"RSA", ""},
		"ES256": {"EC", "P-256"}, "ES384": {"EC", "P-384"}, "ES512": {"EC", "P-521"},
		"EdDSA": {"OKP", "Ed25519"},
	}
	for _, alg := range allAlgorithms {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			s := keycloaktest.New(t, keycloaktest.Config{
				Algorithm: alg,
				Clients:   []keycloaktest.Client{{ID: "app", Secret: "x", ServiceAccount: true, DirectAccessGrants: true}},
				Users:     []keycloaktest.User{{Username: "u", Password: "p"}},
			})
			keys := fetchJWKS(t, s)
			kid := s.ActiveKeyID(alg)
			i := slices.IndexFunc(keys, func(k testJWK) bool { return k.Kid == kid })
			if i < 0 {
				t.Fatalf("active key %q not published", kid)
			}
			if k := keys[i]; k.Alg != alg || k.Use != "sig" || k.Kty != wantKey[alg][0] || k.Crv != wantKey[alg][1] {
				t.Errorf("JWK = %+v", k)
			}

			body := mustToken(t, s, url.Values{
				"grant_type": {"password"}, "client_id": {"app"}, "client_secret": {"x"},
				"username": {"u"}, "password": {"p"}, "scope": {"openid"},
			}, nil)
			toks := map[string]string{
				"access":  body["access_token"].(string),
				"id":      body["id_token"].(string),
				"minted":  s.MustMint(t, keycloaktest.Token{}),
				"service": mustToken(t, s, url.Values{"grant_type": {"client_credentials"}}, []string{"app", "x"})["access_token"].(string),
			}
			for name, tok := range toks {
				if err := verifyJWT(tok, keys); err != nil {
					t.Errorf("%s token: %v", name, err)
				}
				if h, _ := decodeJWT(t, tok); h["alg"] != alg || h["kid"] != kid {
					t.Errorf("%s token header = %v", name, h)
				}
			}
			// at_hash uses the hash of the algorithm (SHA-512 for EdDSA).
			_, id := decodeJWT(t, toks["id"])
			var sum []byte
			switch alg[len(alg)-3:] {
			case "256":
				h := sha256.Sum256([]byte(toks["access"]))
				sum = h[:]
			case "384":
				h := sha512.Sum384([]byte(toks["access"]))
				sum = h[:]
			default:
				h := sha512.Sum512([]byte(toks["access"]))
				sum = h[:]
			}
			if want := base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]); id["at_hash"] != want {
				t.Errorf("at_hash = %v, want %s", id["at_hash"], want)
			}
		})
	}
}

func TestClientAlgorithm(t *testing.T) {
	s := keycloaktest.New(t, testConfig())
	kid := s.ActiveKeyID("ES256")
	if kid == "" || kid == s.ActiveKeyID("RS256") {
		t.Fatalf("ActiveKeyID(ES256) = %q", kid)
	}
	body := mustToken(t, s, url.Values{"grant_type": {"client_credentials"}}, []string{"es", "es-secret"})
	tok := body["access_token"].(string)
	if h, _ := decodeJWT(t, tok); h["alg"] != "ES256" || h["kid"] != kid {
		t.Errorf("header = %v", h)
	}
	if err := verifyJWT(tok, fetchJWKS(t, s)); err != nil {
		t.Error(err)
	}
	if h, _ := decodeJWT(t, s.MustMint(t, keycloaktest.Token{Client: "es"})); h["alg"] != "ES256" {
		t.Errorf("minted header = %v", h)
	}
}

func TestMintToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := testConfig()
	cfg.Now = func() time.Time { return now }
	s := keycloaktest.New(t, cfg)
	keys := fetchJWKS(t, s)

	t.Run("default", func(t *testing.T) {
		tok := s.MustMint(t, keycloaktest.Token{})
		if err := verifyJWT(tok, keys); err != nil {
			t.Fatal(err)
		}
		h, c := decodeJWT(t, tok)
		if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] != s.ActiveKeyID("RS256") {
			t.Errorf("header = %v", h)
		}
		if c["azp"] != "svc" || c["typ"] != "Bearer" || c["iss"] != s.Issuer() ||
			c["exp"] != float64(now.Add(5*time.Minute).Unix()) || c["preferred_username"] != "service-account-svc" {
			t.Errorf("claims = %v", c)
		}
	})

	t.Run("user", func(t *testing.T) {
		_, c := decodeJWT(t, s.MustMint(t, keycloaktest.Token{Client: "web", User: "alice", Scope: "openid"}))
		if c["azp"] != "web" || c["sub"] != s.Subject("alice") || c["scope"] != "openid profile email" ||
			!uuidRE.MatchString(c["sid"].(string)) || !slices.Contains(roles(c, ""), "admin") {
			t.Errorf("claims = %v", c)
		}
	})

	t.Run("claims and header", func(t *testing.T) {
		tok := s.MustMint(t, keycloaktest.Token{
			Claims: map[string]any{
				"exp":   now.Add(-time.Minute),
				"aud":   []string{"x", "y"},
				"scope": nil,
				"extra": map[string]any{"k": 1},
			},
			Header: map[string]any{"typ": nil, "cty": "JWT"},
		})
		if err := verifyJWT(tok, keys); err != nil {
			t.Fatal(err)
		}
		h, c := decodeJWT(t, tok)
		if _, ok := h["typ"]; ok || h["cty"] != "JWT" || h["alg"] != "RS256" {
			t.Errorf("header = %v", h)
		}
		if _, ok := c["scope"]; ok {
			t.Error("scope not deleted")
		}
		if c["exp"] != float64(now.Add(-time.Minute).Unix()) || !slices.Equal(strs(c["aud"]), []string{"x", "y"}) || c["extra"] == nil {
			t.Errorf("claims = %v", c)
		}
	})

	t.Run("KeyID and algorithm", func(t *testing.T) {
		old := s.ActiveKeyID("RS256")
		newKID, err := s.AddKey("RS256")
		if err != nil {
			t.Fatal(err)
		}
		defer s.RemoveKey(newKID)
		keys := fetchJWKS(t, s)
		if h, _ := decodeJWT(t, s.MustMint(t, keycloaktest.Token{})); h["kid"] != newKID {
			t.Errorf("default kid = %v, want the new active key %s", h["kid"], newKID)
		}
		tok := s.MustMint(t, keycloaktest.Token{KeyID: old})
		if h, _ := decodeJWT(t, tok); h["kid"] != old {
			t.Errorf("kid = %v, want %s", h["kid"], old)
		}
		if err := verifyJWT(tok, keys); err != nil {
			t.Error(err)
		}
		// PS256 with a key published for RS256: valid PSS signature, but an
		// alg that does not match the JWK.
		tok = s.MustMint(t, keycloaktest.Token{KeyID: old, Algorithm: "PS256"})
		h, _ := decodeJWT(t, tok)
		parts := strings.Split(tok, ".")
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		if h["alg"] != "PS256" || verifySignature("PS256", s.PublicKey(old), []byte(parts[0]+"."+parts[1]), sig) != nil {
			t.Errorf("PS256 with RS256 key: header %v", h)
		}
		if verifyJWT(tok, keys) == nil {
			t.Error("alg mismatch not detected by the test verifier")
		}
		// An active key of another algorithm, chosen by Algorithm.
		tok = s.MustMint(t, keycloaktest.Token{Algorithm: "ES256"})
		if h, _ := decodeJWT(t, tok); h["kid"] != s.ActiveKeyID("ES256") {
			t.Errorf("ES256 token header %v", h)
		}
		if err := verifyJWT(tok, keys); err != nil {
			t.Error(err)
		}
	})

	t.Run("none", func(t *testing.T) {
		tok := s.MustMint(t, keycloaktest.Token{Algorithm: keycloaktest.AlgNone})
		if !strings.HasSuffix(tok, ".") || strings.Count(tok, ".") != 2 {
			t.Errorf("token %q does not have an empty signature", tok)
		}
		h, c := decodeJWT(t, tok)
		if h["alg"] != "none" || h["kid"] != s.ActiveKeyID("RS256") || c["typ"] != "Bearer" {
			t.Errorf("header %v", h)
		}
	})

	t.Run("HS256 with public key", func(t *testing.T) {
		kid := s.ActiveKeyID("RS256")
		tok := s.MustMint(t, keycloaktest.Token{Algorithm: "HS256"})
		h, _ := decodeJWT(t, tok)
		if h["alg"] != "HS256" || h["kid"] != kid {
			t.Errorf("header %v", h)
		}
		der, err := x509.MarshalPKIXPublicKey(s.PublicKey(kid))
		if err != nil {
			t.Fatal(err)
		}
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		parts := strings.Split(tok, ".")
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(parts[0] + "." + parts[1]))
		if got, want := parts[2], base64.RawURLEncoding.EncodeToString(m.Sum(nil)); got != want {
			t.Errorf("signature is not HMAC-SHA256 keyed with the PEM public key")
		}

		// An explicit secret, for example the DER form.
		tok = s.MustMint(t, keycloaktest.Token{Algorithm: "HS256", Secret: der})
		parts = strings.Split(tok, ".")
		m = hmac.New(sha256.New, der)
		m.Write([]byte(parts[0] + "." + parts[1]))
		if parts[2] != base64.RawURLEncoding.EncodeToString(m.Sum(nil)) {
			t.Errorf("signature is not HMAC-SHA256 keyed with Secret")
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tok := range []keycloaktest.Token{
			{Client: "ghost"},
			{User: "ghost"},
			{KeyID: "ghost"},
			{Algorithm: "ES384"}, // no active ES384 key
			{Algorithm: "XX256"},
			{KeyID: s.ActiveKeyID("RS256"), Algorithm: "ES256"},
			{Scope: "bogus"},
			{Claims: map[string]any{"bad": func() {}}},
		} {
			if _, err := s.MintToken(tok); err == nil {
				t.Errorf("MintToken(%+v) succeeded", tok)
			}
		}
	})
}

func TestMintWithoutClients(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{})
	_, c := decodeJWT(t, s.MustMint(t, keycloaktest.Token{}))
	if c["azp"] != "test-client" || c["aud"] != "account" || c["iss"] != s.URL()+"/realms/test" {
		t.Errorf("claims = %v", c)
	}
	if _, err := s.MintToken(keycloaktest.Token{Client: "test-client"}); err != nil {
		t.Error(err)
	}
}

func TestKeyRotation(t *testing.T) {
	s := keycloaktest.New(t, keycloaktest.Config{
		Clients: []keycloaktest.Client{{ID: "svc", Secret: "x", ServiceAccount: true}},
	})
	issue := func() (int, string) {
		status, body := tokenRequest(t, s, url.Values{"grant_type": {"client_credentials"}}, []string{"svc", "x"})
		if status != http.StatusOK {
			return status, ""
		}
		h, _ := decodeJWT(t, body["access_token"].(string))
		return status, h["kid"].(string)
	}
	published := func() []string {
		var ids []string
		for _, k := range fetchJWKS(t, s) {
			if k.Use == "sig" {
				ids = append(ids, k.Kid)
			}
		}
		return ids
	}

	k1 := s.ActiveKeyID("RS256")
	k2, err := s.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	if got := published(); !slices.Equal(got, []string{k1, k2}) || !slices.Equal(s.KeyIDs(), got) {
		t.Errorf("published %v, KeyIDs %v; want [%s %s]", got, s.KeyIDs(), k1, k2)
	}
	if _, kid := issue(); kid != k2 || s.ActiveKeyID("RS256") != k2 {
		t.Errorf("token kid %s, active %s; want the new key %s", kid, s.ActiveKeyID("RS256"), k2)
	}

	// Pre-publication: the old key signs again while k2 stays published.
	if err := s.SetActiveKey(k1); err != nil {
		t.Fatal(err)
	}
	if _, kid := issue(); kid != k1 {
		t.Errorf("after SetActiveKey(k1): kid %s", kid)
	}
	if err := s.SetActiveKey("ghost"); err == nil {
		t.Error("SetActiveKey of an unknown key succeeded")
	}

	// Removing the active key falls back to the remaining one.
	s.RemoveKey(k1)
	if got := published(); !slices.Equal(got, []string{k2}) {
		t.Errorf("after RemoveKey: published %v", got)
	}
	if _, kid := issue(); kid != k2 {
		t.Errorf("after RemoveKey: kid %s, want %s", kid, k2)
	}
	if _, err := s.MintToken(keycloaktest.Token{KeyID: k1}); err == nil {
		t.Error("removed key still signs")
	}
	if s.PublicKey(k1) != nil {
		t.Error("PublicKey of removed key")
	}
	s.RemoveKey("ghost") // no-op

	// Without any key for the algorithm, issuing fails until AddKey.
	s.RemoveKey(k2)
	if status, _ := issue(); status != http.StatusInternalServerError {
		t.Errorf("without keys: status %d, want 500", status)
	}
	if s.ActiveKeyID("RS256") != "" {
		t.Error("ActiveKeyID after removing all keys")
	}
	if _, err := s.MintToken(keycloaktest.Token{}); err == nil {
		t.Error("MintToken without keys succeeded")
	}
	if keys := fetchJWKS(t, s); len(keys) != 1 || keys[0].Use != "enc" {
		t.Errorf("without signing keys: %+v, want only the enc key", keys)
	}
	k3, err := s.AddKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	if _, kid := issue(); kid != k3 {
		t.Errorf("after AddKey: kid %s, want %s", kid, k3)
	}

	for _, alg := range []string{"", "HS256", "none", "RSA-OAEP"} {
		if _, err := s.AddKey(alg); err == nil {
			t.Errorf("AddKey(%q) succeeded", alg)
		}
	}
}

func TestSubjectStable(t *testing.T) {
	a := keycloaktest.New(t, keycloaktest.Config{})
	if a.Subject("Bob") != a.Subject("bob") || a.Subject("bob") == a.Subject("alice") || !uuidRE.MatchString(a.Subject("bob")) {
		t.Errorf("Subject: %s %s %s", a.Subject("Bob"), a.Subject("bob"), a.Subject("alice"))
	}
}

func TestMintLogoutToken(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := testConfig()
	cfg.Now = func() time.Time { return now }
	s := keycloaktest.New(t, cfg)
	keys := fetchJWKS(t, s)

	t.Run("as Keycloak sends it", func(t *testing.T) {
		sid := "5f0c3e5e-7d0a-4c1e-9a3b-1f2e3d4c5b6a"
		tok := s.MustMintLogout(t, keycloaktest.Token{Client: "web", User: "alice", SessionID: sid})
		if err := verifyJWT(tok, keys); err != nil {
			t.Fatal(err)
		}
		h, c := decodeJWT(t, tok)
		if len(h) != 3 || h["alg"] != "RS256" || h["typ"] != "logout+jwt" || h["kid"] != s.ActiveKeyID("RS256") {
			t.Errorf("header = %v", h)
		}
		want := map[string]any{
			"iss": s.Issuer(), "aud": "web", "sub": s.Subject("alice"), "sid": sid, "typ": "Logout",
			"iat": float64(now.Unix()), "exp": float64(now.Add(keycloaktest.LogoutTokenLifespan).Unix()),
		}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("claim %s = %v; want %v", k, c[k], v)
			}
		}
		ev, _ := c["events"].(map[string]any)
		if len(ev) != 1 || ev[keycloaktest.LogoutEvent] == nil {
			t.Errorf("events = %v; want {%q: {}}", c["events"], keycloaktest.LogoutEvent)
		}
		if jti, _ := c["jti"].(string); !uuidRE.MatchString(jti) {
			t.Errorf("jti = %v; want a UUID", c["jti"])
		}
		if len(c) != len(want)+2 {
			t.Errorf("claims = %v; want exactly %d", c, len(want)+2)
		}
	})

	t.Run("session of an access token", func(t *testing.T) {
		_, at := decodeJWT(t, s.MustMint(t, keycloaktest.Token{Client: "web", User: "alice", SessionID: "s-1"}))
		_, lt := decodeJWT(t, s.MustMintLogout(t, keycloaktest.Token{Client: "web", User: "alice", SessionID: "s-1"}))
		if at["sid"] != "s-1" || lt["sid"] != "s-1" || at["sub"] != lt["sub"] {
			t.Errorf("access sid %v sub %v, logout sid %v sub %v; want the same", at["sid"], at["sub"], lt["sid"], lt["sub"])
		}
	})

	t.Run("new session and no sid", func(t *testing.T) {
		_, c := decodeJWT(t, s.MustMintLogout(t, keycloaktest.Token{User: "alice"}))
		if sid, _ := c["sid"].(string); !uuidRE.MatchString(sid) || c["aud"] != "svc" {
			t.Errorf("sid = %v, aud = %v; want a new UUID and the first client", c["sid"], c["aud"])
		}
		_, c = decodeJWT(t, s.MustMintLogout(t, keycloaktest.Token{User: "alice", Claims: map[string]any{"sid": nil}}))
		if _, ok := c["sid"]; ok {
			t.Errorf("sid = %v; want none", c["sid"])
		}
	})

	t.Run("client algorithm", func(t *testing.T) {
		tok := s.MustMintLogout(t, keycloaktest.Token{Client: "es"})
		if h, _ := decodeJWT(t, tok); h["alg"] != "ES256" {
			t.Errorf("alg = %v; want the client's ES256", h["alg"])
		}
		if err := verifyJWT(tok, keys); err != nil {
			t.Error(err)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		if _, err := s.MintLogoutToken(keycloaktest.Token{User: "nobody"}); err == nil {
			t.Error("no error for an unknown user")
		}
	})
}
