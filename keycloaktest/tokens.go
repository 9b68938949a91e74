package keycloaktest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// AlgNone is the Token.Algorithm that produces an unsigned token: header alg
// "none" and an empty signature.
const AlgNone = "none"

// Token describes a token for [Server.MintToken]. The zero value describes
// the access token the token endpoint would issue to the service account of
// the first configured client (or of a client "test-client" if there is
// none), signed with the active key for that client's algorithm. Other
// kinds of token can be described through Claims, for example an ID token
// with "typ": "ID" and "aud" set to the client ID.
type Token struct {
	// Client is the ID of the client the token is issued to (azp). Zero
	// means the first configured client. It must name a configured client
	// unless no client is configured.
	Client string

	// User is the username of the user the token is issued to. Zero means
	// the client's service account, whether or not the client has one.
	User string

	// SessionID is the sid claim of a token for User. Zero means a new
	// random session, as each login makes; give the same SessionID to an
	// access token and a logout token to log that session out. With no
	// User it sets a sid on the service account's token, which Keycloak
	// 26 does not issue.
	SessionID string

	// Scope is the requested scope parameter, such as "openid address".
	// The default scopes "profile email" are always granted. Logout
	// tokens ignore it.
	Scope string

	// Claims are merged over the default payload. A nil value deletes the
	// default claim; a time.Time value is encoded as a NumericDate
	// (seconds since the epoch). Other values are encoded with
	// encoding/json.
	Claims map[string]any

	// Header is merged over the default header {"alg", "typ":"JWT", "kid"};
	// a nil value deletes the default member.
	Header map[string]any

	// KeyID selects the published signing key by ID. Zero means the active
	// key for Algorithm if that is an asymmetric algorithm, else the active
	// key for the client's algorithm.
	KeyID string

	// Algorithm is the JWS algorithm to sign with. Zero means the client's
	// algorithm, or with KeyID the algorithm the key is published for.
	// With KeyID, any algorithm suiting the key type may be given, for
	// example PS256 with a key published for RS256.
	//
	// Two values produce forged tokens for attack tests:
	// [AlgNone] produces an unsigned token; HS256, HS384 and HS512 sign
	// with HMAC keyed by Secret, by default the PEM ("PUBLIC KEY") encoding
	// of the selected key's public key, the classic algorithm-confusion
	// attack. Both keep the selected key's kid in the header.
	Algorithm string

	// Secret is the HMAC key for HS256, HS384 and HS512. Zero means the
	// PEM-encoded public key described under Algorithm.
	Secret []byte
}

// MintToken returns a token described by t without going through the token
// endpoint. It is safe to call concurrently with serving.
func (s *Server) MintToken(t Token) (string, error) {
	return s.mint(t, false)
}

// LogoutEvent is the member of a logout token's events claim that makes
// it a logout token (OpenID Connect Back-Channel Logout 1.0 section 2.4).
const LogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenLifespan is exp - iat of the logout tokens Keycloak 26 sends.
const LogoutTokenLifespan = 120 * time.Second

// MintLogoutToken returns the logout token Keycloak 26.7.3 posts to a
// client's back-channel logout URL (OpenID Connect Back-Channel Logout
// 1.0) when t's session ends, as measured: header
// {"alg", "typ": "logout+jwt", "kid"}, claims iss, aud (the client ID, as
// a string), sub, sid, events {[LogoutEvent]: {}}, iat, exp = iat +
// [LogoutTokenLifespan], a UUID jti and typ "Logout". It is signed with the
// active key for the client's algorithm, which Keycloak takes from the
// client's ID token signature algorithm.
//
// t.Client is the client notified (aud), t.User whose session ended (sub)
// and t.SessionID the session (sid; zero means a new random one).
// Claims {"sid": nil} gives the token Keycloak sends when the client's
// "Backchannel logout session required" is off. Claims, Header, KeyID,
// Algorithm and Secret forge tokens as for [Server.MintToken].
func (s *Server) MintLogoutToken(t Token) (string, error) {
	return s.mint(t, true)
}

// MustMintLogout is like [Server.MintLogoutToken] but stops the test with
// tb.Fatal on error.
func (s *Server) MustMintLogout(tb TB, t Token) string {
	tb.Helper()
	tok, err := s.MintLogoutToken(t)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// mint is MintToken, or MintLogoutToken when logout is set.
func (s *Server) mint(t Token, logout bool) (string, error) {
	c := s.defcli
	if t.Client != "" {
		var ok bool
		if c, ok = s.clients[t.Client]; !ok {
			if len(s.clients) > 0 || t.Client != s.defcli.ID {
				return "", fmt.Errorf("keycloaktest: unknown client %q", t.Client)
			}
			c = s.defcli
		}
	}
	g := grant{client: c, clientAddr: "127.0.0.1", now: s.cfg.Now()}
	if t.User != "" {
		u := s.lookupUser(t.User)
		if u == nil {
			return "", fmt.Errorf("keycloaktest: unknown user %q", t.User)
		}
		g.user = u
		g.sid = newUUID()
	}
	if t.SessionID != "" {
		g.sid = t.SessionID
	}
	var err error
	if g.scopes, err = parseScope(t.Scope); err != nil {
		return "", fmt.Errorf("keycloaktest: %w", err)
	}

	// Select the key and the algorithm.
	alg := t.Algorithm
	forged := alg == AlgNone || strings.HasPrefix(alg, "HS")
	s.mu.Lock()
	var k *signingKey
	switch {
	case t.KeyID != "":
		k = s.keyLocked(t.KeyID)
		if k == nil {
			s.mu.Unlock()
			return "", fmt.Errorf("keycloaktest: unknown key %q", t.KeyID)
		}
		if alg == "" {
			alg = k.alg
		}
	default:
		if alg == "" {
			alg = s.algFor(c)
		}
		keyAlg := alg
		if forged {
			keyAlg = s.algFor(c)
		}
		k = s.active[keyAlg]
		if k == nil {
			s.mu.Unlock()
			return "", fmt.Errorf("keycloaktest: no active %s key", keyAlg)
		}
	}
	s.mu.Unlock()

	header := map[string]any{"alg": alg, "typ": "JWT", "kid": k.kid}
	claims := s.accessClaims
	if logout {
		header["typ"] = "logout+jwt"
		claims = s.logoutClaims
	}
	mergeInto(header, t.Header)
	payload := claims(g)
	mergeInto(payload, t.Claims)

	input, err := signingInput(header, payload)
	if err != nil {
		return "", err
	}
	var sig []byte
	switch {
	case alg == AlgNone:
	case strings.HasPrefix(alg, "HS"):
		secret := t.Secret
		if secret == nil {
			if secret, err = publicKeyPEM(k.priv.Public()); err != nil {
				return "", err
			}
		}
		sig, err = hmacSign(alg, secret, []byte(input))
	default:
		sig, err = sign(alg, k.priv, []byte(input))
	}
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// MustMint is like [Server.MintToken] but stops the test with tb.Fatal on
// error.
func (s *Server) MustMint(tb TB, t Token) string {
	tb.Helper()
	tok, err := s.MintToken(t)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// Subject returns the sub claim of tokens for the user named username, or,
// with "service-account-{client ID}", for a client's service account. It is
// a UUID derived from the realm and the lowercased username, so it is
// stable across servers with the same realm.
func (s *Server) Subject(username string) string {
	sum := sha256.Sum256([]byte("keycloaktest\x00" + s.cfg.Realm + "\x00" + strings.ToLower(username)))
	return formatUUID(sum[:])
}

// lookupUser finds a user case-insensitively, as Keycloak does.
func (s *Server) lookupUser(username string) *User {
	return s.users[strings.ToLower(username)]
}

// A grant is what a token is issued for: a client, optionally a user, the
// granted scopes and the session.
type grant struct {
	client     *Client
	user       *User    // nil for the client's service account
	scopes     []string // scopes for the scope claim, in order
	sid        string   // session ID; empty for service accounts
	clientAddr string   // remote address, for service-account claims
	now        time.Time
}

func (g *grant) username() string {
	if g.user == nil {
		return "service-account-" + strings.ToLower(g.client.ID)
	}
	return strings.ToLower(g.user.Username)
}

func (g *grant) scopeClaim() string { return strings.Join(g.scopes, " ") }

func (g *grant) hasScope(scope string) bool { return slices.Contains(g.scopes, scope) }

// knownScope reports whether a request may name scope, one of the client
// scopes of a new Keycloak realm, and whether it appears in the scope claim
// (Keycloak's include.in.token.scope).
func knownScope(scope string) (known, inClaim bool) {
	switch scope {
	case "openid", "profile", "email", "address", "phone", "offline_access",
		"microprofile-jwt", "organization":
		return true, true
	case "roles", "web-origins", "acr", "basic":
		return true, false
	}
	return false, false
}

// parseScope returns the scopes of the scope claim for a request with the
// scope parameter requested: "openid" if requested, the default scopes
// "profile email", then the requested optional scopes.
func parseScope(requested string) ([]string, error) {
	fields := strings.Fields(requested)
	var bad []string
	for _, f := range fields {
		if known, _ := knownScope(f); !known {
			bad = append(bad, f)
		}
	}
	if len(bad) > 0 {
		return nil, &oauthError{status: 400, code: "invalid_scope", desc: "Invalid scopes: " + strings.Join(bad, " ")}
	}
	var out []string
	if slices.Contains(fields, "openid") {
		out = append(out, "openid")
	}
	out = append(out, "profile", "email")
	for _, f := range fields {
		if _, inClaim := knownScope(f); inClaim && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// roles returns the realm roles and client roles of the grant's subject,
// including the realm's default roles unless omitted.
func (s *Server) roles(g *grant) (realm []string, client map[string][]string) {
	if g.user != nil {
		realm, client = g.user.RealmRoles, g.user.ClientRoles
	} else {
		realm, client = g.client.ServiceAccountRealmRoles, g.client.ServiceAccountClientRoles
	}
	realm = slices.Clone(realm)
	client = cloneRoles(client)
	if !s.cfg.OmitDefaultRoles {
		realm = appendNew(realm, "default-roles-"+strings.ToLower(s.cfg.Realm), "offline_access", "uma_authorization")
		if client == nil {
			client = make(map[string][]string)
		}
		client["account"] = appendNew(client["account"], "manage-account", "manage-account-links", "view-profile")
	}
	return realm, client
}

// appendNew appends the elements of add not already in s.
func appendNew(s []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(s, a) {
			s = append(s, a)
		}
	}
	return s
}

// accessClaims returns the payload of an access token for g.
func (s *Server) accessClaims(g grant) map[string]any {
	c := s.commonClaims(&g, "Bearer")
	c["exp"] = g.now.Add(s.cfg.AccessTokenLifespan).Unix()
	c["scope"] = g.scopeClaim()
	if len(g.client.WebOrigins) > 0 {
		c["allowed-origins"] = slices.Clone(g.client.WebOrigins)
	}

	realmRoles, clientRoles := s.roles(&g)
	if len(realmRoles) > 0 {
		c["realm_access"] = map[string]any{"roles": realmRoles}
	}
	aud := slices.Clone(g.client.Audiences)
	resource := map[string]any{}
	for _, id := range slices.Sorted(maps.Keys(clientRoles)) {
		if len(clientRoles[id]) == 0 {
			continue
		}
		resource[id] = map[string]any{"roles": clientRoles[id]}
		if id != g.client.ID {
			aud = appendNew(aud, id)
		}
	}
	if len(resource) > 0 {
		c["resource_access"] = resource
	}
	switch len(aud) {
	case 0:
	case 1:
		c["aud"] = aud[0]
	default:
		c["aud"] = aud
	}

	if g.user == nil {
		c["client_id"] = g.client.ID
		c["clientHost"] = g.clientAddr
		c["clientAddress"] = g.clientAddr
	} else if len(g.user.Groups) > 0 {
		c["groups"] = slices.Clone(g.user.Groups)
	}
	return c
}

// logoutClaims returns the payload of the logout token Keycloak sends to
// g's client when g's session ends.
func (s *Server) logoutClaims(g grant) map[string]any {
	c := map[string]any{
		"iat":    g.now.Unix(),
		"exp":    g.now.Add(LogoutTokenLifespan).Unix(),
		"jti":    newUUID(),
		"iss":    s.Issuer(),
		"aud":    g.client.ID,
		"sub":    s.Subject(g.username()),
		"typ":    "Logout",
		"events": map[string]any{LogoutEvent: map[string]any{}},
	}
	if g.sid == "" {
		g.sid = newUUID()
	}
	c["sid"] = g.sid
	return c
}

// idClaims returns the payload of an ID token for g, issued alongside
// accessToken signed with alg.
func (s *Server) idClaims(g grant, accessToken, alg string) map[string]any {
	c := s.commonClaims(&g, "ID")
	c["exp"] = g.now.Add(s.cfg.AccessTokenLifespan).Unix()
	c["aud"] = g.client.ID
	c["auth_time"] = g.now.Unix()
	c["at_hash"] = atHash(accessToken, alg)
	if g.user != nil && len(g.user.Groups) > 0 {
		c["groups"] = slices.Clone(g.user.Groups)
	}
	return c
}

// refreshClaims returns the payload of a refresh token for g; an offline
// token if the offline_access scope was granted.
func (s *Server) refreshClaims(g grant) map[string]any {
	typ := "Refresh"
	if g.hasScope("offline_access") {
		typ = "Offline"
	}
	c := map[string]any{
		"iat":   g.now.Unix(),
		"jti":   newUUID(),
		"iss":   s.Issuer(),
		"aud":   s.Issuer(),
		"sub":   s.Subject(g.username()),
		"typ":   typ,
		"azp":   g.client.ID,
		"scope": strings.Join(appendNew(slices.Clone(g.scopes), "roles", "web-origins", "acr", "basic"), " "),
	}
	if typ == "Refresh" {
		c["exp"] = g.now.Add(s.cfg.RefreshTokenLifespan).Unix()
	}
	if g.sid != "" {
		c["sid"] = g.sid
	}
	return c
}

// commonClaims returns the claims shared by access and ID tokens.
func (s *Server) commonClaims(g *grant, typ string) map[string]any {
	c := map[string]any{
		"iat":                g.now.Unix(),
		"jti":                newUUID(),
		"iss":                s.Issuer(),
		"sub":                s.Subject(g.username()),
		"typ":                typ,
		"azp":                g.client.ID,
		"acr":                "1",
		"preferred_username": g.username(),
		"email_verified":     false,
	}
	if g.sid != "" {
		c["sid"] = g.sid
	}
	if u := g.user; u != nil {
		c["email_verified"] = u.EmailVerified
		if name := strings.TrimSpace(u.FirstName + " " + u.LastName); name != "" {
			c["name"] = name
		}
		setNonEmpty(c, "given_name", u.FirstName)
		setNonEmpty(c, "family_name", u.LastName)
		setNonEmpty(c, "email", strings.ToLower(u.Email))
	}
	return c
}

func setNonEmpty(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// atHash returns the OpenID Connect at_hash of accessToken for alg: the
// left half of its hash, base64url-encoded. EdDSA uses SHA-512 as Keycloak
// does for Ed25519.
func atHash(accessToken, alg string) string {
	h := hashFor(alg)
	if h == 0 {
		h = hashFor("HS512")
	}
	sum := digest(h, []byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// mergeInto sets the entries of src in dst, deleting those with nil values
// and encoding time.Time values as NumericDates.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		switch v := v.(type) {
		case nil:
			delete(dst, k)
		case time.Time:
			dst[k] = v.Unix()
		default:
			dst[k] = v
		}
	}
}

// signingInput returns the base64url-encoded header and payload joined by a
// dot.
func signingInput(header, claims map[string]any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("keycloaktest: encoding header: %w", err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keycloaktest: encoding claims: %w", err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(p), nil
}

// signJWT returns a compact JWS of claims signed by k with alg.
func signJWT(k *signingKey, alg string, claims map[string]any) (string, error) {
	input, err := signingInput(map[string]any{"alg": alg, "typ": "JWT", "kid": k.kid}, claims)
	if err != nil {
		return "", err
	}
	sig, err := sign(alg, k.priv, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// issue returns the token endpoint response for g: an access token, and for
// users a refresh token and, with the openid scope, an ID token.
func (s *Server) issue(g grant) (map[string]any, error) {
	alg := s.algFor(g.client)
	s.mu.Lock()
	k := s.active[alg]
	s.mu.Unlock()
	if k == nil {
		return nil, errors.New("keycloaktest: no active " + alg + " key")
	}

	access, err := signJWT(k, alg, s.accessClaims(g))
	if err != nil {
		return nil, err
	}
	resp := map[string]any{
		"access_token":       access,
		"expires_in":         int64(s.cfg.AccessTokenLifespan / time.Second),
		"refresh_expires_in": 0,
		"token_type":         "Bearer",
		"not-before-policy":  0,
		"scope":              g.scopeClaim(),
	}
	if g.user == nil {
		return resp, nil
	}

	resp["session_state"] = g.sid
	if !g.hasScope("offline_access") {
		resp["refresh_expires_in"] = int64(s.cfg.RefreshTokenLifespan / time.Second)
	}
	refreshInput, err := signingInput(
		map[string]any{"alg": "HS512", "typ": "JWT", "kid": s.hmacKID},
		s.refreshClaims(g))
	if err != nil {
		return nil, err
	}
	sig, _ := hmacSign("HS512", s.hmacKey, []byte(refreshInput))
	resp["refresh_token"] = refreshInput + "." + base64.RawURLEncoding.EncodeToString(sig)

	if g.hasScope("openid") {
		if resp["id_token"], err = signJWT(k, alg, s.idClaims(g, access, alg)); err != nil {
			return nil, err
		}
	}
	return resp, nil
}
