// Package config is the configuration of the keygate binary: one struct
// tree filled from a YAML file (see [Load]) and checked by
// [Config.Validate]. docs/config.md documents every key.
//
// Zero values mean the documented default, as in the library's Config
// structs; [Config.WithDefaults] spells them out for the server.
package config

import (
	"time"

	"github.com/keygate/keygate/authz"
)

// Defaults for the zero values of [Config].
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultRealm             = "keygate"
	DefaultForwardAuthPath   = "/auth"
	DefaultExtAuthzListen    = "127.0.0.1:9191"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultDialTimeout       = 10 * time.Second

	// DefaultMaxConnections is the default of [Limits.MaxConnections].
	DefaultMaxConnections = 4096

	// DefaultKeyPrefix is the default of cluster.key_prefix.
	DefaultKeyPrefix = "keygate:"
	// DefaultRedisTimeout is the default of cluster.redis.timeout.
	DefaultRedisTimeout = 500 * time.Millisecond
	// DefaultRevocationTTL is the default of revocation.ttl.
	DefaultRevocationTTL = 24 * time.Hour
	// DefaultBackchannelLogoutPath is the default of
	// revocation.backchannel_logout.path.
	DefaultBackchannelLogoutPath = "/backchannel-logout"

	// MaxHeaderNameLength is the longest header name an identity header
	// or a strip_headers entry may have, in bytes.
	MaxHeaderNameLength = 128
)

// Default names of the identity headers, see [IdentityHeaders].
const (
	DefaultSubjectHeader  = "X-Auth-Subject"
	DefaultUsernameHeader = "X-Auth-Username"
	DefaultEmailHeader    = "X-Auth-Email"
	DefaultRolesHeader    = "X-Auth-Roles"
	DefaultClientHeader   = "X-Auth-Client"
	DefaultScopesHeader   = "X-Auth-Scopes"
)

// Off, as the name of an identity header, turns that header off.
const Off = "-"

// Config is the whole configuration of keygate serve.
type Config struct {
	// Listen is the address of the main listener. Zero means
	// [DefaultListen], loopback only.
	Listen string `yaml:"listen"`

	// TLS, when set, terminates TLS on the main listener.
	TLS *TLS `yaml:"tls"`

	// Upstream is the URL requests are proxied to once allowed. At least
	// one of Upstream, ForwardAuth and ExtAuthz is set.
	Upstream string `yaml:"upstream"`

	// ForwardAuth, when set, answers forward-auth subrequests of a front
	// proxy (NGINX auth_request, Caddy forward_auth, Traefik forwardAuth)
	// on its path of the main listener.
	ForwardAuth *ForwardAuth `yaml:"forward_auth"`

	// ExtAuthz, when set, answers Envoy's external authorization checks
	// (envoy.service.auth.v3.Authorization over gRPC) on a listener of
	// its own, with the decisions of forward-auth.
	ExtAuthz *ExtAuthz `yaml:"ext_authz"`

	// Issuer is the exact iss of accepted tokens, such as
	// https://keycloak.example.com/realms/myrealm. Required.
	Issuer string `yaml:"issuer"`

	// JWKSURL, when set, is fetched for keys instead of discovering them
	// from the issuer.
	JWKSURL string `yaml:"jwks_url"`

	// Audiences are the aud values accepted, any of them. Required unless
	// InsecureSkipAudienceCheck.
	Audiences []string `yaml:"audiences"`

	// InsecureSkipAudienceCheck accepts tokens whatever their aud.
	InsecureSkipAudienceCheck bool `yaml:"insecure_skip_audience_check"`

	// AuthorizedParties, when set, are the only clients (azp) whose
	// tokens are accepted.
	AuthorizedParties []string `yaml:"authorized_parties"`

	// Keys tunes the key set fetching.
	Keys Keys `yaml:"keys"`

	// Verify tunes token verification.
	Verify Verify `yaml:"verify"`

	// Access decides what each request needs: the document that
	// authz.ParseYAML reads (default, rules, case_insensitive_paths).
	// Nil means every request needs a valid token and nothing more.
	Access *authz.Config `yaml:"access"`

	// IdentityHeaders name the headers that carry the caller to the
	// upstream, or back to the front proxy in forward-auth answers.
	IdentityHeaders IdentityHeaders `yaml:"identity_headers"`

	// ForwardToken keeps the Authorization header on proxied requests.
	// False removes it: the upstream sees the identity headers, not the
	// bearer token.
	ForwardToken bool `yaml:"forward_token"`

	// Realm is the realm of WWW-Authenticate challenges. Zero means
	// [DefaultRealm].
	Realm string `yaml:"realm"`

	// StripHeaders are removed from every proxied request, whatever
	// their case and whether they are written with '-' or '_', like the
	// identity headers. Forward-auth refuses a request that carries one
	// spelled with '_' (a front proxy's exact-name rules miss those);
	// the plain spelling is the front proxy's to clear, and some set it
	// on their subrequest (NGINX's X-Real-IP, Traefik's
	// X-Forwarded-Prefix). They are headers that other stacks trust for
	// routing or identity.
	// Nil means [DefaultStripHeaders]; a list replaces the default, and an
	// empty list strips the identity headers only.
	StripHeaders []string `yaml:"strip_headers"`

	// ExtraMethods are request methods accepted besides GET, HEAD, POST,
	// PUT, PATCH, DELETE and OPTIONS (httpauth.Config.ExtraMethods), such
	// as WebDAV's PROPFIND. Every other method gets 400.
	ExtraMethods []string `yaml:"extra_methods"`

	// Timeouts of the listeners and of the upstream connection.
	Timeouts Timeouts `yaml:"timeouts"`

	// Limits bound what each listener takes on.
	Limits Limits `yaml:"limits"`

	// Admin, when set, serves /healthz, /readyz and /metrics on its own
	// listener.
	Admin *Admin `yaml:"admin"`

	// Log configures the JSON log on standard error.
	Log Log `yaml:"log"`

	// Cluster, when set, shares the key set and the revocations of every
	// keygate instance through Redis (or Valkey): one provider fetch per
	// refresh interval for the whole cluster, and logouts that reach every
	// instance. See docs/config.md, "Cluster mode".
	Cluster *Cluster `yaml:"cluster"`

	// Revocation, when set, turns on revocation: tokens of logged-out
	// sessions are refused before their exp. With Cluster the
	// revocations reach every instance; without it they stay on the
	// instance that received them.
	Revocation *Revocation `yaml:"revocation"`
}

// Cluster configures cluster mode.
type Cluster struct {
	// Redis is the Redis (or Valkey) deployment the instances share.
	Redis Redis `yaml:"redis"`
	// KeyPrefix starts every Redis key keygate uses. Instances that
	// verify for different issuers need different prefixes. Zero means
	// [DefaultKeyPrefix].
	KeyPrefix string `yaml:"key_prefix"`
	// Secret authenticates the key set stored in Redis (HMAC-SHA256): at
	// least 32 bytes, the same on every instance, kept out of Redis. Write
	// it as ${ENV_VAR}. Required.
	Secret string `yaml:"secret"`
}

// Redis says how to reach Redis.
type Redis struct {
	// URL is redis://[user:password@]host:port/db, or rediss:// for TLS.
	// Exactly one of URL and Addresses is required.
	URL string `yaml:"url"`
	// Addresses are host:port of the nodes of a Redis Cluster, or of the
	// Sentinels with MasterName.
	Addresses []string `yaml:"addresses"`
	// MasterName is the Sentinel master's name.
	MasterName string `yaml:"master_name"`
	// Username and Password authenticate; they override the URL's. Write
	// the password as ${ENV_VAR}.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB selects the database (single node and Sentinel).
	DB int `yaml:"db"`
	// TLS, when set, connects over TLS (rediss:// turns it on too).
	TLS *RedisTLS `yaml:"tls"`
	// Timeout bounds dialing and each command. Zero means
	// [DefaultRedisTimeout]. Redis slower than that counts as down: each
	// instance then fetches keys on its own, and revocations stay local
	// until it is back.
	Timeout time.Duration `yaml:"timeout"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// CAFile is a PEM bundle of the CAs to trust. Zero means the system's.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are a client certificate, for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Revocation configures revocation.
type Revocation struct {
	// TTL is how long a revocation is kept: set it to the longest
	// access-token lifetime the issuer grants (Keycloak: the realm's or
	// client's "Access Token Lifespan"), since a revocation forgotten
	// earlier lets the rest of its tokens' lives pass. Zero means
	// [DefaultRevocationTTL].
	TTL time.Duration `yaml:"ttl"`
	// BackchannelLogout, when set, receives OpenID Connect Back-Channel
	// Logout 1.0 requests on the main listener.
	BackchannelLogout *BackchannelLogout `yaml:"backchannel_logout"`
	// AdminToken, when set, turns on GET and POST /revocations on the
	// admin listener, for callers that send it as a bearer token. Write it
	// as ${ENV_VAR}; at least 32 bytes.
	AdminToken string `yaml:"admin_token"`
}

// BackchannelLogout configures the back-channel logout receiver.
type BackchannelLogout struct {
	// Path is where logout tokens are POSTed: the client's "Backchannel
	// logout URL" in Keycloak. Zero means [DefaultBackchannelLogoutPath].
	Path string `yaml:"path"`
	// ClientID is the client whose logouts keygate receives: the aud of
	// its logout tokens. Required.
	ClientID string `yaml:"client_id"`
}

// TLS names the certificate and key of the main listener, PEM files.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// ForwardAuth configures the forward-auth endpoint.
type ForwardAuth struct {
	// Path is the endpoint's path. Zero means [DefaultForwardAuthPath].
	Path string `yaml:"path"`
}

// ExtAuthz configures the Envoy ext_authz gRPC listener.
type ExtAuthz struct {
	// Listen is its address. Zero means [DefaultExtAuthzListen],
	// loopback only. It serves plaintext gRPC (h2c): bind it to an
	// address only Envoy reaches, such as loopback in a sidecar.
	Listen string `yaml:"listen"`
}

// Keys tunes the [github.com/keygate/keygate/jwks.Source]. Zero values
// mean the jwks package defaults.
type Keys struct {
	RefreshInterval    time.Duration `yaml:"refresh_interval"`
	MinRefetchInterval time.Duration `yaml:"min_refetch_interval"`
	MaxStale           time.Duration `yaml:"max_stale"`
	Timeout            time.Duration `yaml:"timeout"`
	InsecureAllowHTTP  bool          `yaml:"insecure_allow_http"`
}

// Verify tunes the [github.com/keygate/keygate.Verifier]. Zero values
// mean the library defaults.
type Verify struct {
	Leeway             time.Duration `yaml:"leeway"`
	Algorithms         []string      `yaml:"algorithms"`
	CacheSize          int           `yaml:"cache_size"`
	CacheBytes         int           `yaml:"cache_bytes"`
	MaxTokenSize       int           `yaml:"max_token_size"`
	AllowUntypedTokens bool          `yaml:"allow_untyped_tokens"`
	RoleClients        []string      `yaml:"role_clients"`
	NoRealmRoles       bool          `yaml:"no_realm_roles"`
	RFC9068Roles       bool          `yaml:"rfc9068_roles"`
}

// IdentityHeaders name the headers that describe a verified caller. Zero
// means the default name (X-Auth-Subject and so on); [Off] ("-") turns a
// header off. Whatever the names, keygate removes every incoming header
// with one of the configured or default names, compared as
// [NormalizeHeaderName] does, before it forwards a request.
type IdentityHeaders struct {
	// Subject carries sub.
	Subject string `yaml:"subject"`
	// Username carries preferred_username.
	Username string `yaml:"username"`
	// Email carries email.
	Email string `yaml:"email"`
	// Roles carries the roles the rules check with role:, comma-separated:
	// the realm roles, plus the client roles of verify.role_clients.
	Roles string `yaml:"roles"`
	// Client carries the client the token was issued to (azp).
	Client string `yaml:"client"`
	// Scopes carries the scopes, space-separated as in the scope claim.
	Scopes string `yaml:"scopes"`
}

// Timeouts of the listeners and the upstream. Zero means the default
// named on each. The write timeout stays off by default so that streams
// of any length pass; the read timeout bounds request bodies.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers. Zero means
	// [DefaultReadHeaderTimeout].
	ReadHeader time.Duration `yaml:"read_header"`
	// Read bounds reading a whole request, headers and body, so that a
	// client sending its body slowly cannot hold a connection (and an
	// upstream connection) forever. Zero means [DefaultReadTimeout]; a
	// negative value means none, for uploads of any length. It does not
	// apply to upgraded (WebSocket) connections.
	Read time.Duration `yaml:"read"`
	// Write bounds writing a response. Zero means none (streaming).
	Write time.Duration `yaml:"write"`
	// Idle bounds keep-alive idleness. Zero means [DefaultIdleTimeout].
	Idle time.Duration `yaml:"idle"`
	// Shutdown bounds the graceful shutdown. Zero means
	// [DefaultShutdownTimeout].
	Shutdown time.Duration `yaml:"shutdown"`
	// UpstreamDial bounds connecting to the upstream. Zero means
	// [DefaultDialTimeout].
	UpstreamDial time.Duration `yaml:"upstream_dial"`
	// UpstreamResponseHeader bounds the wait for the upstream's response
	// headers. Zero means none.
	UpstreamResponseHeader time.Duration `yaml:"upstream_response_header"`
}

// Limits bound the resources a listener takes on.
type Limits struct {
	// MaxConnections bounds the connections each listener (main, admin
	// and ext_authz) holds open at once, idle keep-alive connections
	// included. When all are taken, keygate closes idle keep-alive
	// connections, or else the oldest connection still on its first
	// request after a second, to make room; new connections wait in the
	// kernel's accept queue meanwhile. Zero means
	// [DefaultMaxConnections]; a negative value means no limit.
	MaxConnections int `yaml:"max_connections"`
}

// Admin configures the admin listener.
type Admin struct {
	// Listen is its address, such as 127.0.0.1:9090. Required.
	Listen string `yaml:"listen"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Zero means info.
	Level string `yaml:"level"`
}

// WithDefaults returns a copy of c with the documented defaults filled in
// for zero values that keygate itself (not the library) resolves.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.ForwardAuth != nil {
		fa := *c.ForwardAuth
		if fa.Path == "" {
			fa.Path = DefaultForwardAuthPath
		}
		c.ForwardAuth = &fa
	}
	if c.ExtAuthz != nil {
		ea := *c.ExtAuthz
		if ea.Listen == "" {
			ea.Listen = DefaultExtAuthzListen
		}
		c.ExtAuthz = &ea
	}
	c.IdentityHeaders = c.IdentityHeaders.withDefaults()
	t := &c.Timeouts
	if t.ReadHeader == 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.Read == 0 {
		t.Read = DefaultReadTimeout
	}
	if t.Idle == 0 {
		t.Idle = DefaultIdleTimeout
	}
	if t.Shutdown == 0 {
		t.Shutdown = DefaultShutdownTimeout
	}
	if t.UpstreamDial == 0 {
		t.UpstreamDial = DefaultDialTimeout
	}
	if c.Limits.MaxConnections == 0 {
		c.Limits.MaxConnections = DefaultMaxConnections
	}
	if c.StripHeaders == nil {
		c.StripHeaders = DefaultStripHeaders()
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Cluster != nil {
		cl := *c.Cluster
		if cl.KeyPrefix == "" {
			cl.KeyPrefix = DefaultKeyPrefix
		}
		if cl.Redis.Timeout == 0 {
			cl.Redis.Timeout = DefaultRedisTimeout
		}
		c.Cluster = &cl
	}
	if c.Revocation != nil {
		r := *c.Revocation
		if r.TTL == 0 {
			r.TTL = DefaultRevocationTTL
		}
		if b := r.BackchannelLogout; b != nil {
			bb := *b
			if bb.Path == "" {
				bb.Path = DefaultBackchannelLogoutPath
			}
			r.BackchannelLogout = &bb
		}
		c.Revocation = &r
	}
	return c
}

func (h IdentityHeaders) withDefaults() IdentityHeaders {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&h.Subject, DefaultSubjectHeader)
	def(&h.Username, DefaultUsernameHeader)
	def(&h.Email, DefaultEmailHeader)
	def(&h.Roles, DefaultRolesHeader)
	def(&h.Client, DefaultClientHeader)
	def(&h.Scopes, DefaultScopesHeader)
	return h
}

// named returns the headers by their key in the YAML, in a fixed order.
func (h IdentityHeaders) named() []struct{ Key, Name string } {
	return []struct{ Key, Name string }{
		{"subject", h.Subject}, {"username", h.Username}, {"email", h.Email},
		{"roles", h.Roles}, {"client", h.Client}, {"scopes", h.Scopes},
	}
}

// DefaultIdentityHeaderNames returns the default identity header names.
func DefaultIdentityHeaderNames() []string {
	return []string{DefaultSubjectHeader, DefaultUsernameHeader, DefaultEmailHeader,
		DefaultRolesHeader, DefaultClientHeader, DefaultScopesHeader}
}

// DefaultStripHeaders returns the default of [Config.StripHeaders]:
// headers that other proxies, frameworks and servers read as the original
// URL or method, as the authenticated user, or as the client's address,
// host, port or scheme (which frameworks use to build URLs and to decide
// whether a request is local or secure).
func DefaultStripHeaders() []string {
	return []string{
		"X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Original-Method",
		"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
		"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username",
		"X-Forwarded-Groups", "X-Forwarded-Access-Token",
		"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username",
		"X-Auth-Request-Groups", "X-Auth-Request-Access-Token",
		"Remote-User", "X-Remote-User", "X-Forwarded-Prefix",
		"Forwarded", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Ssl",
		"X-Forwarded-Scheme", "X-Forwarded-Server", "X-Real-IP", "X-Client-IP",
		"True-Client-IP", "X-Original-Host", "X-Envoy-Original-Path",
	}
}

// NormalizeHeaderName returns the name under which keygate compares
// header names: ASCII lower case with every '_' replaced by '-', so that
// X_Auth_User, x-auth-user and X-Auth-User are one name, as they are to
// CGI and WSGI servers.
func NormalizeHeaderName(name string) string {
	b := []byte(name)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '_':
			b[i] = '-'
		}
	}
	return string(b)
}
