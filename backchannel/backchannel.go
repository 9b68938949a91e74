// Package backchannel receives OpenID Connect Back-Channel Logout 1.0
// requests (https://openid.net/specs/openid-connect-backchannel-1_0.html,
// final, with errata set 1): the provider posts a logout token when a
// session ends, and a [Handler] revokes the access tokens of that session
// in a [revoke.Store], which the [keygate.Verifier] consults on every
// request ([keygate.Config.Revocations]).
//
// What the Handler does, by section of the specification:
//
//   - 2.5, the request: a POST of an application/x-www-form-urlencoded body
//     with exactly one logout_token parameter. Parameters in the query
//     string are not read, and the body is capped at [MaxBodySize].
//   - 2.6, validation: [keygate.Verifier.VerifyLogoutToken] against the
//     client ID in [Config.Audience]; then jti must not have been received
//     before ([revoke.Store.FirstUse], shared by a cluster when the store
//     is).
//   - 2.7, the action: a token with sid revokes that session (a
//     [revoke.Session] revocation); one with sub alone revokes every token
//     of the subject issued before the logout token's iat (a
//     [revoke.Subject] revocation), so that the user may log in again.
//     Either is kept for [Config.TTL].
//   - 2.8, the response: 200 with Cache-Control: no-store and no body once
//     the revocation is recorded; otherwise 400 Bad Request, as the
//     section requires for an invalid request and for a failed logout
//     alike, with a JSON body {"error", "error_description"} whose texts
//     are fixed (they never quote the request). error is
//     "invalid_request" for a bad request or token, "temporarily_unavailable"
//     when the signing keys or the store cannot be reached. A method other
//     than POST is answered 405 with Allow: POST.
//
// Keycloak sends each logout token once, never retries it, and waits about
// 5 seconds for the answer, so the Handler bounds its work by
// [Config.Timeout] and logs every failure: a failure to record is logged
// at Error level, as the logout is lost unless an operator revokes the
// session by hand.
package backchannel

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/internal/clip"
	"github.com/keygate/keygate/revoke"
)

// MaxBodySize is the largest request body a [Handler] reads, in bytes.
// A logout token is a few hundred bytes to a few kilobytes, and the
// verifier refuses one over [keygate.Config.MaxTokenSize] anyway.
const MaxBodySize = 64 << 10

// DefaultTimeout is the zero value of [Config.Timeout].
const DefaultTimeout = 3 * time.Second

// Source is the [revoke.Revocation.Source] of the revocations a
// [Handler] records.
const Source = "backchannel_logout"

// Config configures a [Handler].
type Config struct {
	// Verifier checks the logout tokens; it is usually the Verifier that
	// checks the access tokens, so that both trust the same issuer, keys
	// and algorithms. Required.
	Verifier *keygate.Verifier

	// Audience is the client ID the provider sends logout tokens to: the
	// aud they must carry. In Keycloak, it is the client whose
	// "Backchannel logout URL" points at this handler. Required.
	Audience string

	// Store records the revocations and the jti of each logout token
	// received. Required.
	Store revoke.Store

	// TTL is how long a revocation is kept: at least the longest lifetime
	// of an access token the Verifier accepts, plus its leeway, since a
	// revoked token would pass again once its revocation is forgotten.
	// Required.
	TTL time.Duration

	// Timeout bounds the work for one request: verification (which may
	// refetch the keys once for an unknown kid) and the store calls.
	// Zero means [DefaultTimeout]; keep it under the provider's timeout
	// (about 5 s in Keycloak).
	Timeout time.Duration

	// Logger receives a line per logout received (Info), refused (Warn)
	// or lost (Error). Lines carry the sid or sub and jti cut to a fixed
	// length, never the token. Nil means no logging.
	Logger *slog.Logger

	// Now is the clock for the revocations' At and Expires. Nil means
	// time.Now.
	Now func() time.Time
}

// ConfigError reports a [Config] field that [New] refuses.
type ConfigError struct {
	// Field is the name of the field, such as "Audience".
	Field string
	// Problem says what is wrong and what to do.
	Problem string
}

func (e *ConfigError) Error() string { return "backchannel: Config." + e.Field + " " + e.Problem }

// Handler is the back-channel logout endpoint, an [http.Handler]. It is
// safe for concurrent use.
type Handler struct {
	cfg Config
}

var _ http.Handler = (*Handler)(nil)

// New checks cfg and returns a Handler. It does no I/O. An error is a
// [*ConfigError].
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Verifier == nil:
		return nil, &ConfigError{"Verifier", "is nil; use the keygate.Verifier that checks the access tokens"}
	case cfg.Audience == "":
		return nil, &ConfigError{"Audience", "is empty; set it to the client ID the provider sends logout tokens to"}
	case cfg.Store == nil:
		return nil, &ConfigError{"Store", "is nil; use a revoke.Store, the one the Verifier consults"}
	case cfg.TTL <= 0:
		return nil, &ConfigError{"TTL", "is not positive; set it to the longest access-token lifetime plus the leeway"}
	case cfg.Timeout < 0:
		return nil, &ConfigError{"Timeout", "is negative; zero means the default of 3s"}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{cfg: cfg}, nil
}

// The error codes of the response body (RFC 6749 section 5.2 and 4.1.2.1).
const (
	invalidRequest = "invalid_request"
	unavailable    = "temporarily_unavailable"
)

// ServeHTTP receives one back-channel logout request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, r, http.StatusMethodNotAllowed, invalidRequest, "method not allowed: use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		h.refuse(w, r, http.StatusBadRequest, invalidRequest, "content type must be application/x-www-form-urlencoded")
		return
	}
	raw, msg := readToken(w, r)
	if msg != "" {
		h.refuse(w, r, http.StatusBadRequest, invalidRequest, msg)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	lt, err := h.cfg.Verifier.VerifyLogoutToken(ctx, raw, h.cfg.Audience)
	if err != nil {
		code, level := invalidRequest, slog.LevelWarn
		desc := "invalid logout token"
		var ke *keygate.Error
		if errors.As(err, &ke) {
			desc += ": " + ke.Description()
		}
		if errors.Is(err, keygate.ErrKeysUnavailable) {
			code, level = unavailable, slog.LevelError
		}
		h.log(ctx, level, "backchannel: logout token refused", r, slog.String("error", logValue(err.Error())))
		writeError(w, http.StatusBadRequest, code, desc)
		return
	}
	attrs := []any{slog.String("jti", logValue(lt.JWTID))}

	// Section 2.6 step 7 makes the replay check optional; the revocation
	// is what matters. So a store that cannot answer it does not stop the
	// logout: a replay would only record the same revocation again.
	first, err := h.cfg.Store.FirstUse(ctx, lt.JWTID, lt.AcceptedUntil)
	switch {
	case err != nil && !errors.Is(err, revoke.ErrNotShared):
		h.log(ctx, slog.LevelWarn, "backchannel: replay check failed; revoking anyway", r,
			append(attrs, slog.String("error", logValue(err.Error())))...)
	case !first:
		// With ErrNotShared, first is this instance's own answer.
		h.log(ctx, slog.LevelWarn, "backchannel: logout token replayed", r, attrs...)
		writeError(w, http.StatusBadRequest, invalidRequest, "logout token already received")
		return
	}

	rev := h.revocation(lt)
	attrs = append(attrs, slog.String("kind", string(rev.Kind)), slog.String("value", logValue(rev.Value)))
	switch err := h.cfg.Store.Revoke(ctx, rev); {
	case errors.Is(err, revoke.ErrNotShared):
		// Recorded here, and sent to the cluster once the store is
		// reachable: a success for the provider, which never resends.
		h.log(ctx, slog.LevelWarn, "backchannel: logout recorded on this instance only for now", r,
			append(attrs, slog.String("error", logValue(err.Error())))...)
		w.WriteHeader(http.StatusOK)
		return
	case err != nil:
		h.log(ctx, slog.LevelError, "backchannel: logout lost: the revocation could not be recorded", r,
			append(attrs, slog.String("error", logValue(err.Error())))...)
		writeError(w, http.StatusBadRequest, unavailable, "the logout could not be recorded")
		return
	}
	h.log(ctx, slog.LevelInfo, "backchannel: logout received", r, attrs...)
	w.WriteHeader(http.StatusOK)
}

// revocation is what lt asks for (section 2.7): its session, or with no
// sid every token of its subject issued before it.
func (h *Handler) revocation(lt *keygate.LogoutToken) revoke.Revocation {
	now := h.cfg.Now()
	if lt.SessionID != "" {
		return revoke.Revocation{Kind: revoke.Session, Value: lt.SessionID, At: now, Expires: now.Add(h.cfg.TTL), Source: Source}
	}
	// The tokens it matches were issued before IssuedAt, which may be
	// ahead of this clock by up to the leeway: they are all expired by
	// IssuedAt + TTL.
	base := now
	if lt.IssuedAt.After(base) {
		base = lt.IssuedAt
	}
	// iat is in whole seconds: a token issued in the logout's own second
	// may predate it, so that second counts as before (fail closed; a
	// login in that same second after the logout is refused too).
	return revoke.Revocation{Kind: revoke.Subject, Value: lt.Subject, IssuedBefore: lt.IssuedAt.Add(time.Second),
		At: now, Expires: base.Add(h.cfg.TTL), Source: Source}
}

// readToken reads the one logout_token parameter of r's body. msg, when
// not empty, is the fixed description of what is wrong.
func readToken(w http.ResponseWriter, r *http.Request) (token, msg string) {
	if r.ContentLength > MaxBodySize {
		return "", "request body too large"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return "", "request body too large"
		}
		return "", "cannot read the request body"
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "", "malformed form body"
	}
	switch v := form["logout_token"]; {
	case len(v) == 0 || v[0] == "":
		return "", "missing logout_token"
	case len(v) > 1:
		return "", "more than one logout_token"
	default:
		return v[0], ""
	}
}

// refuse logs and answers a request refused before its token was read.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	h.log(r.Context(), slog.LevelWarn, "backchannel: request refused: "+desc, r)
	writeError(w, status, code, desc)
}

func (h *Handler) log(ctx context.Context, level slog.Level, msg string, r *http.Request, attrs ...any) {
	if h.cfg.Logger == nil {
		return
	}
	attrs = append(attrs, slog.String("remote_addr", logValue(r.RemoteAddr)))
	h.cfg.Logger.Log(ctx, level, msg, attrs...)
}

// writeError writes the JSON error body of section 2.8 (RFC 6749 section
// 5.2's parameters); desc is one of this package's fixed texts.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
}

// logValue cuts a value a log line quotes (see package clip).
func logValue(s string) string { return clip.String(s, clip.Log) }
