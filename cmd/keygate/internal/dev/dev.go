// Package dev runs keygate's newcomer environment: an embedded
// Keycloak-compatible issuer with a demo realm, a demo upstream that
// echoes the requests it sees, and the keygate proxy in front of it.
package dev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/server"
	"github.com/keygate/keygate/keycloaktest"
)

// Defaults of [Options].
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultIssuerListen   = "127.0.0.1:8180"
	DefaultUpstreamListen = "127.0.0.1:8181"
	DefaultAudience       = "demo-api"
	Realm                 = "dev"
)

// The demo realm's clients and users.
const (
	PublicClient  = "demo-app"
	ServiceClient = "demo-service"
	ServiceSecret = "demo-secret"
)

// Options configure [Start]. Zero values mean the defaults.
type Options struct {
	// Listen is the proxy's address. Zero means [DefaultListen].
	Listen string
	// IssuerListen is the embedded issuer's address. Zero means
	// [DefaultIssuerListen].
	IssuerListen string
	// UpstreamListen is the demo upstream's address. Zero means
	// [DefaultUpstreamListen].
	UpstreamListen string
	// AdminListen, when set, is the proxy's admin address.
	AdminListen string
	// Issuer, when set, is a real Keycloak realm to use instead of the
	// embedded issuer, such as http://127.0.0.1:8080/realms/dev.
	Issuer string
	// Audience is the aud the proxy requires. Zero means [DefaultAudience].
	Audience string
	// Logger receives the proxy's log. Nil means none.
	Logger *slog.Logger
}

// Env is a running dev environment. Close stops it.
type Env struct {
	issuer    *keycloaktest.Server // nil with Options.Issuer
	issuerURL string
	upstream  *http.Server
	upURL     string
	proxy     *server.Server
	opts      Options
}

// RealmConfig returns the configuration of the demo realm for the embedded
// issuer, listening on addr.
func RealmConfig(addr, audience string) keycloaktest.Config {
	return keycloaktest.Config{
		Realm: Realm,
		Addr:  addr,
		// Keycloak's default roles would put "account" into aud and three
		// more roles into every token; the demo is clearer without them.
		OmitDefaultRoles: true,
		Clients: []keycloaktest.Client{
			{ID: PublicClient, DirectAccessGrants: true, Audiences: []string{audience}},
			{ID: ServiceClient, Secret: ServiceSecret, ServiceAccount: true,
				ServiceAccountRealmRoles: []string{"user"}, Audiences: []string{audience}},
		},
		Users: []keycloaktest.User{
			{Username: "alice", Password: "alice", Email: "alice@example.com", EmailVerified: true,
				FirstName: "Alice", LastName: "Liddell", RealmRoles: []string{"user"}},
			{Username: "admin", Password: "admin", Email: "admin@example.com", EmailVerified: true,
				FirstName: "Ada", LastName: "Admin", RealmRoles: []string{"user", "admin"}},
		},
	}
}

// Rules are the demo rules: /public/** open, /api/** for role user,
// /admin/** for role admin, everything else for any valid token.
func Rules() authz.Config {
	return authz.Config{
		Rules: []authz.Rule{
			{Path: "/public/**", Require: authz.PermitAll()},
			{Path: "/api/**", Require: authz.Role("user")},
			{Path: "/admin/**", Require: authz.Role("admin")},
		},
		Default: authz.Authenticated(),
	}
}

// ProxyConfig returns the proxy's configuration for the given issuer and
// upstream.
func ProxyConfig(listen, issuer, upstream, audience, admin string) config.Config {
	rules := Rules()
	c := config.Config{
		Listen:      listen,
		Upstream:    upstream,
		ForwardAuth: &config.ForwardAuth{Path: config.DefaultForwardAuthPath},
		Issuer:      issuer,
		Audiences:   []string{audience},
		Access:      &rules,
		Keys:        config.Keys{MinRefetchInterval: time.Second},
		Timeouts:    config.Timeouts{Shutdown: 5 * time.Second},
	}
	if admin != "" {
		c.Admin = &config.Admin{Listen: admin}
	}
	return c
}

// Start starts the issuer (unless Options.Issuer is set), the demo
// upstream and the proxy, and waits up to ctx for the proxy to hold keys.
// On error, what was started is stopped.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&opts.Listen, DefaultListen)
	def(&opts.IssuerListen, DefaultIssuerListen)
	def(&opts.UpstreamListen, DefaultUpstreamListen)
	def(&opts.Audience, DefaultAudience)
	e := &Env{opts: opts}
	defer func() {
		if err != nil {
			e.Close(context.Background())
		}
	}()

	e.issuerURL = opts.Issuer
	if opts.Issuer == "" {
		if e.issuer, err = keycloaktest.NewServer(RealmConfig(opts.IssuerListen, opts.Audience)); err != nil {
			return nil, fmt.Errorf("issuer: %w", err)
		}
		e.issuerURL = e.issuer.Issuer()
	}

	ln, err := net.Listen("tcp", opts.UpstreamListen)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	e.upURL = "http://" + ln.Addr().String()
	e.upstream = &http.Server{Handler: Echo(), ReadHeaderTimeout: 10 * time.Second}
	go e.upstream.Serve(ln)

	e.proxy, err = server.New(ProxyConfig(opts.Listen, e.issuerURL, e.upURL, opts.Audience, opts.AdminListen),
		server.Options{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if err := e.proxy.Start(); err != nil {
		e.proxy = nil
		return nil, fmt.Errorf("proxy: %w", err)
	}
	select {
	case <-e.proxy.KeysReady():
	case <-ctx.Done():
		return nil, fmt.Errorf("proxy: no keys from %s yet: %w", e.issuerURL, ctx.Err())
	}
	return e, nil
}

// ProxyURL is the proxy's base URL.
func (e *Env) ProxyURL() string { return e.proxy.URL() }

// IssuerURL is the issuer, such as http://127.0.0.1:8180/realms/dev.
func (e *Env) IssuerURL() string { return e.issuerURL }

// TokenURL is the issuer's token endpoint.
func (e *Env) TokenURL() string { return e.issuerURL + "/protocol/openid-connect/token" }

// UpstreamURL is the demo upstream's base URL.
func (e *Env) UpstreamURL() string { return e.upURL }

// Issuer returns the embedded issuer, or nil with Options.Issuer.
func (e *Env) Issuer() *keycloaktest.Server { return e.issuer }

// Proxy returns the proxy server.
func (e *Env) Proxy() *server.Server { return e.proxy }

// Close stops the proxy gracefully within ctx, then the upstream and the
// issuer.
func (e *Env) Close(ctx context.Context) error {
	var errs []error
	if e.proxy != nil {
		errs = append(errs, e.proxy.Shutdown(ctx))
	}
	if e.upstream != nil {
		errs = append(errs, e.upstream.Shutdown(ctx))
	}
	if e.issuer != nil {
		e.issuer.Close()
	}
	return errors.Join(errs...)
}

// PrintGuide writes what to try, as copy-pasteable shell lines.
func (e *Env) PrintGuide(w io.Writer) {
	p, tok := e.ProxyURL(), e.TokenURL()
	fmt.Fprintf(w, `keygate dev is running.

  proxy     %s   (rules: /public/** open, /api/** role user, /admin/** role admin)
  issuer    %s
  upstream  %s   (echoes every request it receives as JSON)
`, p, e.issuerURL, e.upURL)
	if a := e.proxy.AdminAddr(); a != nil {
		fmt.Fprintf(w, "  admin     http://%s   (/healthz, /readyz, /metrics)\n", a)
	}
	if e.issuer != nil {
		fmt.Fprintf(w, `
Realm %q: users alice/alice (role user) and admin/admin (roles user, admin);
public client %s (password grant); client %s / %s (service account, role user).
Tokens carry the audience %s, which the proxy requires.
`, Realm, PublicClient, ServiceClient, ServiceSecret, e.opts.Audience)
	} else {
		fmt.Fprintf(w, `
Using the Keycloak realm %s. The proxy requires the audience %q:
give the client an audience mapper for it, and a password-grant client named %s
(or change the curl lines below).
`, e.issuerURL, e.opts.Audience, PublicClient)
	}
	fmt.Fprintf(w, `
Try it:

  curl -i %[1]s/public/hello                                   # 200, no token needed
  curl -i %[1]s/api/orders                                     # 401, a token is required

  TOKEN=$(curl -s -d grant_type=password -d client_id=%[3]s -d username=alice -d password=alice \
    %[2]s | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -i -H "Authorization: Bearer $TOKEN" %[1]s/api/orders   # 200, the upstream echoes X-Auth-* headers
  curl -i -H "Authorization: Bearer $TOKEN" %[1]s/admin/users  # 403 insufficient_scope: alice is no admin
  curl -i -H "Authorization: Bearer $TOKEN" -H "X-Auth-Username: admin" %[1]s/api/x  # spoofed header is dropped

  ADMIN=$(curl -s -d grant_type=password -d client_id=%[3]s -d username=admin -d password=admin \
    %[2]s | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -i -H "Authorization: Bearer $ADMIN" %[1]s/admin/users  # 200

  SVC=$(curl -s -u %[4]s:%[5]s -d grant_type=client_credentials \
    %[2]s | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -i -H "Authorization: Bearer $SVC" %[1]s/api/orders     # 200, a service account

  keygate token inspect "$TOKEN"                               # decode (unverified)
  keygate token verify --issuer %[6]s --audience %[7]s "$TOKEN"

Press Ctrl-C to stop.
`, p, tok, PublicClient, ServiceClient, ServiceSecret, e.issuerURL, e.opts.Audience)
}

// Echo returns the demo upstream's handler: it answers every request with
// JSON of what it received: method, path, query and headers.
func Echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers := make(map[string]string, len(r.Header))
		keys := make([]string, 0, len(r.Header))
		for k := range r.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			headers[k] = strings.Join(r.Header.Values(k), ", ")
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(Echoed{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Headers: headers})
	})
}

// Echoed is the body of the demo upstream's answers.
type Echoed struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Host    string            `json:"host"`
	Headers map[string]string `json:"headers"`
}
