package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/metrics"
	"github.com/keygate/keygate/httpauth"
)

// newHandler returns the main listener's handler. It dispatches on the
// exact path rather than through http.ServeMux, which would clean and
// redirect paths before the strict path check of httpauth sees them.
func (s *Server) newHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case s.faPath != "" && r.URL.Path == s.faPath:
			s.serveForwardAuth(w, r)
		case s.logoutPath != "" && r.URL.Path == s.logoutPath:
			s.logout.ServeHTTP(w, r)
		case s.proxy != nil:
			s.serveProxy(w, r)
		default:
			writeJSON(w, http.StatusNotFound, errorBody{"not_found", "keygate answers forward-auth requests on " + s.faPath + " only"})
		}
	})
}

// Modes of a decision, the mode attribute of a refusal's log line.
const (
	modeProxy       = "proxy"
	modeForwardAuth = "forward_auth"
	modeExtAuthz    = "ext_authz"
)

// decide runs the access decision for the request r stands for, records
// it and, on refusal, logs it.
func (s *Server) decide(r *http.Request, mode, method string, u *url.URL) (*keygate.Principal, *httpauth.Error) {
	// Two readings of the monotonic clock: time.Now would read the
	// wall clock too, which a duration does not need.
	start := time.Since(s.epoch)
	p, err := s.auth.Authorize(r, method, u)
	var e *httpauth.Error
	if err != nil && !errors.As(err, &e) {
		// Authorize documents *httpauth.Error; were it anything else,
		// the request is still refused.
		e = &httpauth.Error{Status: http.StatusUnauthorized, Description: "a bearer token is required", Err: err}
	}
	s.record(r.Context(), mode, method, u.Path, e, time.Since(s.epoch)-start)
	return p, e
}

func (s *Server) record(ctx context.Context, mode, method, path string, e *httpauth.Error, d time.Duration) {
	if e == nil {
		s.metrics.Decision(metrics.Allowed, metrics.ReasonOK, d)
		return
	}
	s.metrics.Decision(metrics.Outcome(e.Status), e.Description, d)
	// One line per refused request: never the token, and e.Err only,
	// which names the failed check.
	// Every value the client chose is clipped.
	attrs := []any{"status", e.Status, "reason", e.Description, "method", clipValue(method), "path", clipValue(path)}
	if e.Principal != nil {
		attrs = append(attrs, "sub", clipValue(e.Principal.Subject))
	}
	if e.Err != nil {
		attrs = append(attrs, "error", clipValue(e.Err.Error()))
	}
	if mode != modeProxy {
		attrs = append(attrs, mode, true)
	}
	s.log.Log(ctx, slog.LevelInfo, "request refused", attrs...)
}

// refuse writes e as httpauth does: WWW-Authenticate (or Retry-After)
// and a small JSON body.
//
// A refused request that announced a body is answered with
// Connection: close, and the connection stops reading at once: otherwise
// net/http would read up to 256 kB of the unread body after the answer,
// for as long as timeouts.read allows, and a client trickling bodies
// could hold every slot of the connection limit without a token.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, e *httpauth.Error) {
	e.Realm = s.cfg.Realm
	unread := r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
	if unread {
		w.Header().Set("Connection", "close")
	}
	httpauth.WriteError(w, r, e)
	if unread {
		// The answer is written; nothing more is read from this client.
		http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	p, e := s.decide(r, modeProxy, r.Method, r.URL)
	if e != nil {
		s.refuse(w, r, e)
		return
	}
	// The caller reaches Rewrite through the call, not through a context
	// value: r.WithContext copies the whole request, and with the
	// context value that was 2 of the 8 allocations and 360 of the
	// 1,230 bytes keygate added to the bare proxy's per request. A
	// call is not put back when ServeHTTP
	// panics (http.ErrAbortHandler on a broken copy), so a pooled call
	// never carries a caller into another request.
	c := s.calls.Get().(*proxyCall)
	c.p = p
	c.rp.ServeHTTP(w, r)
	c.p = nil
	s.calls.Put(c)
}

// proxyCall proxies one request: a copy of the server's
// httputil.ReverseProxy whose Rewrite sets the identity headers of p,
// the caller the decision allowed (nil for an anonymous caller of a
// public route). Calls are pooled in Server.calls and used by one
// request at a time.
type proxyCall struct {
	rp httputil.ReverseProxy
	p  *keygate.Principal
}

// newCall returns a proxyCall for s's proxy, for the pool.
func (s *Server) newCall() *proxyCall {
	c := &proxyCall{rp: *s.proxy}
	c.rp.Rewrite = func(pr *httputil.ProxyRequest) { s.rewrite(pr, c.p) }
	return c
}

// upstreamIdleConns is how many idle connections to the upstream the
// proxy keeps.
const upstreamIdleConns = 256

// newProxy returns the template of the proxy's calls (see proxyCall).
func (s *Server) newProxy(upstream *url.URL, transport http.RoundTripper) *httputil.ReverseProxy {
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // the upstream is reached directly, whatever HTTP_PROXY says
		// All requests go to one upstream: keep as many idle connections
		// as a busy proxy uses at once. The default of 2 per host made
		// most requests under load dial a new connection.
		t.MaxIdleConns = upstreamIdleConns
		t.MaxIdleConnsPerHost = upstreamIdleConns
		t.DialContext = (&net.Dialer{Timeout: s.cfg.Timeouts.UpstreamDial, KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = s.cfg.Timeouts.UpstreamResponseHeader
		transport = t
	}
	// No Rewrite: each proxyCall sets its own. Served as it is, the
	// template would answer 502 (ErrorHandler) and send nothing upstream.
	return &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: &bufferPool{},
		ErrorLog:   slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client went away; nobody reads the answer.
				s.log.Debug("client gone before the upstream answered", "method", clipValue(r.Method), "path", clipValue(r.URL.Path))
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			s.metrics.UpstreamError()
			s.log.Error("upstream error", "method", clipValue(r.Method), "path", clipValue(r.URL.Path), "upstream", upstream.Host, "error", clipValue(err.Error()))
			writeJSON(w, http.StatusBadGateway, errorBody{"bad_gateway", "the upstream did not answer"})
		},
	}
}

// rewrite prepares the request to the upstream for the caller p (nil:
// none). Strip before set: whatever the client sent under an identity,
// strip-list or forwarding header name, in any case and with '_' for
// '-', never reaches the upstream, on public routes too. X-Forwarded-*
// are set after the strip.
func (s *Server) rewrite(pr *httputil.ProxyRequest, p *keygate.Principal) {
	s.strip.strip(pr.Out.Header)
	s.strip.strip(pr.Out.Trailer)
	pr.SetURL(s.upstream)
	pr.SetXForwarded()
	if !s.cfg.ForwardToken {
		// The server canonicalized every name it read, and the strip
		// above removed the other spellings of identity names; delete
		// is Del without canonicalizing a constant on every request.
		delete(pr.Out.Header, "Authorization")
	}
	if p != nil {
		s.headers.set(pr.Out.Header, p)
	}
}

// bufferPool lends the proxy its body copy buffers. Without a pool,
// httputil.ReverseProxy allocates 32 KiB per request, and that garbage
// alone made the collector run often under load. Each proxy has its own.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// serveForwardAuth answers a front proxy's auth subrequest: 200 with the
// identity headers when the original request is allowed, the refusal
// otherwise. The decision is [Server.checkSubrequest]'s.
func (s *Server) serveForwardAuth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p, e := s.checkSubrequest(r, modeForwardAuth)
	if e != nil {
		s.refuse(w, r, e)
		return
	}
	if p != nil {
		s.headers.set(w.Header(), p)
	}
	w.WriteHeader(http.StatusOK)
}

// checkSubrequest decides the request that r, an access check a front
// proxy sends, stands for: a forward-auth subrequest, or an Envoy
// ext_authz CheckRequest that [extAuthzRequest] translated into one. It
// is the one decision of both modes, so that they cannot drift. Only r's
// headers and context are read: the original method and URI come from
// X-Forwarded-Method and X-Forwarded-Uri (Traefik, Caddy, ext_authz) or
// X-Original-Method and X-Original-URI (NGINX), the token from
// Authorization. It returns the caller to name in the identity headers
// (nil for an anonymous caller of a public route), or the refusal, which
// it has recorded and logged.
//
// A subrequest carrying a header that keygate sets, in any spelling, or
// a '_' spelling of one it strips, is refused with 400: the front proxy
// passed a client's header that its own rules missed (X_Auth_Username,
// which NGINX drops but Caddy and Envoy pass), and the upstream may read
// it as keygate's. The strip list and the forward-auth inputs are
// accepted in their plain spelling (see spoofed).
func (s *Server) checkSubrequest(r *http.Request, mode string) (*keygate.Principal, *httpauth.Error) {
	if name := spoofed(r.Header, s.owned, s.strip); name != "" {
		e := badRequest(spoofedHeader)
		e.Err = fmt.Errorf("server: %s request carries the header %s", strings.ReplaceAll(mode, "_", "-"), name)
		s.record(r.Context(), mode, "", "", e, 0)
		return nil, e
	}
	method, rawURI, e := originalRequest(r.Header)
	var u *url.URL
	if e == nil {
		var err error
		if u, err = url.ParseRequestURI(rawURI); err != nil || u.Path == "" {
			e = badRequest("the original request URI is not a valid request target")
		}
	}
	if e != nil {
		s.record(r.Context(), mode, method, rawURI, e, 0)
		return nil, e
	}
	return s.decide(r, mode, method, u)
}

// originalRequest reads the method and URI of the request a forward-auth
// subrequest stands for. One pair of headers must be present, each once;
// when both pairs are, they must agree. A client can add either pair to
// its own request and some front proxies pass it on, so keygate never
// prefers one pair over the other.
func originalRequest(h http.Header) (method, uri string, e *httpauth.Error) {
	type pair struct{ method, uri string }
	var found []pair
	for _, names := range [][2]string{{"X-Forwarded-Method", "X-Forwarded-Uri"}, {"X-Original-Method", "X-Original-Uri"}} {
		ms, us := h.Values(names[0]), h.Values(names[1])
		if len(ms) == 0 && len(us) == 0 {
			continue
		}
		if len(ms) != 1 || len(us) != 1 {
			return "", "", badRequest("forward-auth needs exactly one " + names[0] + " and one " + names[1] + " header")
		}
		found = append(found, pair{ms[0], us[0]})
	}
	switch {
	case len(found) == 0:
		return "", "", badRequest("forward-auth needs X-Forwarded-Method and X-Forwarded-Uri, or X-Original-Method and X-Original-URI")
	case len(found) == 2 && found[0] != found[1]:
		return "", "", badRequest("X-Forwarded-Method/Uri and X-Original-Method/URI disagree")
	}
	if !validMethod(found[0].method) {
		return "", "", badRequest("the original request method is not a valid method")
	}
	return found[0].method, found[0].uri, nil
}

func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func badRequest(desc string) *httpauth.Error {
	return &httpauth.Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

// identity sets the identity headers.
type identity struct {
	subject, username, email, roles, client, scopes string // "" when off
}

func newIdentity(h config.IdentityHeaders) identity {
	on := func(name string) string {
		if name == config.Off {
			return ""
		}
		return http.CanonicalHeaderKey(name)
	}
	return identity{
		subject: on(h.Subject), username: on(h.Username), email: on(h.Email),
		roles: on(h.Roles), client: on(h.Client), scopes: on(h.Scopes),
	}
}

// names returns the names of the headers that are on.
func (id identity) names() []string {
	return []string{id.subject, id.username, id.email, id.roles, id.client, id.scopes}
}

// set writes p's identity headers to h. Empty values are not written.
// The values share one backing array: one allocation instead of one per
// header.
func (id identity) set(h http.Header, p *keygate.Principal) {
	vals := make([]string, 0, 6)
	put := func(name, value string) {
		if name != "" && value != "" {
			vals = append(vals, headerValue(value))
			h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	put(id.subject, p.Subject)
	put(id.username, p.Username)
	put(id.email, p.Email)
	put(id.roles, strings.Join(p.Roles, ","))
	put(id.client, p.Client)
	put(id.scopes, strings.Join(p.Scopes, " "))
}

// headerValue drops the control characters a header value cannot hold;
// claims are JSON strings and may contain them. Control characters are
// ASCII and UTF-8 never uses ASCII bytes inside a longer sequence, so a
// byte scan finds what a rune scan would.
func headerValue(v string) string {
	i := 0
	for ; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			break
		}
	}
	if i == len(v) {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, v)
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
