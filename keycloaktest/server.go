package keycloaktest

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config describes the realm a [Server] serves. The zero value is a usable
// configuration: realm "test" on a random loopback port, RS256 keys, five
// minute access tokens, and no clients or users.
//
// NewUnstartedServer copies the Config; changing it, or the slices and maps it
// refers to, afterwards has no effect on the Server.
type Config struct {
	// Realm is the realm name, the last element of the issuer.
	// Zero means "test".
	Realm string

	// Addr is the TCP address to listen on, as for [net.Listen].
	// Zero means "127.0.0.1:0", a random loopback port.
	Addr string

	// BaseURL, if set, is the externally visible base URL (scheme, host and
	// optional path prefix) used to build the issuer and endpoint URLs, like
	// Keycloak's hostname setting, for a server behind a proxy. The server
	// itself always serves at /realms/. Zero means the URL of the listener,
	// with an unspecified listen host (0.0.0.0 or ::) replaced by loopback.
	BaseURL string

	// Algorithm is the realm's default signature algorithm: the algorithm of
	// the initial active key and of tokens for clients without an Algorithm
	// of their own. Supported: RS256, RS384, RS512, PS256, PS384, PS512,
	// ES256, ES384, ES512 and EdDSA (Ed25519). Zero means RS256.
	Algorithm string

	// SigningKeys are initial signing keys by algorithm; each is published
	// and active for its algorithm, which it must suit: an *rsa.PrivateKey
	// for RS* and PS*, an *ecdsa.PrivateKey on the matching curve for ES*,
	// an ed25519.PrivateKey for EdDSA. The realm's and clients' algorithms
	// without an entry get a freshly generated key. Tests that start many
	// servers can share keys to save RSA key generation (about 0.1s per
	// key); key IDs are still random per server.
	SigningKeys map[string]crypto.Signer

	// AccessTokenLifespan is the lifetime of access and ID tokens.
	// Zero means 5 minutes, Keycloak's default.
	AccessTokenLifespan time.Duration

	// RefreshTokenLifespan is the lifetime of refresh tokens issued by the
	// password grant. Zero means 30 minutes, Keycloak's default SSO session
	// idle timeout.
	RefreshTokenLifespan time.Duration

	// OmitDefaultRoles, if true, suppresses the roles Keycloak grants every
	// user and service account of a new realm: the realm roles
	// "default-roles-{realm}", "offline_access" and "uma_authorization" and
	// the "account" client roles "manage-account", "manage-account-links"
	// and "view-profile" (which in turn put "account" in the aud claim).
	OmitDefaultRoles bool

	// Clients are the realm's OAuth clients. IDs must be unique and
	// non-empty.
	Clients []Client

	// Users are the realm's users. Usernames must be unique and non-empty.
	Users []User

	// Now is the clock used for iat, exp and related claims.
	// Nil means time.Now.
	Now func() time.Time
}

// Client is an OAuth client of the realm. The zero value (apart from ID) is
// a public client that may use no grant.
type Client struct {
	// ID is the client_id, also the azp claim of its tokens.
	ID string

	// Secret is the client secret. Empty means a public client, which
	// cannot authenticate and so cannot use client_credentials.
	Secret string

	// DirectAccessGrants enables the password grant.
	DirectAccessGrants bool

	// ServiceAccount enables the client_credentials grant. The service
	// account user is named "service-account-{ID}".
	ServiceAccount bool

	// ServiceAccountRealmRoles and ServiceAccountClientRoles are the roles
	// of the service account user, keyed by client ID for client roles.
	ServiceAccountRealmRoles  []string
	ServiceAccountClientRoles map[string][]string

	// Audiences are added to the aud claim of this client's access tokens,
	// like Keycloak's audience mapper.
	Audiences []string

	// WebOrigins become the allowed-origins claim of access tokens.
	WebOrigins []string

	// Algorithm is the client's access.token.signed.response.alg, which
	// also signs its ID tokens. Zero means the realm's Algorithm.
	Algorithm string
}

// User is a user of the realm. Every field except Username may be zero.
// Usernames are case-insensitive and, like emails, appear lowercased in
// tokens, as in Keycloak.
type User struct {
	Username string

	// Password is the password for the password grant. Empty means the
	// user cannot log in with a password.
	Password string

	// Email, EmailVerified, FirstName and LastName become the email,
	// email_verified, given_name, family_name and name claims.
	Email         string
	EmailVerified bool
	FirstName     string
	LastName      string

	// RealmRoles and ClientRoles (keyed by client ID) are the user's
	// effective roles, as in realm_access and resource_access.
	RealmRoles  []string
	ClientRoles map[string][]string

	// Groups, if non-empty, are emitted as the groups claim, as a group
	// membership mapper would (for example "/admins").
	Groups []string
}

// A Server is a Keycloak-compatible issuer listening on a local address.
// All methods are safe for concurrent use, including while it serves
// requests. The creator calls [Server.Close] when done ([New] arranges
// that through tb.Cleanup).
type Server struct {
	cfg     Config
	clients map[string]*Client
	users   map[string]*User
	defcli  *Client // for MintToken without Client

	listener  net.Listener
	httpSrv   *http.Server
	client    *http.Client
	transport *http.Transport
	url       string
	closing   chan struct{} // closed by Close; ends delays and hangs
	serveDone chan struct{}

	mu       sync.Mutex
	started  bool
	closed   bool
	inflight sync.WaitGroup
	keys     []*signingKey          // published signing keys, oldest first
	active   map[string]*signingKey // algorithm -> active key
	encKID   string
	encPub   *rsa.PublicKey // published RSA-OAEP key, never used
	hmacKID  string
	hmacKey  []byte // HS512 secret for refresh tokens, never published
	faults   map[Endpoint]*faultState
	requests map[Endpoint]int
}

// NewUnstartedServer returns a Server for cfg that has generated its keys
// and bound its listener but does not yet answer requests; call
// [Server.Start] to serve. Until then connections to [Server.URL] are
// accepted by the operating system but hang, and [Server.Issuer] and
// [Server.MintToken] already work. The caller must call [Server.Close].
func NewUnstartedServer(cfg Config) (*Server, error) {
	s := &Server{
		clients:   make(map[string]*Client),
		users:     make(map[string]*User),
		active:    make(map[string]*signingKey),
		faults:    make(map[Endpoint]*faultState),
		requests:  make(map[Endpoint]int),
		closing:   make(chan struct{}),
		serveDone: make(chan struct{}),
	}
	if err := s.setConfig(cfg); err != nil {
		return nil, err
	}
	if err := s.initKeys(); err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: listen: %w", err)
	}
	s.listener = ln
	if s.cfg.BaseURL != "" {
		s.url = strings.TrimSuffix(s.cfg.BaseURL, "/")
	} else {
		s.url = "http://" + connectableAddr(ln.Addr(), s.cfg.Addr)
	}
	s.httpSrv = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.transport = &http.Transport{ // no Proxy: always connect directly
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}
	s.client = &http.Client{Transport: s.transport}
	return s, nil
}

// NewServer returns a started Server for cfg. The caller must call
// [Server.Close].
func NewServer(cfg Config) (*Server, error) {
	s, err := NewUnstartedServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Start starts serving. It returns an error if the server was already
// started or has been closed.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("keycloaktest: Start after Close")
	case s.started:
		return errors.New("keycloaktest: server already started")
	}
	s.started = true
	go func() {
		defer close(s.serveDone)
		s.httpSrv.Serve(s.listener) // always returns http.ErrServerClosed or a listener error
	}()
	return nil
}

// Close shuts the server down: it stops listening, ends delayed and hanging
// requests, closes open connections and blocks until every request handler
// has returned. Close may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()

	close(s.closing)
	if started {
		s.httpSrv.Close()
		<-s.serveDone
	} else {
		s.listener.Close()
	}
	s.inflight.Wait()
	s.transport.CloseIdleConnections()
}

// URL returns the base URL of the server, such as "http://127.0.0.1:41234",
// or Config.BaseURL if that was set.
func (s *Server) URL() string { return s.url }

// Addr returns the address the server listens on, which differs from the
// host of URL if Config.BaseURL is set.
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// Realm returns the realm name.
func (s *Server) Realm() string { return s.cfg.Realm }

// Issuer returns the issuer, URL()+"/realms/"+realm, the iss claim of all
// tokens the server issues.
func (s *Server) Issuer() string { return s.url + "/realms/" + url.PathEscape(s.cfg.Realm) }

// DiscoveryURL returns the URL of the OpenID Provider configuration document,
// Issuer()+"/.well-known/openid-configuration".
func (s *Server) DiscoveryURL() string { return s.Issuer() + "/.well-known/openid-configuration" }

// JWKSURL returns the URL of the JWK set, Issuer()+"/protocol/openid-connect/certs".
func (s *Server) JWKSURL() string { return s.Issuer() + "/protocol/openid-connect/certs" }

// TokenURL returns the URL of the token endpoint,
// Issuer()+"/protocol/openid-connect/token".
func (s *Server) TokenURL() string { return s.Issuer() + "/protocol/openid-connect/token" }

// Client returns an HTTP client configured for the server, with its own
// transport whose idle connections Close closes. It does not use proxies.
func (s *Server) Client() *http.Client { return s.client }

// setConfig validates cfg, fills in defaults and stores a deep copy.
func (s *Server) setConfig(cfg Config) error {
	if cfg.Realm == "" {
		cfg.Realm = "test"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Algorithm == "" {
		cfg.Algorithm = "RS256"
	}
	if !supportedAlg(cfg.Algorithm) {
		return fmt.Errorf("keycloaktest: unsupported algorithm %q", cfg.Algorithm)
	}
	if cfg.AccessTokenLifespan < 0 || cfg.RefreshTokenLifespan < 0 {
		return errors.New("keycloaktest: negative token lifespan")
	}
	if cfg.AccessTokenLifespan == 0 {
		cfg.AccessTokenLifespan = 5 * time.Minute
	}
	if cfg.RefreshTokenLifespan == 0 {
		cfg.RefreshTokenLifespan = 30 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("keycloaktest: invalid BaseURL %q", cfg.BaseURL)
		}
	}

	cfg.SigningKeys = maps.Clone(cfg.SigningKeys)
	cfg.Clients = slices.Clone(cfg.Clients)
	for i := range cfg.Clients {
		c := &cfg.Clients[i]
		if c.ID == "" {
			return errors.New("keycloaktest: client with empty ID")
		}
		if _, dup := s.clients[c.ID]; dup {
			return fmt.Errorf("keycloaktest: duplicate client %q", c.ID)
		}
		if c.Algorithm != "" && !supportedAlg(c.Algorithm) {
			return fmt.Errorf("keycloaktest: client %q: unsupported algorithm %q", c.ID, c.Algorithm)
		}
		c.ServiceAccountRealmRoles = slices.Clone(c.ServiceAccountRealmRoles)
		c.ServiceAccountClientRoles = cloneRoles(c.ServiceAccountClientRoles)
		c.Audiences = slices.Clone(c.Audiences)
		c.WebOrigins = slices.Clone(c.WebOrigins)
		s.clients[c.ID] = c
	}
	cfg.Users = slices.Clone(cfg.Users)
	for i := range cfg.Users {
		u := &cfg.Users[i]
		if u.Username == "" {
			return errors.New("keycloaktest: user with empty Username")
		}
		key := strings.ToLower(u.Username)
		if _, dup := s.users[key]; dup {
			return fmt.Errorf("keycloaktest: duplicate user %q", u.Username)
		}
		u.RealmRoles = slices.Clone(u.RealmRoles)
		u.ClientRoles = cloneRoles(u.ClientRoles)
		u.Groups = slices.Clone(u.Groups)
		s.users[key] = u
	}
	if len(cfg.Clients) > 0 {
		s.defcli = &cfg.Clients[0]
	} else {
		s.defcli = &Client{ID: "test-client"}
	}
	s.cfg = cfg
	return nil
}

func cloneRoles(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	c := maps.Clone(m)
	for k, v := range c {
		c[k] = slices.Clone(v)
	}
	return c
}

// connectableAddr returns the listener address addr as host:port, replacing
// an unspecified IP by loopback: ::1 if the configured address was an IPv6
// one such as "[::]:8080", else 127.0.0.1 (which a dual-stack listener on
// "::" also accepts).
func connectableAddr(addr net.Addr, configured string) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	host := "127.0.0.1"
	if h, _, err := net.SplitHostPort(configured); err == nil && strings.Contains(h, ":") {
		host = "::1"
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// algFor returns the signature algorithm of client c's tokens.
func (s *Server) algFor(c *Client) string {
	if c.Algorithm != "" {
		return c.Algorithm
	}
	return s.cfg.Algorithm
}

// TB is the part of [testing.TB] that [New] and [Server.MustMint] use.
// Every *testing.T, *testing.B and *testing.F is one. The package declares
// it rather than importing testing, so that the keygate dev command can
// embed the issuer without linking the testing package.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// New returns a started Server for cfg and registers its Close with
// tb.Cleanup. It stops the test with tb.Fatal if the server cannot be
// created.
func New(tb TB, cfg Config) *Server {
	tb.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}
