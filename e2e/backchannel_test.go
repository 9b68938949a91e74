//go:build e2e

package e2e

// OpenID Connect Back-Channel Logout 1.0 as Keycloak 26.7.3 sends it: the
// helpers that point the keygate-bcl client's back-channel logout URL at a
// listener of the test, log sessions out through the admin REST API, and a
// receiver that records what Keycloak POSTs. TestBackchannelLogoutWire
// pins the wire format that package backchannel codes against.

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// bcl is the realm's confidential client for back-channel logout
// (keygate-realm.json): password grant allowed, an audience mapper for
// orders-api, frontchannelLogout false, backchannel.logout.session.required
// true, and an empty backchannel.logout.url that tests set with
// setBackchannelLogout.
var bcl = client{"keygate-bcl", "keygate-bcl-secret"}

// backchannelEvent is the member of a logout token's events claim that
// makes it a logout token (Back-Channel Logout 1.0, section 2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// bclPassword returns a password grant token response for user (whose
// password is its name) through keygate-bcl with scope openid: a session
// whose logout Keycloak announces to keygate-bcl's back-channel logout URL.
func bclPassword(t testing.TB, user string) tokenResponse {
	t.Helper()
	tr, err := grant(kc.TokenURL, url.Values{"grant_type": {"password"}, "client_id": {bcl.id},
		"client_secret": {bcl.secret}, "username": {user}, "password": {user}, "scope": {"openid"}})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// setBackchannelLogout sets keygate-bcl's back-channel logout URL and its
// "session required" switch (whether logout tokens carry sid), with GET,
// change, PUT: PUT replaces the whole client. Both go back to what they
// were when t ends, so that later tests' logouts are not sent to a
// listener that is gone.
func (a *admin) setBackchannelLogout(t testing.TB, logoutURL string, sessionRequired bool) {
	t.Helper()
	id := a.clientUUID(t, bcl.id)
	put := func(u, session string) (oldURL, oldSession string) {
		var rep map[string]any
		a.get(t, "/clients/"+id, &rep)
		attrs, _ := rep["attributes"].(map[string]any)
		if attrs == nil {
			attrs = map[string]any{}
			rep["attributes"] = attrs
		}
		oldURL, _ = attrs["backchannel.logout.url"].(string)
		oldSession, _ = attrs["backchannel.logout.session.required"].(string)
		attrs["backchannel.logout.url"] = u
		attrs["backchannel.logout.session.required"] = session
		rep["frontchannelLogout"] = false
		a.do(t, http.MethodPut, "/clients/"+id, rep, nil, http.StatusNoContent)
		return oldURL, oldSession
	}
	oldURL, oldSession := put(logoutURL, fmt.Sprint(sessionRequired))
	t.Cleanup(func() { put(oldURL, oldSession) })
}

// logoutUser ends every session of user userID (POST
// /users/{id}/logout); Keycloak sends a logout token per session and
// client with a back-channel logout URL before it answers.
func (a *admin) logoutUser(t testing.TB, userID string) {
	t.Helper()
	a.do(t, http.MethodPost, "/users/"+userID+"/logout", nil, nil, http.StatusNoContent)
}

// deleteSession ends the session sid (DELETE /sessions/{sid}).
func (a *admin) deleteSession(t testing.TB, sid string) {
	t.Helper()
	a.do(t, http.MethodDelete, "/sessions/"+url.PathEscape(sid), nil, nil, http.StatusNoContent)
}

// sessions returns the ids of user userID's sessions.
func (a *admin) sessions(t testing.TB, userID string) []string {
	t.Helper()
	var ss []struct {
		ID string `json:"id"`
	}
	a.get(t, "/users/"+userID+"/sessions", &ss)
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return ids
}

// oidcLogout ends the session of refreshToken at the end-session endpoint,
// as keygate-bcl (a confidential client) would.
func oidcLogout(t testing.TB, refreshToken string) {
	t.Helper()
	status, body, err := postForm(kc.Issuer+"/protocol/openid-connect/logout",
		url.Values{"client_id": {bcl.id}, "client_secret": {bcl.secret}, "refresh_token": {refreshToken}}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusNoContent {
		t.Fatalf("logout: HTTP %d: %.300s", status, body)
	}
}

// logoutPost is one request Keycloak sent to a logoutReceiver.
type logoutPost struct {
	Method, Path string
	Header       http.Header
	// Form is the parsed body; Body the raw one.
	Form url.Values
	Body string
}

// logoutReceiver is a back-channel logout endpoint of the test: it records
// every request and answers Status (200 when zero) with an empty body.
type logoutReceiver struct {
	*httptest.Server
	// Status is what the receiver answers; set it before Keycloak sends.
	Status int

	mu    sync.Mutex
	posts []logoutPost
	got   chan struct{}
}

// newLogoutReceiver starts a receiver on loopback, closed when t ends.
func newLogoutReceiver(t testing.TB) *logoutReceiver {
	t.Helper()
	r := &logoutReceiver{got: make(chan struct{}, 64)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 64<<10))
		form, _ := url.ParseQuery(string(b))
		r.mu.Lock()
		r.posts = append(r.posts, logoutPost{Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(),
			Form: form, Body: string(b)})
		status := r.Status
		r.mu.Unlock()
		select {
		case r.got <- struct{}{}:
		default:
		}
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

// URL is where Keycloak should POST: the server's URL + path.
func (r *logoutReceiver) url(path string) string { return r.Server.URL + path }

// take returns the requests received so far and forgets them.
func (r *logoutReceiver) take() []logoutPost {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.posts
	r.posts = nil
	return p
}

// logoutToken is a decoded logout token, unverified.
type logoutToken struct {
	Raw    string
	Header map[string]any
	Claims map[string]any
}

// decodeLogoutToken decodes raw's header and payload.
func decodeLogoutToken(t testing.TB, raw string) logoutToken {
	t.Helper()
	lt := logoutToken{Raw: raw}
	if err := json.Unmarshal(segment(t, raw, 0), &lt.Header); err != nil {
		t.Fatalf("logout token %s: header: %v", short(raw), err)
	}
	if err := json.Unmarshal(segment(t, raw, 1), &lt.Claims); err != nil {
		t.Fatalf("logout token %s: payload: %v", short(raw), err)
	}
	return lt
}

// str is claim name of the token as a string, "" when absent or not one.
func (lt logoutToken) str(name string) string {
	s, _ := lt.Claims[name].(string)
	return s
}

// checkRS256 checks that raw is signed RS256 by the realm key named by its
// kid, from the realm's JWKS (the key's x5c certificate): the keys that
// sign access and ID tokens sign logout tokens too.
func checkRS256(t testing.TB, raw string) {
	t.Helper()
	kid, _ := decodeLogoutToken(t, raw).Header["kid"].(string)
	resp, err := httpc.Get(kc.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid, Alg, Use string
			X5c           []string `json:"x5c"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Kid != kid || len(k.X5c) == 0 {
			continue
		}
		if k.Alg != "RS256" || k.Use != "sig" {
			t.Fatalf("logout token %s: kid %s is a %s %s key", short(raw), kid, k.Alg, k.Use)
		}
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			t.Fatalf("kid %s: %T, want an RSA key", kid, cert.PublicKey)
		}
		i := strings.LastIndexByte(raw, '.')
		sum := sha256.Sum256([]byte(raw[:i]))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], segment(t, raw, 2)); err != nil {
			t.Fatalf("logout token %s: RS256 signature of kid %s: %v", short(raw), kid, err)
		}
		return
	}
	t.Fatalf("logout token %s: kid %q is not an RSA key of the realm's JWKS", short(raw), kid)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestBackchannelLogoutWire records what Keycloak POSTs to a client's
// back-channel logout URL and checks it field by field: the contract the
// backchannel package is written against. Observed on 26.7.3:
//
//   - POST, Content-Type application/x-www-form-urlencoded, one form field
//     logout_token; User-Agent Apache-HttpClient; no Authorization.
//   - Header {"alg":"RS256","typ":"logout+jwt","kid":...}: the realm key
//     that signs ID tokens (the client's ID token algorithm).
//   - Payload: iss; aud the client id, a string; sub the user id; sid the
//     session id (only with "session required" on); events with the
//     back-channel logout event and {} as value; iat; exp = iat + 120; jti
//     a plain UUID; typ "Logout" (Keycloak's own); no nonce.
//   - Sent by admin user logout, admin session delete and the end-session
//     endpoint, before the call answers (the call waits for the receiver).
//     A receiver that answers 400, or none listening, does not fail the
//     logout: the call answers 204 and the session is gone.
func TestBackchannelLogoutWire(t *testing.T) {
	rcv := newLogoutReceiver(t)
	const path = "/backchannel-logout"
	adminAPI.setBackchannelLogout(t, rcv.url(path), true)
	alice := adminAPI.user(t, "alice")

	cases := []struct {
		name string
		// session: whether "session required" is on.
		session bool
		// status the receiver answers.
		status int
		// logout ends tr's session.
		logout func(t *testing.T, tr tokenResponse, sid string)
	}{
		{name: "admin user logout", session: true, logout: func(t *testing.T, _ tokenResponse, _ string) {
			adminAPI.logoutUser(t, alice.ID)
		}},
		{name: "admin session delete", session: true, logout: func(t *testing.T, _ tokenResponse, sid string) {
			adminAPI.deleteSession(t, sid)
		}},
		{name: "end-session endpoint", session: true, logout: func(t *testing.T, tr tokenResponse, _ string) {
			oidcLogout(t, tr.RefreshToken)
		}},
		{name: "session not required", session: false, logout: func(t *testing.T, _ tokenResponse, sid string) {
			adminAPI.deleteSession(t, sid)
		}},
		{name: "receiver answers 400", session: true, status: http.StatusBadRequest,
			logout: func(t *testing.T, _ tokenResponse, sid string) { adminAPI.deleteSession(t, sid) }},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if !c.session {
				adminAPI.setBackchannelLogout(t, rcv.url(path), false)
			}
			rcv.mu.Lock()
			rcv.Status = c.status
			rcv.mu.Unlock()
			rcv.take()
			tr := bclPassword(t, "alice")
			sid, _ := claimsOf(t, tr.AccessToken)["sid"].(string)
			if sid == "" {
				t.Fatal("the access token has no sid")
			}
			t0 := time.Now()
			c.logout(t, tr, sid)
			took := time.Since(t0)
			// The logout call answers after the receiver did: the POST is
			// here already.
			posts := rcv.take()
			if len(posts) != 1 {
				t.Fatalf("%d requests reached the receiver by the time the logout call answered, want 1", len(posts))
			}
			if ss := adminAPI.sessions(t, alice.ID); len(ss) != 0 {
				t.Errorf("sessions of alice after the logout: %q, want none", ss)
			}
			p := posts[0]
			if p.Method != http.MethodPost || p.Path != path {
				t.Errorf("request %s %s, want POST %s", p.Method, p.Path, path)
			}
			if mt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q, want application/x-www-form-urlencoded", p.Header.Get("Content-Type"))
			}
			if p.Header.Get("Authorization") != "" {
				t.Errorf("Authorization header sent: %.20q", p.Header.Get("Authorization"))
			}
			if len(p.Form) != 1 || len(p.Form["logout_token"]) != 1 {
				keys := make([]string, 0, len(p.Form))
				for k := range p.Form {
					keys = append(keys, k)
				}
				t.Fatalf("form fields %q, want exactly one logout_token", keys)
			}
			raw := p.Form.Get("logout_token")
			lt := decodeLogoutToken(t, raw)
			checkRS256(t, raw)
			if lt.Header["alg"] != "RS256" || lt.Header["typ"] != "logout+jwt" {
				t.Errorf("header %v, want alg RS256, typ logout+jwt", lt.Header)
			}
			checkLogoutClaims(t, lt, alice.ID, sid, c.session)
			t.Logf("%s: logout call took %v; receiver answered %d; header %s; claims %s", c.name,
				took.Round(time.Millisecond), max(c.status, 200), segment(t, raw, 0), segment(t, raw, 1))
		})
	}
}

// checkLogoutClaims checks a logout token's payload as Keycloak 26.7.3
// writes it for user sub and session sid (absent unless withSID).
func checkLogoutClaims(t testing.TB, lt logoutToken, sub, sid string, withSID bool) {
	t.Helper()
	if got := lt.str("iss"); got != kc.Issuer {
		t.Errorf("iss %q, want %q", got, kc.Issuer)
	}
	if aud, ok := lt.Claims["aud"].(string); !ok || aud != bcl.id {
		t.Errorf("aud %#v, want the string %q", lt.Claims["aud"], bcl.id)
	}
	if got := lt.str("sub"); got != sub {
		t.Errorf("sub %q, want the user id %q", got, sub)
	}
	switch got, ok := lt.Claims["sid"]; {
	case withSID && got != sid:
		t.Errorf("sid %#v, want %q", got, sid)
	case !withSID && ok:
		t.Errorf("sid %#v with session required off, want none", got)
	}
	ev, _ := lt.Claims["events"].(map[string]any)
	if v, ok := ev[backchannelEvent].(map[string]any); len(ev) != 1 || !ok || len(v) != 0 {
		t.Errorf("events %#v, want {%q: {}}", lt.Claims["events"], backchannelEvent)
	}
	iat, ok1 := lt.Claims["iat"].(float64)
	exp, ok2 := lt.Claims["exp"].(float64)
	if !ok1 || !ok2 || exp-iat != 120 {
		t.Errorf("iat %v, exp %v: want numbers with exp = iat + 120", lt.Claims["iat"], lt.Claims["exp"])
	}
	if now := float64(time.Now().Unix()); iat < now-60 || iat > now+60 {
		t.Errorf("iat %v, more than a minute from now (%v)", iat, now)
	}
	if !uuidRE.MatchString(lt.str("jti")) {
		t.Errorf("jti %#v, want a UUID", lt.Claims["jti"])
	}
	if got := lt.str("typ"); got != "Logout" {
		t.Errorf("typ claim %#v, want Logout", lt.Claims["typ"])
	}
	if _, ok := lt.Claims["nonce"]; ok {
		t.Error("nonce in a logout token")
	}
	want := map[string]bool{"iss": true, "aud": true, "sub": true, "sid": withSID, "events": true, "iat": true,
		"exp": true, "jti": true, "typ": true}
	for k := range lt.Claims {
		if !want[k] {
			t.Errorf("unexpected claim %s: %#v", k, lt.Claims[k])
		}
	}
}
