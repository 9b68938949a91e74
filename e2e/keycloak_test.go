//go:build e2e

package e2e

// Helpers that talk to Keycloak: tokens, introspection, the admin REST
// API, and token inspection. Tokens are never logged whole: short() keeps
// the first 12 characters.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/jwks"
)

var httpc = &http.Client{Timeout: 20 * time.Second}

// short is a token's first 12 characters, for logs.
func short(tok string) string {
	if len(tok) > 12 {
		return tok[:12] + "…"
	}
	return tok
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	TokenType    string `json:"token_type"`
}

// postForm posts form to u, with basic auth when user is set, and returns
// the status and body.
func postForm(u string, form url.Values, user, pass string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// grant asks a token endpoint for tokens. Error texts hold the endpoint's
// error answer, never a token.
func grant(tokenURL string, form url.Values) (tokenResponse, error) {
	var tr tokenResponse
	status, body, err := postForm(tokenURL, form, "", "")
	if err != nil {
		return tr, err
	}
	if status != http.StatusOK {
		return tr, fmt.Errorf("token endpoint %s: HTTP %d: %.300s", tokenURL, status, body)
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return tr, fmt.Errorf("token endpoint %s: %w", tokenURL, err)
	}
	if tr.AccessToken == "" {
		return tr, fmt.Errorf("token endpoint %s: no access_token in the answer", tokenURL)
	}
	return tr, nil
}

func clientCredentials(tokenURL, client, secret string) (tokenResponse, error) {
	return grant(tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {secret}})
}

func password(user, pass string) (tokenResponse, error) {
	return grant(kc.TokenURL, url.Values{"grant_type": {"password"}, "client_id": {"orders-cli"},
		"username": {user}, "password": {pass}, "scope": {"openid"}})
}

// client is a confidential client of the keygate realm with a service
// account.
type client struct{ id, secret string }

var (
	worker = client{"orders-worker", "worker-secret"}
	es256  = client{"es256-client", "es256-secret"}
	eddsa  = client{"eddsa-client", "eddsa-secret"}
	noAud  = client{"no-aud-client", "no-aud-secret"}
	shortC = client{"short-client", "short-secret"}
)

// mustClient returns a client_credentials token response of the keygate
// realm.
func mustClient(t testing.TB, c client) tokenResponse {
	t.Helper()
	tr, err := clientCredentials(kc.TokenURL, c.id, c.secret)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// mustPassword returns a password grant token response for user (whose
// password is its name) through orders-cli with scope openid.
func mustPassword(t testing.TB, user string) tokenResponse {
	t.Helper()
	tr, err := password(user, user)
	if err != nil {
		t.Fatal(err)
	}
	if tr.IDToken == "" || tr.RefreshToken == "" {
		t.Fatalf("password grant for %s: no id_token or refresh_token", user)
	}
	return tr
}

func mustOther(t testing.TB) string {
	t.Helper()
	tr, err := clientCredentials(kc.OtherIssuer+"/protocol/openid-connect/token", "other-client", "other-secret")
	if err != nil {
		t.Fatal(err)
	}
	return tr.AccessToken
}

// introspect asks Keycloak's introspection endpoint about tok,
// authenticated as the resource server orders-api, and returns active.
func introspect(t testing.TB, tok string) bool {
	t.Helper()
	status, body, err := postForm(kc.TokenURL+"/introspect", url.Values{"token": {tok}}, "orders-api", "orders-api-secret")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK {
		t.Fatalf("introspection of %s: HTTP %d: %.300s", short(tok), status, body)
	}
	var r struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Active == nil {
		t.Fatalf("introspection of %s: no active member (%v): %.300s", short(tok), err, body)
	}
	return *r.Active
}

// --- token inspection ----------------------------------------------------

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

func segment(t testing.TB, tok string, i int) []byte {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %s has %d parts", short(tok), len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("token %s: segment %d: %v", short(tok), i, err)
	}
	return b
}

// kidOf is the kid of tok's header, for goroutines that must not fail a
// test.
func kidOf(tok string) (string, error) {
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "", fmt.Errorf("token %s: header: %w", short(tok), err)
	}
	var hd header
	if err := json.Unmarshal(b, &hd); err != nil {
		return "", fmt.Errorf("token %s: header: %w", short(tok), err)
	}
	return hd.Kid, nil
}

func headerOf(t testing.TB, tok string) header {
	t.Helper()
	var h header
	if err := json.Unmarshal(segment(t, tok, 0), &h); err != nil {
		t.Fatalf("token %s: header: %v", short(tok), err)
	}
	return h
}

func claimsOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	var c map[string]any
	if err := json.Unmarshal(segment(t, tok, 1), &c); err != nil {
		t.Fatalf("token %s: payload: %v", short(tok), err)
	}
	return c
}

// expOf is the token's exp.
func expOf(t testing.TB, tok string) time.Time {
	t.Helper()
	exp, ok := claimsOf(t, tok)["exp"].(float64)
	if !ok {
		t.Fatalf("token %s has no numeric exp", short(tok))
	}
	return time.Unix(int64(exp), 0)
}

// published returns the JWKS of the keygate realm as kid -> alg.
func published(t testing.TB) map[string]string {
	t.Helper()
	resp, err := httpc.Get(kc.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid, Alg, Use string
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	m := map[string]string{}
	for _, k := range set.Keys {
		m[k.Kid] = k.Alg
	}
	return m
}

// --- keygate plumbing ----------------------------------------------------

// newSource starts a key source for the keygate realm, by discovery from
// the issuer, waits until it holds keys and closes it with t.
func newSource(t testing.TB, cfg jwks.Config) *jwks.Source {
	t.Helper()
	return newSourceUntil(t, t, cfg)
}

// newSourceUntil is newSource, but the source lives until owner ends.
func newSourceUntil(t, owner testing.TB, cfg jwks.Config) *jwks.Source {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = kc.Issuer
	}
	src, err := jwks.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src.Start()
	owner.Cleanup(func() { src.Close() })
	select {
	case <-src.Ready():
	case <-time.After(30 * time.Second):
		t.Fatalf("key source for %s not ready after 30s: %v", cfg.Issuer, src.Status().LastError)
	}
	return src
}

// newVerifier returns a verifier of the keygate realm for audience
// orders-api on keys; change tweaks the config first.
func newVerifier(t testing.TB, keys keygate.KeySet, change func(*keygate.Config)) *keygate.Verifier {
	t.Helper()
	cfg := keygate.Config{
		Issuer:    kc.Issuer,
		Audiences: []string{"orders-api"},
		Keys:      keys,
		Mapping:   keygate.ClaimMapping{RoleClients: []string{"orders-api"}},
	}
	if change != nil {
		change(&cfg)
	}
	v, err := keygate.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustVerify(t testing.TB, v *keygate.Verifier, tok string) *keygate.Principal {
	t.Helper()
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("token %s (kid %s) refused: %v", short(tok), headerOf(t, tok).Kid, err)
	}
	return p
}

func mustRefuse(t testing.TB, v *keygate.Verifier, tok string, want error) {
	t.Helper()
	_, err := v.Verify(context.Background(), tok)
	if !errors.Is(err, want) {
		t.Fatalf("token %s: got error %v, want %v", short(tok), err, want)
	}
}

// poll calls cond every 100ms until it reports true or timeout passes,
// and reports whether it did.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sameSet reports whether a and b hold the same strings, order and
// duplicates aside.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// --- admin REST API ------------------------------------------------------

// admin calls Keycloak's admin REST API as the master realm's admin. Its
// tokens live 60 s, so a new one is fetched when less than 20 s is left.
type admin struct {
	mu      sync.Mutex
	token   string
	expires time.Time
}

var adminAPI admin

func (a *admin) bearer(t testing.TB) string {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" || time.Until(a.expires) < 20*time.Second {
		tr, err := grant(kc.URL+"/realms/master/protocol/openid-connect/token", url.Values{"grant_type": {"password"},
			"client_id": {"admin-cli"}, "username": {kc.AdminUser}, "password": {kc.AdminPassword}})
		if err != nil {
			t.Fatalf("admin token: %v", err)
		}
		a.token, a.expires = tr.AccessToken, time.Now().Add(time.Duration(tr.ExpiresIn)*time.Second)
	}
	return a.token
}

// do sends method path (below /admin/realms/<realm>) with body as JSON,
// decodes the answer into out when it is not nil, and returns the answer.
// A status other than want fails t.
func (a *admin) do(t testing.TB, method, path string, body, out any, want int) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, kc.URL+"/admin/realms/"+kc.Realm+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.bearer(t))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("admin %s %s: HTTP %d, want %d: %.300s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("admin %s %s: %v", method, path, err)
		}
	}
	return resp
}

func (a *admin) get(t testing.TB, path string, out any) {
	t.Helper()
	a.do(t, http.MethodGet, path, nil, out, http.StatusOK)
}

type adminUser struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
}

type adminRole struct {
	Name string `json:"name"`
}

// user returns the user named username.
func (a *admin) user(t testing.TB, username string) adminUser {
	t.Helper()
	var us []adminUser
	a.get(t, "/users?exact=true&username="+url.QueryEscape(username), &us)
	if len(us) != 1 {
		t.Fatalf("admin: %d users named %q", len(us), username)
	}
	return us[0]
}

// clientUUID returns the internal id of the client with clientId id.
func (a *admin) clientUUID(t testing.TB, id string) string {
	t.Helper()
	var cs []struct {
		ID string `json:"id"`
	}
	a.get(t, "/clients?clientId="+url.QueryEscape(id), &cs)
	if len(cs) != 1 {
		t.Fatalf("admin: %d clients %q", len(cs), id)
	}
	return cs[0].ID
}

// serviceAccount returns the service-account user of client id.
func (a *admin) serviceAccount(t testing.TB, id string) adminUser {
	t.Helper()
	var u adminUser
	a.get(t, "/clients/"+a.clientUUID(t, id)+"/service-account-user", &u)
	return u
}

// realmRoles returns the effective (composites expanded) realm roles of
// user userID.
func (a *admin) realmRoles(t testing.TB, userID string) []string {
	t.Helper()
	var rs []adminRole
	a.get(t, "/users/"+userID+"/role-mappings/realm/composite", &rs)
	return roleNames(rs)
}

// clientRoles returns the effective roles of user userID on client id.
func (a *admin) clientRoles(t testing.TB, userID, id string) []string {
	t.Helper()
	var rs []adminRole
	a.get(t, "/users/"+userID+"/role-mappings/clients/"+a.clientUUID(t, id)+"/composite", &rs)
	return roleNames(rs)
}

func roleNames(rs []adminRole) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

// keysInfo is GET /admin/realms/<realm>/keys.
type keysInfo struct {
	Active map[string]string `json:"active"`
	Keys   []struct {
		Kid              string `json:"kid"`
		Algorithm        string `json:"algorithm"`
		Status           string `json:"status"`
		ProviderID       string `json:"providerId"`
		ProviderPriority int64  `json:"providerPriority"`
	} `json:"keys"`
}

func (a *admin) keys(t testing.TB) keysInfo {
	t.Helper()
	var k keysInfo
	a.get(t, "/keys", &k)
	return k
}

// keyStatus returns the status (ACTIVE, PASSIVE, DISABLED) of kid, or ""
// when the realm has no such key.
func (k keysInfo) keyStatus(kid string) string {
	for _, e := range k.Keys {
		if e.Kid == kid {
			return e.Status
		}
	}
	return ""
}

// realmID is the realm's internal id, the parentId of its components.
func (a *admin) realmID(t testing.TB) string {
	t.Helper()
	var r struct {
		ID string `json:"id"`
	}
	a.get(t, "", &r)
	return r.ID
}

// setComponentConfig does GET, change config[key] = value, PUT on
// component id: PUT replaces the whole component.
func (a *admin) setComponentConfig(t testing.TB, id, key, value string) {
	t.Helper()
	var comp map[string]any
	a.get(t, "/components/"+id, &comp)
	cfg, _ := comp["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
		comp["config"] = cfg
	}
	cfg[key] = []string{value}
	a.do(t, http.MethodPut, "/components/"+id, comp, nil, http.StatusNoContent)
}
