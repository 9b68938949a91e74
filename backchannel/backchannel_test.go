package backchannel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/backchannel"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
	"github.com/keygate/keygate/revoke"
)

// fakeStore is a revoke.Store in a map, with injectable failures. It
// stands in for the real stores, which live in other packages.
type fakeStore struct {
	mu          sync.Mutex
	revs        []revoke.Revocation
	seen        map[string]time.Time
	revokeErr   error
	firstUseErr error
	// notShared makes Revoke and FirstUse act as a cluster store with
	// its cluster unreachable: done here, then ErrNotShared.
	notShared bool
}

var errNotShared = fmt.Errorf("fake: cluster unreachable: %w", revoke.ErrNotShared)

var _ revoke.Store = (*fakeStore)(nil)

func (s *fakeStore) Revoke(_ context.Context, r revoke.Revocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revokeErr != nil {
		return s.revokeErr
	}
	s.revs = append(s.revs, r)
	if s.notShared {
		return errNotShared
	}
	return nil
}

func (s *fakeStore) Revoked(p *keygate.Principal) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.revs {
		switch r.Kind {
		case revoke.Session:
			if p.SessionID != "" && p.SessionID == r.Value {
				return true
			}
		case revoke.Subject:
			if p.Subject == r.Value && (p.IssuedAt.IsZero() || p.IssuedAt.Before(r.IssuedBefore)) {
				return true
			}
		case revoke.Token:
			if p.JWTID == r.Value {
				return true
			}
		}
	}
	return false
}

func (s *fakeStore) List(context.Context) ([]revoke.Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]revoke.Revocation(nil), s.revs...), nil
}

func (s *fakeStore) FirstUse(_ context.Context, jti string, until time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstUseErr != nil {
		return false, s.firstUseErr
	}
	var err error
	if s.notShared {
		err = errNotShared
	}
	if _, ok := s.seen[jti]; ok {
		return false, err
	}
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	s.seen[jti] = until
	return true, err
}

// app is the client Keycloak sends logout tokens to; orders-api the
// resource server whose access tokens keygate checks.
const app = "app"

const ttl = time.Hour

type env struct {
	idp   *keycloaktest.Server
	other *keycloaktest.Server // another issuer, whose keys are not trusted
	v     *keygate.Verifier
	store *fakeStore
	h     *backchannel.Handler
	logs  *syncBuffer
	now   atomic.Int64
}

func (e *env) Now() time.Time          { return time.Unix(0, e.now.Load()) }
func (e *env) advance(d time.Duration) { e.now.Add(int64(d)) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func realm() keycloaktest.Config {
	return keycloaktest.Config{
		Realm: "shop",
		Clients: []keycloaktest.Client{
			{ID: app, DirectAccessGrants: true, Audiences: []string{"orders-api"}},
			{ID: "web", Audiences: []string{"orders-api"}},
		},
		Users: []keycloaktest.User{{Username: "alice"}, {Username: "bob"}},
	}
}

func newEnv(t *testing.T, keys func(keygate.KeySet) keygate.KeySet) *env {
	t.Helper()
	e := &env{store: &fakeStore{}, logs: &syncBuffer{}}
	e.now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	cfg := realm()
	cfg.Now = e.Now
	e.idp = keycloaktest.New(t, cfg)
	e.other = keycloaktest.New(t, cfg)
	src, err := jwks.NewSource(jwks.Config{Issuer: e.idp.Issuer(), Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	var ks keygate.KeySet = src
	if keys != nil {
		ks = keys(src)
	}
	e.v, err = keygate.NewVerifier(keygate.Config{Issuer: e.idp.Issuer(), Audiences: []string{"orders-api"},
		Keys: ks, Revocations: e.store, Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.h, err = backchannel.New(backchannel.Config{Verifier: e.v, Audience: app, Store: e.store, TTL: ttl,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: e.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// logout mints a logout token for alice's session to app, as Keycloak
// sends it, edited by tok's fields.
func (e *env) logout(t *testing.T, tok keycloaktest.Token) string {
	t.Helper()
	if tok.Client == "" {
		tok.Client = app
	}
	if tok.User == "" {
		tok.User = "alice"
	}
	return e.idp.MustMintLogout(t, tok)
}

func form(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }

// post sends body to the handler as Keycloak would.
func (e *env) post(body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/backchannel-logout", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// errorBody decodes a refusal's JSON body.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) (code, desc string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	var b struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	return b.Error, b.Description
}

func TestHandler(t *testing.T) {
	e := newEnv(t, nil)
	now := e.Now()
	rsKid := e.idp.ActiveKeyID("RS256")
	event := map[string]any{keycloaktest.LogoutEvent: map[string]any{}}
	big := form(e.logout(t, keycloaktest.Token{})) + "&pad=" + strings.Repeat("x", backchannel.MaxBodySize)

	type request struct {
		method, contentType, body string
		unknownLength             bool // chunked: no Content-Length
	}
	postForm := func(body string) request {
		return request{http.MethodPost, "application/x-www-form-urlencoded", body, false}
	}
	tests := []struct {
		name   string
		req    request
		status int
		code   string             // error code; "" for success
		want   *revoke.Revocation // the revocation recorded, if any
	}{
		{"sid", postForm(form(e.logout(t, keycloaktest.Token{SessionID: "s-1"}))), 200, "",
			&revoke.Revocation{Kind: revoke.Session, Value: "s-1", At: now, Expires: now.Add(ttl), Source: backchannel.Source}},
		{"sub only", postForm(form(e.logout(t, keycloaktest.Token{User: "bob", Claims: map[string]any{"sid": nil, "iat": now.Add(-10 * time.Second)}}))), 200, "",
			&revoke.Revocation{Kind: revoke.Subject, Value: e.idp.Subject("bob"), IssuedBefore: now.Add(-9 * time.Second), At: now, Expires: now.Add(ttl), Source: backchannel.Source}},
		{"content type with charset", request{http.MethodPost, "application/x-www-form-urlencoded; charset=UTF-8",
			form(e.logout(t, keycloaktest.Token{SessionID: "s-2"})), false}, 200, "",
			&revoke.Revocation{Kind: revoke.Session, Value: "s-2", At: now, Expires: now.Add(ttl), Source: backchannel.Source}},
		{"other parameters beside", postForm("a=b&" + form(e.logout(t, keycloaktest.Token{SessionID: "s-3"}))), 200, "",
			&revoke.Revocation{Kind: revoke.Session, Value: "s-3", At: now, Expires: now.Add(ttl), Source: backchannel.Source}},

		{"other issuer's key", postForm(form(e.other.MustMintLogout(t, keycloaktest.Token{Client: app, User: "alice",
			Claims: map[string]any{"iss": e.idp.Issuer()}, Header: map[string]any{"kid": rsKid}}))), 400, "invalid_request", nil},
		{"wrong aud", postForm(form(e.logout(t, keycloaktest.Token{Client: "web"}))), 400, "invalid_request", nil},
		{"with nonce", postForm(form(e.logout(t, keycloaktest.Token{Claims: map[string]any{"nonce": "n"}}))), 400, "invalid_request", nil},
		{"missing events", postForm(form(e.logout(t, keycloaktest.Token{Claims: map[string]any{"events": nil}}))), 400, "invalid_request", nil},
		{"missing jti", postForm(form(e.logout(t, keycloaktest.Token{Claims: map[string]any{"jti": nil}}))), 400, "invalid_request", nil},
		{"expired", postForm(form(e.logout(t, keycloaktest.Token{Claims: map[string]any{"exp": now.Add(-5 * time.Minute)}}))), 400, "invalid_request", nil},
		{"alg none", postForm(form(e.logout(t, keycloaktest.Token{Algorithm: keycloaktest.AlgNone}))), 400, "invalid_request", nil},
		{"HS256 keyed with the public key", postForm(form(e.logout(t, keycloaktest.Token{Algorithm: "HS256", KeyID: rsKid}))), 400, "invalid_request", nil},
		{"access token as logout token", postForm(form(e.idp.MustMint(t, keycloaktest.Token{Client: app, User: "alice",
			Claims: map[string]any{"aud": app, "events": event}}))), 400, "invalid_request", nil},

		{"GET", request{http.MethodGet, "", "", false}, 405, "invalid_request", nil},
		{"PUT", request{http.MethodPut, "application/x-www-form-urlencoded", form(e.logout(t, keycloaktest.Token{})), false}, 405, "invalid_request", nil},
		{"JSON content type", request{http.MethodPost, "application/json", form(e.logout(t, keycloaktest.Token{})), false}, 400, "invalid_request", nil},
		{"multipart content type", request{http.MethodPost, "multipart/form-data; boundary=x", form(e.logout(t, keycloaktest.Token{})), false}, 400, "invalid_request", nil},
		{"no content type", request{http.MethodPost, "", form(e.logout(t, keycloaktest.Token{})), false}, 400, "invalid_request", nil},
		{"oversized body", postForm(big), 400, "invalid_request", nil},
		{"oversized body without length", request{http.MethodPost, "application/x-www-form-urlencoded", big, true}, 400, "invalid_request", nil},
		{"missing field", postForm("token=abc"), 400, "invalid_request", nil},
		{"empty field", postForm("logout_token="), 400, "invalid_request", nil},
		{"two logout_token fields", postForm(form(e.logout(t, keycloaktest.Token{})) + "&" + form(e.logout(t, keycloaktest.Token{}))), 400, "invalid_request", nil},
		{"bad form encoding", postForm("logout_token=%zz"), 400, "invalid_request", nil},
		{"garbage token", postForm(form("not-a-token")), 400, "invalid_request", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.mu.Lock()
			e.store.revs = nil
			e.store.mu.Unlock()
			var body io.Reader = strings.NewReader(tt.req.body)
			if tt.req.unknownLength {
				body = io.MultiReader(body) // hides the length
			}
			req := httptest.NewRequest(tt.req.method, "/backchannel-logout", body)
			if tt.req.unknownLength {
				req.ContentLength = -1
			}
			if tt.req.contentType != "" {
				req.Header.Set("Content-Type", tt.req.contentType)
			}
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)

			if rec.Code != tt.status {
				t.Errorf("status = %d; want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q; want no-store", cc)
			}
			if tt.status == 405 && rec.Header().Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q; want POST", rec.Header().Get("Allow"))
			}
			if tt.code == "" {
				if rec.Body.Len() != 0 {
					t.Errorf("body = %q; want none", rec.Body)
				}
			} else if code, desc := errorBody(t, rec); code != tt.code || desc == "" || len(desc) > 80 {
				t.Errorf("error = %q, %q; want %q with a short fixed description", code, desc, tt.code)
			}
			revs, _ := e.store.List(context.Background())
			switch {
			case tt.want == nil && len(revs) != 0:
				t.Errorf("recorded %+v; want nothing", revs)
			case tt.want != nil && (len(revs) != 1 || !sameRevocation(revs[0], *tt.want)):
				t.Errorf("recorded %+v; want %+v", revs, *tt.want)
			}
		})
	}
	if logs := e.logs.String(); strings.Contains(logs, "eyJ") {
		t.Errorf("the log holds a token or a part of one:\n%s", logs)
	}
}

func sameRevocation(a, b revoke.Revocation) bool {
	return a.Kind == b.Kind && a.Value == b.Value && a.IssuedBefore.Equal(b.IssuedBefore) &&
		a.At.Equal(b.At) && a.Expires.Equal(b.Expires) && a.Source == b.Source
}

func TestReplay(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.logout(t, keycloaktest.Token{SessionID: "s-1"})
	if rec := e.post(form(tok)); rec.Code != 200 {
		t.Fatalf("first: status %d; want 200 (%s)", rec.Code, rec.Body)
	}
	rec := e.post(form(tok))
	if code, desc := errorBody(t, rec); rec.Code != 400 || code != "invalid_request" || !strings.Contains(desc, "already received") {
		t.Errorf("replay: %d %q %q; want 400 invalid_request, already received", rec.Code, code, desc)
	}
	// The jti is kept as long as the token would verify.
	for jti, until := range e.store.seen {
		if want := e.Now().Truncate(time.Second).Add(keycloaktest.LogoutTokenLifespan + keygate.DefaultLeeway); !until.Equal(want) {
			t.Errorf("FirstUse(%s) until %v; want exp + leeway = %v", jti, until, want)
		}
	}
	if revs, _ := e.store.List(t.Context()); len(revs) != 1 {
		t.Errorf("recorded %d revocations; want 1", len(revs))
	}
}

// TestLogoutRevokes runs the whole path: an access token passes, its
// session is logged out, it no longer passes; a subject logout spares the
// tokens issued after it.
func TestLogoutRevokes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context()
	access := e.idp.MustMint(t, keycloaktest.Token{Client: app, User: "alice", SessionID: "s-1"})
	otherSession := e.idp.MustMint(t, keycloaktest.Token{Client: app, User: "alice", SessionID: "s-2"})
	if _, err := e.v.Verify(ctx, access); err != nil {
		t.Fatalf("before logout: %v", err)
	}
	if rec := e.post(form(e.logout(t, keycloaktest.Token{SessionID: "s-1"}))); rec.Code != 200 {
		t.Fatalf("logout: %d %s", rec.Code, rec.Body)
	}
	if _, err := e.v.Verify(ctx, access); !errors.Is(err, keygate.ErrRevoked) {
		t.Errorf("after session logout: Verify() error = %v; want %v", err, keygate.ErrRevoked)
	}
	if _, err := e.v.Verify(ctx, otherSession); err != nil {
		t.Errorf("another session of the user: %v; want valid", err)
	}

	old := e.idp.MustMint(t, keycloaktest.Token{Client: app, User: "bob"})
	e.advance(10 * time.Second)
	if rec := e.post(form(e.logout(t, keycloaktest.Token{User: "bob", Claims: map[string]any{"sid": nil}}))); rec.Code != 200 {
		t.Fatalf("subject logout: %d %s", rec.Code, rec.Body)
	}
	e.advance(time.Second)
	fresh := e.idp.MustMint(t, keycloaktest.Token{Client: app, User: "bob"})
	if _, err := e.v.Verify(ctx, old); !errors.Is(err, keygate.ErrRevoked) {
		t.Errorf("token issued before the subject logout: Verify() error = %v; want %v", err, keygate.ErrRevoked)
	}
	if _, err := e.v.Verify(ctx, fresh); err != nil {
		t.Errorf("token issued after the subject logout: %v; want valid", err)
	}
	// The logout token never passes as an access token.
	if _, err := e.v.Verify(ctx, e.logout(t, keycloaktest.Token{Client: app, Claims: map[string]any{"aud": "orders-api"}})); !errors.Is(err, keygate.ErrWrongTokenType) {
		t.Errorf("Verify(logout token) error = %v; want %v", err, keygate.ErrWrongTokenType)
	}
}

func TestStoreFailures(t *testing.T) {
	t.Run("revoke fails", func(t *testing.T) {
		e := newEnv(t, nil)
		e.store.revokeErr = errors.New("redis: connection refused")
		rec := e.post(form(e.logout(t, keycloaktest.Token{SessionID: "s-1"})))
		if code, _ := errorBody(t, rec); rec.Code != 400 || code != "temporarily_unavailable" {
			t.Errorf("got %d %q; want 400 temporarily_unavailable", rec.Code, code)
		}
		if logs := e.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "value=s-1") ||
			!strings.Contains(logs, "connection refused") {
			t.Errorf("log = %s; want an ERROR line naming the session and the cause", logs)
		}
	})
	t.Run("replay check fails", func(t *testing.T) {
		e := newEnv(t, nil)
		e.store.firstUseErr = errors.New("redis: timeout")
		if rec := e.post(form(e.logout(t, keycloaktest.Token{SessionID: "s-1"}))); rec.Code != 200 {
			t.Errorf("got %d %s; want 200: the revocation is recorded all the same", rec.Code, rec.Body)
		}
		if revs, _ := e.store.List(t.Context()); len(revs) != 1 {
			t.Errorf("recorded %d revocations; want 1", len(revs))
		}
	})
	t.Run("cluster unreachable", func(t *testing.T) {
		// Recorded on this instance: a success for the provider, which
		// never resends; replays are still caught locally.
		e := newEnv(t, nil)
		e.store.notShared = true
		lt := e.logout(t, keycloaktest.Token{SessionID: "s-1"})
		if rec := e.post(form(lt)); rec.Code != 200 {
			t.Errorf("got %d %s; want 200", rec.Code, rec.Body)
		}
		if !strings.Contains(e.logs.String(), "level=WARN") {
			t.Errorf("log = %s; want a WARN line", e.logs)
		}
		if rec := e.post(form(lt)); rec.Code != 400 {
			t.Errorf("replay with the cluster unreachable: %d; want 400", rec.Code)
		}
	})
	t.Run("keys unavailable", func(t *testing.T) {
		e := newEnv(t, func(keygate.KeySet) keygate.KeySet { return downKeys{} })
		rec := e.post(form(e.logout(t, keycloaktest.Token{})))
		if code, _ := errorBody(t, rec); rec.Code != 400 || code != "temporarily_unavailable" {
			t.Errorf("got %d %q; want 400 temporarily_unavailable", rec.Code, code)
		}
		if !strings.Contains(e.logs.String(), "level=ERROR") {
			t.Errorf("log = %s; want an ERROR line", e.logs)
		}
	})
}

type downKeys struct{}

func (downKeys) Key(context.Context, string) (*jwks.Key, error) {
	return nil, errors.New("provider unreachable")
}

// TestLogValuesAreCut checks that an attacker-sized sid does not become an
// attacker-sized log line: the token is valid (the issuer signed it), the
// store fails, and the Error line quotes the sid cut.
func TestLogValuesAreCut(t *testing.T) {
	e := newEnv(t, nil)
	e.store.revokeErr = errors.New("down")
	sid := strings.Repeat("s", 8<<10)
	e.post(form(e.logout(t, keycloaktest.Token{SessionID: sid})))
	for line := range strings.Lines(e.logs.String()) {
		if len(line) > 2<<10 {
			t.Errorf("log line of %d bytes: %.200s...", len(line), line)
		}
	}
}

func TestNew(t *testing.T) {
	e := newEnv(t, nil)
	ok := backchannel.Config{Verifier: e.v, Audience: app, Store: e.store, TTL: ttl}
	tests := []struct {
		field string
		edit  func(*backchannel.Config)
	}{
		{"Verifier", func(c *backchannel.Config) { c.Verifier = nil }},
		{"Audience", func(c *backchannel.Config) { c.Audience = "" }},
		{"Store", func(c *backchannel.Config) { c.Store = nil }},
		{"TTL", func(c *backchannel.Config) { c.TTL = 0 }},
		{"Timeout", func(c *backchannel.Config) { c.Timeout = -1 }},
	}
	for _, tt := range tests {
		cfg := ok
		tt.edit(&cfg)
		_, err := backchannel.New(cfg)
		var ce *backchannel.ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("New() with bad %s: error = %v; want a ConfigError for it", tt.field, err)
		}
	}
	if _, err := backchannel.New(ok); err != nil {
		t.Errorf("New(valid) = %v", err)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestDeclaredLengthRefusedUnread checks that a body declared too large
// is refused before any of it is read.
func TestDeclaredLengthRefusedUnread(t *testing.T) {
	e := newEnv(t, nil)
	body := &countingReader{r: strings.NewReader(strings.Repeat("x", backchannel.MaxBodySize+1))}
	req := httptest.NewRequest(http.MethodPost, "/backchannel-logout", body)
	req.ContentLength = backchannel.MaxBodySize + 1
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 400 || body.n != 0 {
		t.Errorf("status %d after reading %d bytes; want 400 after none", rec.Code, body.n)
	}
}
