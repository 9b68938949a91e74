package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
)

// Validate checks a Config built in Go; see [File.Validate].
func Validate(c Config) error {
	return (&File{Name: "config", Config: c}).Validate()
}

// Validate checks every value of the configuration and reports all the
// problems it finds, each with its line and what to do, as [Errors]. It
// reads no file but checks that the TLS files exist. It compiles the
// rules.
func (f *File) Validate() error {
	v := validator{f: f}
	c := &f.Config

	if c.Listen != "" {
		v.addr("listen", c.Listen)
	}
	if c.Upstream == "" && c.ForwardAuth == nil && c.ExtAuthz == nil {
		v.add("", "neither upstream nor forward_auth nor ext_authz is set; set upstream: http://host:port to proxy requests, forward_auth: {path: /auth} to answer a front proxy's auth subrequests, or ext_authz: {listen: 127.0.0.1:9191} to answer Envoy's checks")
	}
	if c.Upstream != "" {
		v.upstream(c.Upstream)
	}
	if fa := c.ForwardAuth; fa != nil && fa.Path != "" {
		if !strings.HasPrefix(fa.Path, "/") || cleanPath(fa.Path) != fa.Path || strings.ContainsAny(fa.Path, "?#;\\") {
			v.add("forward_auth.path", "forward_auth.path %q must be a clean absolute path such as /auth", fa.Path)
		}
	}

	if len(c.Audiences) > 0 && c.InsecureSkipAudienceCheck {
		v.add("insecure_skip_audience_check", "insecure_skip_audience_check is true but audiences are listed; remove one of them")
	}
	v.libraryChecks(*c)
	v.nonEmpty("authorized_parties", c.AuthorizedParties)
	v.nonEmpty("verify.role_clients", c.Verify.RoleClients)

	for _, d := range []struct {
		key string
		val time.Duration
	}{
		{"keys.timeout", c.Keys.Timeout},
		{"timeouts.read_header", c.Timeouts.ReadHeader},
		{"timeouts.write", c.Timeouts.Write},
		{"timeouts.idle", c.Timeouts.Idle},
		{"timeouts.shutdown", c.Timeouts.Shutdown},
		{"timeouts.upstream_dial", c.Timeouts.UpstreamDial},
		{"timeouts.upstream_response_header", c.Timeouts.UpstreamResponseHeader},
	} {
		if d.val < 0 {
			v.add(d.key, "%s is negative (%v); use 0s for the default", d.key, d.val)
		}
	}
	if c.Verify.MaxTokenSize < 0 {
		v.add("verify.max_token_size", "verify.max_token_size is negative; use 0 for the default of 16384 bytes")
	}

	v.headers(c.IdentityHeaders.withDefaults())
	v.stripHeaders(c.StripHeaders)

	if t := c.TLS; t != nil {
		switch {
		case t.CertFile == "" || t.KeyFile == "":
			v.add("tls", "tls needs both cert_file and key_file (PEM files); remove tls: to serve plain HTTP")
		default:
			for _, p := range []struct{ key, file string }{{"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
				if _, err := os.Stat(p.file); err != nil {
					v.add(p.key, "%s: cannot read %s: %v", p.key, p.file, unwrapPath(err))
				}
			}
		}
	}
	if a := c.Admin; a != nil {
		switch {
		case a.Listen == "":
			v.add("admin", "admin.listen is missing; set it, such as 127.0.0.1:9090, or remove admin: to serve no admin endpoints")
		default:
			v.addr("admin.listen", a.Listen)
			if a.Listen == c.WithDefaults().Listen && !strings.HasSuffix(a.Listen, ":0") {
				v.add("admin.listen", "admin.listen is the same address as listen; give the admin endpoints a port of their own")
			}
		}
	}
	if ea := c.ExtAuthz; ea != nil && ea.Listen != "" {
		v.addr("ext_authz.listen", ea.Listen)
		d := c.WithDefaults()
		same := []string{d.Listen}
		if d.Admin != nil {
			same = append(same, d.Admin.Listen)
		}
		if slices.Contains(same, ea.Listen) && !strings.HasSuffix(ea.Listen, ":0") {
			v.add("ext_authz.listen", "ext_authz.listen is the address of another listener; give ext_authz a port of its own")
		}
	}
	if c.Cluster != nil {
		v.cluster(c.Cluster)
	}
	if c.Revocation != nil {
		v.revocation(c)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		v.add("log.level", "log.level %q is not a level; use debug, info, warn or error", c.Log.Level)
	}
	if c.Access != nil {
		if _, err := authz.Compile(*c.Access); err != nil {
			v.add("rules", "%s", strings.TrimPrefix(err.Error(), "authz: "))
		}
	}
	if len(v.errs) > 0 {
		return v.errs.sorted()
	}
	return nil
}

type validator struct {
	f    *File
	errs Errors
}

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.f.Name, Line: v.f.Line(key), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) addr(key, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		v.add(key, "%s %q is not host:port; write such as 127.0.0.1:8080 (or :8080 for every interface)", key, addr)
	}
}

func (v *validator) upstream(raw string) {
	u, err := url.Parse(raw)
	switch {
	case !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://"):
		v.add("upstream", "upstream %q must start with http:// or https://", raw)
	case err != nil:
		v.add("upstream", "upstream %q is not a URL: %v", raw, unwrapURL(err))
	case u.Scheme != "http" && u.Scheme != "https":
		v.add("upstream", "upstream %q must start with http:// or https://", raw)
	case u.Host == "":
		v.add("upstream", "upstream %q has no host; write such as http://127.0.0.1:3000", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		v.add("upstream", "upstream %q must not carry a query, fragment or user info; give scheme, host and an optional path prefix", raw)
	}
}

func (v *validator) nonEmpty(key string, list []string) {
	if slices.Contains(list, "") {
		v.add(key, "%s holds an empty string; remove it", key)
	}
}

// reservedHeader reports whether the canonical header name may not carry
// identities: the proxy or HTTP itself owns it.
func reservedHeader(canon string) bool {
	switch canon {
	case "Authorization", "Connection", "Content-Length", "Content-Type", "Cookie",
		"Host", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding",
		"Upgrade", "Www-Authenticate", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Method", "X-Original-Uri":
		return true
	}
	return false
}

func (v *validator) headers(h IdentityHeaders) {
	seen := make(map[string]string)
	for _, n := range h.named() {
		if n.Name == "" || n.Name == Off {
			continue
		}
		key := "identity_headers." + n.Key
		canon := http.CanonicalHeaderKey(n.Name)
		norm := NormalizeHeaderName(n.Name)
		switch {
		case !validHeaderName(n.Name):
			v.add(key, "%s %q is not a valid header name; use letters, digits and -, such as X-Auth-User", key, n.Name)
		case len(n.Name) > MaxHeaderNameLength:
			v.add(key, "%s is %d bytes long; use a name of at most %d bytes", key, len(n.Name), MaxHeaderNameLength)
		case reservedHeader(canon):
			v.add(key, "%s %q is a header HTTP or the proxy owns; choose another name, such as X-Auth-%s", key, n.Name, strings.ToUpper(n.Key[:1])+n.Key[1:])
		case seen[norm] != "":
			v.add(key, "%s %q is also the name of identity_headers.%s (names compare ignoring case, and _ equals -); give each a name of its own", key, n.Name, seen[norm])
		}
		seen[norm] = n.Key
	}
}

// unstrippable reports whether the normalized header name may not be in
// strip_headers: HTTP or the token need it, or keygate's proxy replaces
// it anyway (X-Forwarded-For and -Proto; X-Forwarded-Host, also
// replaced, is on the default list so that the front proxy examples
// clear or set it).
func unstrippable(norm string) bool {
	switch norm {
	case "authorization", "connection", "content-length", "content-type", "cookie",
		"host", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
		"transfer-encoding", "upgrade", "x-forwarded-for", "x-forwarded-proto":
		return true
	}
	return false
}

func (v *validator) stripHeaders(names []string) {
	for _, n := range names {
		switch {
		case !validHeaderName(n):
			v.add("strip_headers", "strip_headers: %q is not a valid header name; use letters, digits and -, such as X-Original-URL", n)
		case len(n) > MaxHeaderNameLength:
			v.add("strip_headers", "strip_headers: a name is %d bytes long; names are at most %d bytes", len(n), MaxHeaderNameLength)
		case unstrippable(NormalizeHeaderName(n)):
			v.add("strip_headers", "strip_headers: %q cannot be stripped: HTTP or keygate itself needs it (keygate already replaces X-Forwarded-For and -Proto); remove it", n)
		}
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// LoopbackHost reports whether host is "localhost" or a loopback IP: the
// hosts keygate trusts over plain HTTP and for local tools.
func LoopbackHost(host string) bool {
	if host == "localhost" { // not other names under .localhost: any resolver may answer them
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// noVerifier stands in for the verifier when config asks httpauth.New to
// check the settings it owns; it is never called.
type noVerifier struct{}

func (noVerifier) Verify(context.Context, string) (*keygate.Principal, error) {
	return nil, errors.New("config: no verifier")
}

// MinSecretLength is the shortest revocation.admin_token accepted, in
// bytes, as jwks.MinSharedSecret is for cluster.secret.
const MinSecretLength = jwks.MinSharedSecret

// cluster checks the cluster block.
func (v *validator) cluster(cl *Cluster) {
	r := cl.Redis
	switch {
	case r.URL == "" && len(r.Addresses) == 0:
		v.add("cluster.redis", "cluster.redis needs url (redis://host:6379/0, rediss:// for TLS) or addresses (a Redis Cluster, or Sentinels with master_name)")
	case r.URL != "" && len(r.Addresses) > 0:
		v.add("cluster.redis.url", "cluster.redis has both url and addresses; keep one")
	case r.URL != "":
		u, err := url.Parse(r.URL)
		switch {
		case strings.Contains(r.URL, "@") && (err != nil || u.User == nil):
			// The parser's message would quote a piece of the password.
			v.add("cluster.redis.url", "cluster.redis.url is not a URL with a password keygate can read; percent-encode / ? # %% and @ in the password (or write it in cluster.redis.password)")
		case !strings.Contains(r.URL, "://"):
			v.add("cluster.redis.url", "cluster.redis.url %q has no scheme; write redis://%s/0 (rediss:// for TLS)", r.URL, r.URL)
		case err != nil:
			v.add("cluster.redis.url", "cluster.redis.url is not a URL: %v", unwrapURL(err))
		case u.Scheme != "redis" && u.Scheme != "rediss":
			v.add("cluster.redis.url", "cluster.redis.url has scheme %q; use redis:// or rediss:// (TLS)", u.Scheme)
		case u.Host == "":
			v.add("cluster.redis.url", "cluster.redis.url has no host; write redis://host:6379/0")
		}
	default:
		for _, a := range r.Addresses {
			if _, _, err := net.SplitHostPort(a); err != nil {
				v.add("cluster.redis.addresses", "cluster.redis.addresses holds %q, which is not host:port", a)
			}
		}
	}
	if r.MasterName != "" && len(r.Addresses) == 0 {
		v.add("cluster.redis.master_name", "cluster.redis.master_name needs the Sentinels' addresses in cluster.redis.addresses")
	}
	if r.DB < 0 {
		v.add("cluster.redis.db", "cluster.redis.db is negative")
	}
	if r.Timeout < 0 {
		v.add("cluster.redis.timeout", "cluster.redis.timeout is negative (%v); use 0s for the default of %v", r.Timeout, DefaultRedisTimeout)
	}
	if t := r.TLS; t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.add("cluster.redis.tls", "cluster.redis.tls needs both cert_file and key_file for a client certificate, or neither")
		}
		for _, p := range []struct{ key, file string }{{"cluster.redis.tls.ca_file", t.CAFile},
			{"cluster.redis.tls.cert_file", t.CertFile}, {"cluster.redis.tls.key_file", t.KeyFile}} {
			if p.file == "" {
				continue
			}
			if _, err := os.Stat(p.file); err != nil {
				v.add(p.key, "%s: cannot read %s: %v", p.key, p.file, unwrapPath(err))
			}
		}
	}
	if strings.ContainsAny(cl.KeyPrefix, " \t\r\n") {
		v.add("cluster.key_prefix", "cluster.key_prefix %q holds white space", cl.KeyPrefix)
	}
	// The secret's length is checked by jwks (see libraryChecks).
}

// revocation checks the revocation block.
func (v *validator) revocation(c *Config) {
	r := c.Revocation
	if r.TTL < 0 {
		v.add("revocation.ttl", "revocation.ttl is negative (%v); use 0s for the default of %v", r.TTL, DefaultRevocationTTL)
	}
	if b := r.BackchannelLogout; b != nil {
		if b.ClientID == "" {
			v.add("revocation.backchannel_logout", "revocation.backchannel_logout.client_id is missing; set it to the Keycloak client whose Backchannel logout URL points at keygate (the aud of its logout tokens)")
		}
		if b.Path != "" {
			if !strings.HasPrefix(b.Path, "/") || cleanPath(b.Path) != b.Path || strings.ContainsAny(b.Path, "?#;\\") {
				v.add("revocation.backchannel_logout.path", "revocation.backchannel_logout.path %q must be a clean absolute path such as %s", b.Path, DefaultBackchannelLogoutPath)
			}
		}
		d := c.WithDefaults()
		if d.ForwardAuth != nil && d.Revocation.BackchannelLogout.Path == d.ForwardAuth.Path {
			v.add("revocation.backchannel_logout.path", "revocation.backchannel_logout.path is forward_auth.path; give each its own path")
		}
	}
	if r.AdminToken != "" {
		if tok, err := httpauth.ParseAuthorization("Bearer " + r.AdminToken); err != nil || tok != r.AdminToken {
			v.add("revocation.admin_token", "revocation.admin_token holds characters a bearer token cannot carry; use letters, digits and -._~+/ (such as the output of openssl rand -base64 48)")
		}
		if len(r.AdminToken) < MinSecretLength {
			v.add("revocation.admin_token", "revocation.admin_token is %d bytes; use at least %d (such as the output of openssl rand -base64 48)", len(r.AdminToken), MinSecretLength)
		}
		if c.Admin == nil {
			v.add("revocation.admin_token", "revocation.admin_token needs the admin listener (admin: {listen: 127.0.0.1:9090}), which serves /revocations")
		}
	}
}
