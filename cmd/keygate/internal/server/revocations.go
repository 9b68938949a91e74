package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/revoke"
)

// maxRevocationBody bounds the JSON body of POST /revocations, in bytes.
const maxRevocationBody = 4 << 10

// maxRevocationValue bounds a revoked sid, sub or jti, in bytes. Keycloak
// uses UUIDs; 1 KiB leaves room for any provider.
const maxRevocationValue = 1 << 10

// revocationJSON is a revocation as /revocations shows and takes it.
type revocationJSON struct {
	Kind         revoke.Kind `json:"kind"`
	Value        string      `json:"value"`
	IssuedBefore *time.Time  `json:"issued_before,omitempty"`
	At           time.Time   `json:"at"`
	Expires      time.Time   `json:"expires"`
	Source       string      `json:"source,omitempty"`
}

// revocationRequest is the body of POST /revocations: exactly one of sid,
// sub and jti. For sub, issued_before defaults to now: the subject's
// tokens issued until now are revoked, later logins are not.
type revocationRequest struct {
	SID          string     `json:"sid"`
	Sub          string     `json:"sub"`
	JTI          string     `json:"jti"`
	IssuedBefore *time.Time `json:"issued_before"`
}

// serveRevocations answers GET (the revocations in force) and POST (revoke
// a sid, sub or jti) on the admin listener, for callers that present
// revocation.admin_token as a bearer token.
func (s *Server) serveRevocations(w http.ResponseWriter, r *http.Request) {
	if !s.adminAuthorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keygate-admin"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized", "error_description": "send revocation.admin_token as a bearer token"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		list, err := s.revocations.List(r.Context())
		if err != nil {
			s.log.Error("revocations list failed", "error", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "unavailable", "error_description": "revocations cannot be listed now"})
			return
		}
		out := make([]revocationJSON, 0, len(list))
		for _, rv := range list {
			out = append(out, toJSON(rv))
		}
		writeJSON(w, http.StatusOK, map[string]any{"revocations": out})
	case http.MethodPost:
		s.postRevocation(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method_not_allowed"})
	}
}

func (s *Server) postRevocation(w http.ResponseWriter, r *http.Request) {
	bad := func(desc string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": desc})
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		bad("the body must be application/json")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRevocationBody+1))
	if err != nil {
		bad("the body could not be read")
		return
	}
	if len(body) > maxRevocationBody {
		bad("the body is larger than 4096 bytes")
		return
	}
	var req revocationRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		bad(`the body must be one JSON object such as {"sid": "..."}, {"sub": "..."} or {"jti": "..."}`)
		return
	}
	now := time.Now()
	rv := revoke.Revocation{At: now, Expires: now.Add(s.cfg.Revocation.TTL), Source: "admin"}
	set := 0
	for _, f := range []struct {
		kind  revoke.Kind
		value string
	}{{revoke.Session, req.SID}, {revoke.Subject, req.Sub}, {revoke.Token, req.JTI}} {
		if f.value != "" {
			rv.Kind, rv.Value = f.kind, f.value
			set++
		}
	}
	switch {
	case set != 1:
		bad("give exactly one of sid, sub and jti")
		return
	case len(rv.Value) > maxRevocationValue || !utf8.ValidString(rv.Value):
		bad("the value must be valid UTF-8 of at most 1024 bytes")
		return
	case req.IssuedBefore != nil && rv.Kind != revoke.Subject:
		bad("issued_before applies to sub only")
		return
	}
	if rv.Kind == revoke.Subject {
		rv.IssuedBefore = now
		if req.IssuedBefore != nil {
			rv.IssuedBefore = *req.IssuedBefore
		}
	}
	if err := s.revocations.Revoke(r.Context(), rv); err != nil {
		// A store that recorded the revocation locally but could not
		// share it says so; the caller learns the cluster may not have it.
		s.log.Error("revocation not shared with the cluster", "kind", string(rv.Kind), "value", clipValue(rv.Value), "error", err)
		if errors.Is(err, revoke.ErrNotShared) {
			writeJSON(w, http.StatusAccepted, map[string]any{"revocation": toJSON(rv), "warning": "recorded on this instance only: the cluster store is unreachable"})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "unavailable", "error_description": "the revocation could not be recorded"})
		return
	}
	s.log.Info("revoked", "kind", string(rv.Kind), "value", clipValue(rv.Value), "source", rv.Source)
	writeJSON(w, http.StatusCreated, map[string]any{"revocation": toJSON(rv)})
}

// adminAuthorized reports whether r carries revocation.admin_token as a
// bearer token (read as the middleware reads one: the scheme in any case,
// b64token syntax), compared in constant time.
func (s *Server) adminAuthorized(r *http.Request) bool {
	want := s.cfg.Revocation.AdminToken
	got, err := httpauth.ParseAuthorization(r.Header.Get("Authorization"))
	return err == nil && got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func toJSON(rv revoke.Revocation) revocationJSON {
	j := revocationJSON{Kind: rv.Kind, Value: rv.Value, At: rv.At.UTC(), Expires: rv.Expires.UTC(), Source: rv.Source}
	if rv.Kind == revoke.Subject {
		t := rv.IssuedBefore.UTC()
		j.IssuedBefore = &t
	}
	return j
}
