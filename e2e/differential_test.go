//go:build e2e

package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/backchannel"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/revoke"
)

// errAny marks a corpus entry that keygate must refuse, whatever the
// class (a byte flipped in base64 may break the JSON or only the
// signature).
var errAny = errors.New("any refusal")

// differential is one token of the corpus.
type differential struct {
	name string
	tok  string
	// v checks tok; nil means the strict verifier (no leeway).
	v *keygate.Verifier
	// want is keygate's verdict: nil accepts, otherwise the error class.
	want error
	// differs, when set, says why keygate and Keycloak's introspection are
	// meant to disagree on tok. Entries without it must agree.
	differs string
	// note explains an agreement that holds for different reasons.
	note string
}

// testDifferential compares keygate's verdict on a corpus of tokens with
// Keycloak's own: its introspection endpoint, called as the resource
// server orders-api. Every entry must agree (accepted == active), except
// the entries with a reason to differ, which must differ.
//
// What Keycloak 26.7.3's introspection does, as observed (the server log
// has the reasons, as INTROSPECT_TOKEN_ERROR events): it checks the
// signature against the realm's enabled keys, exp without clock skew,
// the issuer, that the user session (or the client's) still exists, and
// that the introspecting client is in the token's aud ("Client
// 'orders-api' is not in the token audience"). So it answers
// active=false for the ID token (aud orders-cli) and the refresh token
// (aud = the issuer), and for no-aud-client's token: it agrees with
// keygate there, though for the ID and refresh tokens for another reason
// than keygate's (token type).
//
// The intended differences come from what local validation cannot know,
// or allows on purpose: a logged-out session (without revocation), a key
// disabled less than one refresh interval ago, and the clock-skew leeway
// on exp. With revocation on, a logged-out session is an agreement: the
// corpus has one whose logout Keycloak announced by back-channel logout to
// keygate's receiver (backchannel.New), which revoked its session in the
// revoke.List that is the verifier's Config.Revocations.
func testDifferential(t *testing.T, s *suite) {
	src := newSource(t, jwks.Config{RefreshInterval: refreshInterval})
	// strict has no leeway, like Keycloak's exp check, and no token cache.
	strict := newVerifier(t, src, func(c *keygate.Config) { c.Leeway, c.CacheSize = -1, -1 })
	// lenient is the default leeway (60s).
	lenient := newVerifier(t, src, func(c *keygate.Config) { c.CacheSize = -1 })

	// short-client tokens live 5 s: take one first, so that it has expired
	// by the time the rest of the corpus is ready.
	expired := mustClient(t, shortC).AccessToken
	wk := mustClient(t, worker).AccessToken
	es := mustClient(t, es256).AccessToken
	ed := mustClient(t, eddsa).AccessToken
	alice := mustPassword(t, "alice")
	bob := mustPassword(t, "bob")

	// A second login of bob, logged out at once: its access token still
	// verifies locally.
	revoked := mustPassword(t, "bob")
	logout(t, revoked.RefreshToken)

	// A third login of bob, through keygate-bcl, logged out at the
	// end-session endpoint: Keycloak POSTs a logout token to keygate-bcl's
	// back-channel logout URL before it answers. The receiver there is
	// keygate's own (package backchannel), recording into the revoke.List
	// the revoking verifier consults (Config.Revocations).
	store := &revoke.List{TTL: time.Hour}
	revoking := newVerifier(t, src, func(c *keygate.Config) { c.Leeway, c.CacheSize, c.Revocations = -1, -1, store })
	rcv := newBackchannelReceiver(t, revoking, store)
	adminAPI.setBackchannelLogout(t, rcv.URL+"/backchannel-logout", true)
	announced := bclPassword(t, "bob")
	oidcLogout(t, announced.RefreshToken)
	rcv.mustRevokeSession(t, store, claimsOf(t, announced.AccessToken)["sid"])

	corpus := []differential{
		{name: "client_credentials RS256 (orders-worker)", tok: wk},
		{name: "client_credentials ES256 (es256-client)", tok: es},
		{name: "client_credentials EdDSA (eddsa-client)", tok: ed},
		{name: "password RS256 (alice)", tok: alice.AccessToken},
		{name: "password RS256 (bob)", tok: bob.AccessToken},
		{name: "expired (short-client, 5 s lifespan), no leeway", tok: expired, want: keygate.ErrExpired},
		{name: "expired (short-client), default 60 s leeway", tok: expired, v: lenient,
			differs: "keygate tolerates Config.Leeway (default 60 s) of clock skew on exp; Keycloak's introspection " +
				"has none, so a token that expired less than a minute ago is active=false there but accepted by " +
				"keygate. A negative Leeway turns this off (the strict entry above)."},
		{name: "RS256 payload tampered (admin role added)", tok: tamperPayload(t, wk), want: keygate.ErrBadSignature},
		{name: "EdDSA payload tampered (admin role added)", tok: tamperPayload(t, ed), want: keygate.ErrBadSignature},
		{name: "RS256 signature byte flipped", tok: flipSignature(t, wk), want: keygate.ErrBadSignature},
		{name: "ES256 signature byte flipped", tok: flipSignature(t, es), want: keygate.ErrBadSignature},
		{name: "password token, payload base64 character flipped", tok: flipPayloadChar(t, alice.AccessToken), want: errAny},
		{name: "alg none, signature stripped", tok: algNone(t, wk), want: errAny},
		{name: "HS256 signed with the realm's RSA public key (key confusion)", tok: hmacWithPublicKey(t, wk),
			want: keygate.ErrUnsupportedAlgorithm},
		{name: "ID token (alice)", tok: alice.IDToken, want: keygate.ErrWrongTokenType,
			note: "Keycloak refuses it because orders-api is not in its aud (orders-cli), keygate because typ is ID"},
		{name: "refresh token (alice)", tok: alice.RefreshToken, want: keygate.ErrWrongTokenType,
			note: "Keycloak refuses it because orders-api is not in its aud (the issuer), keygate because typ is Refresh"},
		{name: "other realm (other-client)", tok: mustOther(t), want: keygate.ErrWrongIssuer},
		{name: "no orders-api audience (no-aud-client)", tok: mustClient(t, noAud).AccessToken, want: keygate.ErrWrongAudience},
		{name: "session logged out (bob), no revocation", tok: revoked.AccessToken,
			differs: "without Config.Revocations, local validation cannot see a revoked session: keygate accepts " +
				"the token until its exp (300 s here), introspection looks the session up and says active=false. " +
				"Turn revocation on (back-channel logout, next entry), keep access token lifespans short, or " +
				"introspect where revocation must take effect at once."},
		{name: "session logged out (bob), revocation by back-channel logout", tok: announced.AccessToken,
			v: revoking, want: keygate.ErrRevoked,
			note: "Keycloak announced the logout to keygate-bcl's back-channel logout URL, served by " +
				"backchannel.Handler; it revoked the session in the revoke.List that is the verifier's Config.Revocations"},
		{name: "not a JWT", tok: "not-a-jwt", want: keygate.ErrMalformed},
	}
	if s.disabledKeyToken != "" {
		corpus = append(corpus,
			differential{name: "signed by the key Rotation disabled", tok: s.disabledKeyToken, want: keygate.ErrUnknownKey},
			differential{name: "signed by the disabled key, verifier that has not refreshed since", tok: s.disabledKeyToken,
				v: s.staleVerifier,
				differs: "keygate learns that a key was removed at its next key refresh (Config.RefreshInterval, " +
					"default 5 min; this verifier's source refreshes hourly), introspection at once: until " +
					"then keygate still accepts tokens of a disabled key. Disable a key only after its " +
					"tokens have expired, or shorten RefreshInterval."})
	} else {
		t.Log("Rotation did not run: the corpus has no token of a disabled key")
	}

	// Wait until the short-lived token is dead for Keycloak too, and a
	// full second past its exp for keygate (introspection compares whole
	// seconds).
	exp := expOf(t, expired)
	if !poll(30*time.Second, func() bool { return time.Now().After(exp.Add(time.Second)) && !introspect(t, expired) }) {
		t.Fatal("the short-client token is still active 30 s later")
	}
	if time.Since(exp) > 50*time.Second {
		t.Fatalf("the corpus took %v to build: the leeway entry needs less than 60 s past exp", time.Since(exp))
	}

	agree := 0
	var intended []string
	for _, d := range corpus {
		v := d.v
		if v == nil {
			v = strict
		}
		_, err := v.Verify(context.Background(), d.tok)
		accepted := err == nil
		active := introspect(t, d.tok)
		verdict := "accepted"
		if err != nil {
			verdict = "refused: " + err.Error()
		}
		switch {
		case d.want == nil && err != nil:
			t.Errorf("%s: keygate refused it: %v", d.name, err)
		case d.want == errAny && err == nil, d.want != nil && d.want != errAny && !errors.Is(err, d.want):
			t.Errorf("%s: keygate: %s, want %v", d.name, verdict, d.want)
		}
		switch {
		case accepted == active:
			agree++
			if d.differs != "" {
				t.Errorf("%s: meant to differ, but keygate and introspection agree (active=%v): %s", d.name, active, d.differs)
			}
			t.Logf("agree   %-68s active=%-5v keygate %s", d.name, active, verdict)
			if d.note != "" {
				t.Logf("          (%s)", d.note)
			}
		case d.differs != "":
			intended = append(intended, d.name)
			t.Logf("DIFFER  %-68s active=%-5v keygate %s\n          intended: %s", d.name, active, verdict, d.differs)
		default:
			t.Errorf("%s: keygate %s, but introspection says active=%v", d.name, verdict, active)
		}
	}
	t.Logf("differential: %d tokens, keygate agrees with Keycloak's introspection on %d; %d intended differences: %s",
		len(corpus), agree, len(intended), strings.Join(intended, "; "))
}

// logout ends the session of refreshToken at Keycloak's end-session
// endpoint, as orders-cli would.
func logout(t *testing.T, refreshToken string) {
	t.Helper()
	status, body, err := postForm(kc.Issuer+"/protocol/openid-connect/logout",
		url.Values{"client_id": {"orders-cli"}, "refresh_token": {refreshToken}}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusNoContent {
		t.Fatalf("logout: HTTP %d: %.300s", status, body)
	}
}

// backchannelReceiver is keygate's back-channel logout endpoint
// (backchannel.Handler) on a loopback listener of the test, answering for
// keygate-bcl; it records the status of each answer.
type backchannelReceiver struct {
	*httptest.Server

	mu       sync.Mutex
	statuses []int
}

// newBackchannelReceiver serves backchannel.New with v and store on
// /backchannel-logout until t ends.
func newBackchannelReceiver(t testing.TB, v *keygate.Verifier, store revoke.Store) *backchannelReceiver {
	t.Helper()
	h, err := backchannel.New(backchannel.Config{Verifier: v, Audience: bcl.id, Store: store, TTL: time.Hour,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r := &backchannelReceiver{}
	mux := http.NewServeMux()
	mux.Handle("/backchannel-logout", h)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(rec, req)
		r.mu.Lock()
		r.statuses = append(r.statuses, rec.status)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// mustRevokeSession fails t unless the receiver answered exactly one
// logout, with 200, and store now holds a session revocation of sid from
// the back-channel logout.
func (r *backchannelReceiver) mustRevokeSession(t testing.TB, store *revoke.List, sid any) {
	t.Helper()
	r.mu.Lock()
	statuses := r.statuses
	r.mu.Unlock()
	if len(statuses) != 1 || statuses[0] != http.StatusOK {
		t.Fatalf("back-channel logout answers = %v; want one 200", statuses)
	}
	revs, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, rv := range revs {
		if rv.Kind == revoke.Session && rv.Value == sid && rv.Source == backchannel.Source {
			return
		}
	}
	t.Fatalf("revocations after the logout = %+v; want the session %v from %s", revs, sid, backchannel.Source)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// testWriter sends a handler's log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var b64 = base64.RawURLEncoding

// tamperPayload adds the realm role admin to tok's claims, keeping the
// header and signature.
func tamperPayload(t *testing.T, tok string) string {
	t.Helper()
	c := claimsOf(t, tok)
	ra, _ := c["realm_access"].(map[string]any)
	if ra == nil {
		t.Fatalf("token %s has no realm_access", short(tok))
	}
	ra["roles"] = append(ra["roles"].([]any), "admin")
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	return parts[0] + "." + b64.EncodeToString(p) + "." + parts[2]
}

// flipSignature flips one bit in the middle of tok's signature.
func flipSignature(t *testing.T, tok string) string {
	t.Helper()
	sig := segment(t, tok, 2)
	sig[len(sig)/2] ^= 0x01
	parts := strings.Split(tok, ".")
	return parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)
}

// flipPayloadChar changes one base64 character in the middle of tok's
// payload segment.
func flipPayloadChar(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	i := len(p) / 2
	if p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	return parts[0] + "." + string(p) + "." + parts[2]
}

// algNone rewrites tok as an unsigned token (alg none), same claims.
func algNone(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	return b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

// hmacWithPublicKey re-signs tok's claims with HS256, using the PEM of the
// RSA public key of tok's kid as the HMAC secret: the classic key
// confusion attack on verifiers that take the alg from the token.
func hmacWithPublicKey(t *testing.T, tok string) string {
	t.Helper()
	kid := headerOf(t, tok).Kid
	resp, err := httpc.Get(kc.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string   `json:"kid"`
			X5c []string `json:"x5c"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var secret []byte
	for _, k := range set.Keys {
		if k.Kid == kid && len(k.X5c) > 0 {
			der, err := base64.StdEncoding.DecodeString(k.X5c[0])
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := x509.MarshalPKIXPublicKey(cert.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			secret = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
		}
	}
	if secret == nil {
		t.Fatalf("no x5c for kid %s in the JWKS", kid)
	}
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT", "kid": kid})
	input := b64.EncodeToString(h) + "." + strings.Split(tok, ".")[1]
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64.EncodeToString(mac.Sum(nil))
}
