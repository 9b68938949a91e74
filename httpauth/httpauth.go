// Package httpauth is net/http middleware that authenticates requests by
// their OAuth 2.0 bearer token (RFC 6750) with a [keygate.Verifier] and
// authorizes them with an [authz.Policy].
//
// Answers follow RFC 6750, as Spring Security's resource server gives
// them:
//
//	case                                                     status  error
//	no token                                                 401     (bare Bearer challenge)
//	token present but malformed (not b64token, "Bearer" with
//	  no token, not a JWS)                                   401     invalid_token
//	token that fails verification                            401     invalid_token
//	malformed request: two Authorization headers, a token in
//	  two places, a bad method or path (see CheckTarget)     400     invalid_request
//	verified caller the policy refuses                       403     insufficient_scope
//	provider's keys unavailable, token cannot be checked     503     (Retry-After)
//
// A 400 is kept for requests that are malformed as requests; anything
// wrong with the token itself is a 401, which front proxies such as
// NGINX auth_request pass through (they turn a 400 into a 500).
//
// # The request target
//
// The rules and the handler or upstream behind the middleware must agree
// on which resource a request names. [CheckTarget] is the one definition
// of a request target the middleware accepts; [Middleware.Authorize]
// applies it before any rule, and the keygate binary applies the same
// function in proxy and forward-auth mode. What it refuses could mean one
// route to the rules and another to the upstream; what it accepts is
// matched by package authz, which also treats /x/ as /x and methods
// without regard to case (see its section on path equivalence).
//
// The middleware has the standard shape func(http.Handler) http.Handler
// ([Middleware.Wrap]) and works with http.ServeMux, chi, gorilla/mux and
// any other router. Handlers read the caller with [FromContext].
package httpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/internal/clip"
)

// Verifier checks a raw bearer token. [*keygate.Verifier] implements it.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*keygate.Principal, error)
}

// DefaultRetryAfter is the Retry-After of a 503 answer when
// [Config.RetryAfter] is zero.
const DefaultRetryAfter = 5 * time.Second

// Config configures a [Middleware].
type Config struct {
	// Verifier checks tokens. Required.
	Verifier Verifier

	// Policy decides what each request needs. Nil means every request
	// needs a valid token and nothing else.
	Policy *authz.Policy

	// Realm is the realm of the WWW-Authenticate challenge. Zero means
	// "keygate".
	Realm string

	// AllowQueryToken accepts a token in the access_token query parameter
	// (RFC 6750 section 2.3). Off by default: URLs end up in logs.
	AllowQueryToken bool

	// AllowFormToken accepts a token in an access_token field of a
	// form-encoded POST body (RFC 6750 section 2.2). Off by default.
	AllowFormToken bool

	// ExtraMethods are methods accepted besides GET, HEAD, POST, PUT,
	// PATCH, DELETE and OPTIONS, such as WebDAV's PROPFIND; they compare
	// without regard to case. Every other method is refused with 400
	// (see [CheckTarget]), so that a rule scoped to some methods cannot
	// be bypassed by one the upstream treats like them. Nil means none.
	ExtraMethods []string

	// ErrorHandler writes refusals. Nil means [WriteError].
	ErrorHandler func(w http.ResponseWriter, r *http.Request, e *Error)

	// RetryAfter is sent with 503 answers. Zero means [DefaultRetryAfter].
	RetryAfter time.Duration

	// Logger receives one line per refused request: status, reason,
	// method, path, subject when known and the error; never the token.
	// Each value is cut to 256 bytes, followed by a note of its full
	// length, because the caller chooses most of them. Nil means no
	// logging.
	Logger *slog.Logger
}

// Error is a refusal: what [Config.ErrorHandler] writes.
type Error struct {
	// Status is the HTTP status: 400, 401, 403 or 503.
	Status int
	// Code is the RFC 6750 error code: "invalid_request", "invalid_token"
	// or "insufficient_scope"; empty when the request carried no token.
	Code string
	// Description is a fixed text fit for error_description.
	Description string
	// Scope lists the scopes the refused route requires, for 403.
	Scope []string
	// Realm is the challenge realm.
	Realm string
	// RetryAfter is set for 503.
	RetryAfter time.Duration
	// Principal is the verified caller of a 403, or nil.
	Principal *keygate.Principal
	// Err is the cause, such as a [*keygate.Error]; it may quote token
	// content, so it belongs in logs only.
	Err error
}

// Error returns the status, the description and, if any, the cause. The
// cause may quote token content: log it, do not send it.
func (e *Error) Error() string {
	s := fmt.Sprintf("httpauth: %d %s", e.Status, e.Description)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// ConfigError reports a [Config] field that [New] refuses.
type ConfigError struct {
	// Field is the name of the field, such as "Realm".
	Field string
	// Problem says what is wrong and what to do.
	Problem string
}

func (e *ConfigError) Error() string { return "httpauth: Config." + e.Field + " " + e.Problem }

// Middleware authenticates and authorizes requests. It is safe for
// concurrent use.
type Middleware struct {
	cfg Config
}

// New checks cfg and returns a Middleware. An error is a [*ConfigError].
func New(cfg Config) (*Middleware, error) {
	if cfg.Verifier == nil {
		return nil, &ConfigError{"Verifier", "is nil; use a *keygate.Verifier"}
	}
	if cfg.Realm == "" {
		cfg.Realm = "keygate"
	}
	for _, c := range cfg.Realm {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return nil, &ConfigError{"Realm", fmt.Sprintf("%q must be printable ASCII without quotes or backslashes", cfg.Realm)}
		}
	}
	for _, m := range cfg.ExtraMethods {
		if !validMethod(m) {
			return nil, &ConfigError{"ExtraMethods", fmt.Sprintf("holds %q, which is not an RFC 9110 token of 1 to %d bytes", m, maxMethod)}
		}
	}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = WriteError
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	return &Middleware{cfg: cfg}, nil
}

type ctxKey struct{}

// NewContext returns a copy of ctx that carries p.
func NewContext(ctx context.Context, p *keygate.Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the verified caller the middleware put in ctx. It
// reports false for anonymous requests on public routes.
func FromContext(ctx context.Context) (*keygate.Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*keygate.Principal)
	return p, ok && p != nil
}

// Wrap returns a handler that serves next only for requests the policy
// allows, with the caller in the request context. Its method value
// m.Wrap is a func(http.Handler) http.Handler.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, e := m.authorize(r, r.Method, r.URL)
		if e != nil {
			m.refuse(w, r, e)
			return
		}
		if p != nil {
			r = r.WithContext(NewContext(r.Context(), p))
		}
		next.ServeHTTP(w, r)
	})
}

// Authorize decides one request: the caller is read from r's headers, the
// route from method and u, which differ from r's own for forward-auth
// (the original request's method and URI). It first refuses with 400
// what [CheckTarget] refuses, then matches the policy's rules. It
// returns the verified caller, nil for an anonymous caller of a public
// route, or the refusal.
//
// A non-nil error is always an [*Error]; get it with errors.As to read
// the status and write it with [WriteError] or [Config.ErrorHandler].
func (m *Middleware) Authorize(r *http.Request, method string, u *url.URL) (*keygate.Principal, error) {
	p, e := m.authorize(r, method, u)
	if e != nil {
		return nil, e
	}
	return p, nil
}

// authorize is Authorize with the refusal's concrete type, for Wrap.
func (m *Middleware) authorize(r *http.Request, method string, u *url.URL) (*keygate.Principal, *Error) {
	if e := checkTarget(method, u, m.cfg.ExtraMethods); e != nil {
		return nil, e
	}
	req := authz.Authenticated()
	if m.cfg.Policy != nil {
		req, _ = m.cfg.Policy.Match(method, u.Path)
	}
	raw, e := m.token(r, u)
	if req.Public() {
		// A public route serves anonymous callers; a token that verifies
		// still identifies its caller, one that does not is ignored.
		if e != nil || raw == "" {
			return nil, nil
		}
		p, err := m.cfg.Verifier.Verify(r.Context(), raw)
		if err != nil {
			return nil, nil
		}
		return p, nil
	}
	if e != nil {
		return nil, e
	}
	if raw == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Description: "a bearer token is required"}
	}
	p, err := m.cfg.Verifier.Verify(r.Context(), raw)
	if err != nil {
		return nil, m.verifyError(err)
	}
	if !req.Allows(p) {
		return nil, m.forbidden(p, req)
	}
	return p, nil
}

// Require returns middleware for one handler that lets through only
// callers who satisfy req, like Spring's @PreAuthorize. It reads the
// caller from the context, so it runs inside [Middleware.Wrap].
func (m *Middleware) Require(req authz.Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := FromContext(r.Context())
			switch {
			case req.Allows(p):
				next.ServeHTTP(w, r)
			case !ok:
				m.refuse(w, r, &Error{Status: http.StatusUnauthorized, Description: "a bearer token is required"})
			default:
				m.refuse(w, r, m.forbidden(p, req))
			}
		})
	}
}

// RequireRole is Require(authz.Role(role)).
func (m *Middleware) RequireRole(role string) func(http.Handler) http.Handler {
	return m.Require(authz.Role(role))
}

// RequireScope is Require(authz.Scope(scope)).
func (m *Middleware) RequireScope(scope string) func(http.Handler) http.Handler {
	return m.Require(authz.Scope(scope))
}

func (m *Middleware) forbidden(p *keygate.Principal, req authz.Requirement) *Error {
	return &Error{
		Status:      http.StatusForbidden,
		Code:        "insufficient_scope",
		Description: "the token does not grant access to this resource",
		Scope:       req.Scopes(),
		Principal:   p,
		Err:         fmt.Errorf("httpauth: requirement %s not met", req),
	}
}

func (m *Middleware) invalidRequest(desc string) *Error {
	return invalidRequest(desc)
}

func invalidRequest(desc string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

// malformedToken is the refusal of a token that is present but does not
// have the b64token syntax of RFC 6750: a 401, as for any other token
// that does not verify.
func malformedToken(where string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "malformed token",
		Err: fmt.Errorf("httpauth: the bearer token in %s is not b64token syntax: %w", where, keygate.ErrMalformed)}
}

func (m *Middleware) verifyError(err error) *Error {
	if errors.Is(err, keygate.ErrKeysUnavailable) {
		return &Error{Status: http.StatusServiceUnavailable, Description: "the token cannot be checked now; retry later",
			RetryAfter: m.cfg.RetryAfter, Err: err}
	}
	desc := "invalid token"
	var ke *keygate.Error
	if errors.As(err, &ke) {
		desc = ke.Description()
	}
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: desc, Err: err}
}

func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, e *Error) {
	e.Realm = m.cfg.Realm
	if m.cfg.Logger != nil {
		attrs := []any{"status", e.Status, "reason", logValue(e.Description), "method", logValue(r.Method), "path", logValue(r.URL.Path)}
		if e.Principal != nil {
			attrs = append(attrs, "sub", logValue(e.Principal.Subject))
		}
		if e.Err != nil {
			attrs = append(attrs, "error", logValue(e.Err.Error()))
		}
		m.cfg.Logger.Log(r.Context(), slog.LevelInfo, "request refused", attrs...)
	}
	m.cfg.ErrorHandler(w, r, e)
}

// token extracts the bearer token from r (RFC 6750 section 2). It returns
// "" when there is none, a 401 invalid_token for a token that is not
// b64token syntax (including "Bearer" with no token), and a 400 for a
// malformed request: more than one token, or an unreadable form.
func (m *Middleware) token(r *http.Request, u *url.URL) (string, *Error) {
	var found []string
	// checked reports that found[0] came from the Authorization header,
	// whose token parseBearer has already found to be b64token syntax: a
	// token is scanned once (it is ~1-2 KiB, and the scan was a tenth of
	// a cached request's cost in the proxy).
	checked := false
	switch hs := r.Header.Values("Authorization"); len(hs) {
	case 0:
	case 1:
		tok, bearer, valid := parseBearer(hs[0])
		switch {
		case bearer && !valid:
			return "", malformedToken("the Authorization header")
		case bearer:
			found = append(found, tok)
			checked = true
		}
		// Another scheme (Basic, DPoP, ...) carries no bearer token.
	default:
		return "", m.invalidRequest("more than one Authorization header")
	}
	if m.cfg.AllowQueryToken {
		switch vs := u.Query()["access_token"]; len(vs) {
		case 0:
		case 1:
			found = append(found, vs[0])
		default:
			return "", m.invalidRequest("more than one access_token parameter")
		}
	}
	if m.cfg.AllowFormToken && r.Method == http.MethodPost &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err != nil {
			return "", m.invalidRequest("unreadable form body")
		}
		switch vs := r.PostForm["access_token"]; len(vs) {
		case 0:
		case 1:
			found = append(found, vs[0])
		default:
			return "", m.invalidRequest("more than one access_token field")
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		if !checked && !isB64Token(found[0]) {
			return "", malformedToken("access_token")
		}
		return found[0], nil
	}
	return "", m.invalidRequest("more than one access token in the request")
}

// b64tokenByte is the set of the bytes of a b64token before its "="
// padding, as a table of 1 (in the set) and 0: a token is checked on
// every request, and and-ing table entries eight bytes at a time, with
// one branch per eight bytes, is several times faster than comparisons
// or a branch per byte. It is never written after initialization.
var b64tokenByte = func() (t [256]byte) {
	for c := range 256 {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			t[c] = 1
		}
	}
	return t
}()

// isB64Token reports whether s has the b64token syntax of RFC 6750
// section 2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	// "=" is not in the set, so s is a b64token exactly when what is
	// left without its trailing "=" is not empty and all in the set.
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	t := &b64tokenByte
	for len(s) >= 8 {
		if t[s[0]]&t[s[1]]&t[s[2]]&t[s[3]]&t[s[4]]&t[s[5]]&t[s[6]]&t[s[7]] == 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if t[s[i]] == 0 {
			return false
		}
	}
	return true
}

// maxMethod is the longest method [CheckTarget] accepts, in bytes.
const maxMethod = 32

// CheckTarget reports whether method and u, the request target of a
// request (u.Path decoded, u.RawPath as sent when it differs), are
// acceptable, that is: whether the rules of an [authz.Policy] can be
// trusted to name the resource the handler or upstream will serve. It is
// the one definition of an acceptable target in keygate:
// [Middleware.Authorize] calls it first, and the keygate binary calls it
// for proxy mode and forward-auth.
//
// CheckTarget refuses, as Spring Security's StrictHttpFirewall does, and
// more:
//
//   - a method other than GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS,
//     in any case (see [Config.ExtraMethods]): a rule scoped to GET must
//     not be bypassed by a method the upstream routes like GET (FOO,
//     GETS, PROPFIND with a catch-all handler);
//   - a path that does not start with "/" (such as "*"), or a URL with a
//     fragment;
//   - in the decoded path: a control character (NUL among them), a backslash,
//     ";", "#", "?" (an encoded %3F or %23 that a second decoding turns
//     into a query or fragment), or bytes that are not UTF-8;
//   - a segment that ends in "." or a space, which Windows servers (IIS,
//     ASP.NET) drop: /admin./x and /admin%20/x are /admin/x to them;
//   - "%" in the decoded path, that is "%25" in the path as sent: double
//     encoding such as %252e or %252f, which a second decoding upstream
//     would turn into a dot segment or a slash;
//   - a path that is not canonical: dot segments and "//", also when they
//     were percent-encoded (the check runs on the decoded path);
//   - an encoded slash or backslash (%2F, %5C) in the path as sent.
//
// A trailing slash, letters of any case and any query are accepted;
// rules do not match queries, and the query goes upstream unchanged.
//
// A URL parsed by url.ParseRequestURI, as a forward-auth URI header is,
// keeps a "#" and what follows in Path, so "/admin#x" is refused; one
// parsed by url.Parse puts what follows the "#" in Fragment, and is
// refused when that is not empty. Parse request targets with
// url.ParseRequestURI.
//
// The error is nil or a [*Error] with Status 400, Code "invalid_request"
// and a fixed Description fit to send, naming the class of the problem
// and never quoting the input. Callers that answer the request
// themselves use it as it is:
//
//	if err := httpauth.CheckTarget(method, u); err != nil {
//		var e *httpauth.Error
//		errors.As(err, &e) // always true
//		httpauth.WriteError(w, r, e)
//		return
//	}
func CheckTarget(method string, u *url.URL) error {
	if e := checkTarget(method, u, nil); e != nil {
		return e
	}
	return nil
}

func checkTarget(method string, u *url.URL, extra []string) *Error {
	if !validMethod(method) {
		return invalidRequest("the request method is not a valid method")
	}
	if !knownMethod(method) && !slices.ContainsFunc(extra, func(m string) bool { return strings.EqualFold(m, method) }) {
		return invalidRequest("the request method is not allowed")
	}
	if u == nil || u.Path == "" || u.Path[0] != '/' {
		return invalidRequest("the request path must start with /")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return invalidRequest("the request path holds a forbidden character")
	}
	p := u.Path
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '#' || c == '?':
			return invalidRequest("the request path holds a forbidden character")
		case (c == '.' || c == ' ') && (i+1 == len(p) || p[i+1] == '/') && !dotSegment(p, i):
			// "." and ".." are for the canonical check below.
			return invalidRequest("the request path has a segment ending in a dot or a space")
		case c == '%':
			return invalidRequest("the request path is encoded twice (%25)")
		}
	}
	if !utf8.ValidString(p) {
		return invalidRequest("the request path is not valid UTF-8")
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean != p {
		return invalidRequest("the request path is not canonical")
	}
	// RawPath, when set, is the path as sent; when it is not valid for
	// Path, url.URL ignores it, and so may whoever forwards u. Check it
	// anyway: it costs nothing and it is what an upstream might see.
	if raw := u.RawPath; raw != "" {
		if strings.Contains(raw, "%25") {
			return invalidRequest("the request path is encoded twice (%25)")
		}
		if containsFold(raw, "%2f") || containsFold(raw, "%5c") {
			return invalidRequest("the request path holds an encoded slash")
		}
	}
	return nil
}

// dotSegment reports whether p[i], the last byte of a segment, ends a "."
// or ".." segment.
func dotSegment(p string, i int) bool {
	start := strings.LastIndexByte(p[:i], '/') + 1
	seg := p[start : i+1]
	return seg == "." || seg == ".."
}

// knownMethod reports whether m is one of the methods CheckTarget
// accepts by default, in any case.
func knownMethod(m string) bool {
	for _, k := range [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if strings.EqualFold(m, k) {
			return true
		}
	}
	return false
}

// validMethod reports whether m is an RFC 9110 token of 1 to maxMethod
// bytes.
func validMethod(m string) bool {
	if m == "" || len(m) > maxMethod {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !isTchar(m[i]) {
			return false
		}
	}
	return true
}

// isTchar reports whether c is an RFC 9110 tchar.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// containsFold reports whether s holds substr, an ASCII lower-case
// string, in any case.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

// logValue returns s cut to clip.Log bytes with a note of its full
// length. The values a refusal logs (method, path, the error that may
// quote token content) are the caller's choice, and an 11 kB one must not
// become an 11 kB log line.
func logValue(s string) string { return clip.String(s, clip.Log) }

// WriteError is the default [Config.ErrorHandler]. It writes the RFC 6750
// WWW-Authenticate challenge, Retry-After for 503, and a small JSON body
// with the error code and description.
func WriteError(w http.ResponseWriter, r *http.Request, e *Error) {
	h := w.Header()
	if e.Status != http.StatusServiceUnavailable {
		h.Set("WWW-Authenticate", Challenge(e))
	} else {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	body := struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{e.Code, e.Description}
	switch {
	case e.Status == http.StatusServiceUnavailable:
		body.Error = "temporarily_unavailable"
	case body.Error == "":
		body.Error = "unauthorized"
	}
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(body)
}

// Challenge returns the WWW-Authenticate value for e (RFC 6750 section
// 3): `Bearer realm="..."`, with error, error_description and scope when
// e carries them.
func Challenge(e *Error) string {
	var b strings.Builder
	b.WriteString("Bearer")
	param(&b, " realm", e.Realm)
	if e.Code != "" {
		param(&b, ", error", e.Code)
		param(&b, ", error_description", e.Description)
	}
	if len(e.Scope) > 0 {
		param(&b, ", scope", strings.Join(e.Scope, " "))
	}
	return b.String()
}

// param writes name="value" as an RFC 9110 quoted-string, dropping what
// RFC 6750 does not allow in its parameters.
func param(b *strings.Builder, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	for i := 0; i < len(value); i++ {
		if c := value[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
