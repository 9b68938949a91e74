package keycloaktest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// handler returns the server's HTTP handler.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/realms/{realm}/.well-known/openid-configuration", s.endpoint(EndpointDiscovery, s.serveDiscovery))
	mux.Handle("/realms/{realm}/protocol/openid-connect/certs", s.endpoint(EndpointCerts, s.serveCerts))
	mux.Handle("/realms/{realm}/protocol/openid-connect/token", s.endpoint(EndpointToken, s.serveToken))
	return mux
}

// endpoint wraps the handler of endpoint e: it rejects other realms, counts
// the request, applies a configured fault and tracks the handler for Close.
func (s *Server) endpoint(e Endpoint, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("realm") != s.cfg.Realm {
			writeJSON(w, http.StatusNotFound, map[string]string{
				"error":             "Realm does not exist",
				"error_description": "For more on this error consult the server log.",
			})
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		s.inflight.Add(1)
		defer s.inflight.Done()
		s.requests[e]++
		f := s.takeFaultLocked(e)
		s.mu.Unlock()

		if f != nil && s.applyFault(w, r, f) {
			return
		}
		h(w, r)
	})
}

// serveDiscovery serves the OpenID Provider configuration, with Keycloak's
// members. Only the token and certs endpoints it lists are served.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	iss := s.Issuer()
	oidc := iss + "/protocol/openid-connect"
	algs := []string{"PS384", "RS384", "EdDSA", "ES384", "ES256", "RS256", "ES512", "PS256", "PS512", "RS512"}
	authMethods := []string{"client_secret_basic", "client_secret_post"}
	doc := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                oidc + "/auth",
		"token_endpoint":                        oidc + "/token",
		"introspection_endpoint":                oidc + "/token/introspect",
		"userinfo_endpoint":                     oidc + "/userinfo",
		"end_session_endpoint":                  oidc + "/logout",
		"revocation_endpoint":                   oidc + "/revoke",
		"jwks_uri":                              oidc + "/certs",
		"frontchannel_logout_session_supported": true,
		"frontchannel_logout_supported":         true,
		"grant_types_supported":                 []string{"client_credentials", "password"},
		"acr_values_supported":                  []string{"0", "1"},
		"response_types_supported": []string{"code", "none", "id_token", "token", "id_token token",
			"code id_token", "code token", "code id_token token"},
		"subject_types_supported":                                  []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported":                    algs,
		"userinfo_signing_alg_values_supported":                    append(algs[:len(algs):len(algs)], "none"),
		"request_object_signing_alg_values_supported":              append(algs[:len(algs):len(algs)], "none"),
		"response_modes_supported":                                 []string{"query", "fragment", "form_post", "query.jwt", "fragment.jwt", "form_post.jwt", "jwt"},
		"token_endpoint_auth_methods_supported":                    authMethods,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"revocation_endpoint_auth_methods_supported":               authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": algs,
		"claims_supported": []string{"aud", "sub", "iss", "auth_time", "name", "given_name",
			"family_name", "preferred_username", "email", "acr"},
		"claim_types_supported":      []string{"normal"},
		"claims_parameter_supported": true,
		"scopes_supported": []string{"openid", "profile", "email", "address", "phone", "offline_access",
			"roles", "web-origins", "acr", "basic", "microprofile-jwt", "organization"},
		"request_parameter_supported":                    true,
		"request_uri_parameter_supported":                true,
		"require_request_uri_registration":               true,
		"code_challenge_methods_supported":               []string{"plain", "S256"},
		"tls_client_certificate_bound_access_tokens":     true,
		"authorization_response_iss_parameter_supported": true,
	}
	w.Header().Set("Cache-Control", "no-cache, must-revalidate, no-transform, no-store")
	writeJSON(w, http.StatusOK, doc)
}

// serveCerts serves the JWK set: every published signing key and the
// encryption key. It sends an ETag and answers a matching If-None-Match
// with 304 Not Modified.
func (s *Server) serveCerts(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	s.mu.Lock()
	keys := make([]map[string]any, 0, len(s.keys)+1)
	for _, k := range s.keys {
		keys = append(keys, k.jwk())
	}
	keys = append(keys, jwk(s.encKID, "RSA-OAEP", "enc", s.encPub))
	s.mu.Unlock()

	body, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// etagMatch reports whether the If-None-Match header value inm matches
// etag, using the weak comparison of RFC 9110.
func etagMatch(inm, etag string) bool {
	for t := range strings.SplitSeq(inm, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// An oauthError is a token endpoint error response.
type oauthError struct {
	status int
	code   string
	desc   string
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

func (e *oauthError) write(w http.ResponseWriter) {
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

var (
	errInvalidClient = &oauthError{http.StatusUnauthorized, "invalid_client", "Invalid client or Invalid client credentials"}
	errInvalidUser   = &oauthError{http.StatusUnauthorized, "invalid_grant", "Invalid user credentials"}
)

// serveToken serves the token endpoint for the client_credentials and
// password grants.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if !allowMethod(w, r, http.MethodPost) {
		return
	}
	if err := r.ParseForm(); err != nil {
		(&oauthError{http.StatusBadRequest, "invalid_request", "Malformed form body"}).write(w)
		return
	}
	form := r.PostForm
	grantType := form.Get("grant_type")
	switch grantType {
	case "client_credentials", "password":
	case "":
		(&oauthError{http.StatusBadRequest, "invalid_request", "Missing form parameter: grant_type"}).write(w)
		return
	default:
		(&oauthError{http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type"}).write(w)
		return
	}

	c, oerr := s.authenticateClient(r)
	if oerr != nil {
		oerr.write(w)
		return
	}
	g := grant{client: c, now: s.cfg.Now()}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		g.clientAddr = host
	}

	switch grantType {
	case "client_credentials":
		if c.Secret == "" {
			oerr = &oauthError{http.StatusUnauthorized, "unauthorized_client", "Public client not allowed to retrieve service account"}
		} else if !c.ServiceAccount {
			oerr = &oauthError{http.StatusUnauthorized, "unauthorized_client", "Client not enabled to retrieve service account"}
		}
	case "password":
		if !c.DirectAccessGrants {
			oerr = &oauthError{http.StatusBadRequest, "unauthorized_client", "Client not allowed for direct access grants"}
			break
		}
		g.user = s.lookupUser(form.Get("username"))
		if g.user == nil || g.user.Password == "" || !equalSecret(g.user.Password, form.Get("password")) {
			oerr = errInvalidUser
			break
		}
		g.sid = newUUID()
	}
	if oerr != nil {
		oerr.write(w)
		return
	}

	var err error
	if g.scopes, err = parseScope(form.Get("scope")); err != nil {
		err.(*oauthError).write(w)
		return
	}
	resp, err := s.issue(g)
	if err != nil {
		(&oauthError{http.StatusInternalServerError, "unknown_error", ""}).write(w)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// authenticateClient identifies the client by HTTP Basic authentication or
// the client_id and client_secret form parameters, and checks the secret
// of confidential clients.
func (s *Server) authenticateClient(r *http.Request) (*Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749, section 2.3.1: both are form-encoded first.
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, ok := s.clients[id]
	if !ok {
		return nil, errInvalidClient
	}
	if c.Secret != "" && !equalSecret(c.Secret, secret) {
		return nil, errInvalidClient
	}
	return c, nil
}

func equalSecret(want, got string) bool {
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// allowMethod reports whether r uses one of methods, answering 405 if not.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "HTTP 405 Method Not Allowed"})
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
