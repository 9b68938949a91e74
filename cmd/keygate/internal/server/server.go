// Package server is keygate's HTTP server: a reverse proxy that lets
// through only the requests the rules allow, a forward-auth endpoint for
// front proxies, an Envoy ext_authz gRPC listener that decides as
// forward-auth does (one function, [Server.checkSubrequest]), and an
// admin listener with health and metrics.
//
// Its lifecycle is Caddy's: a [config.Config] is validated, [New]
// provisions the server from it (no network I/O), [Server.Start] listens
// and fetches keys, and [Server.Shutdown] drains in-flight requests.
// [Server.Run] does the last two around a context.
//
// Header names are compared normalized (lower case, '_' as '-'): the
// proxy removes every incoming identity, strip-list and forward-auth
// input header in any spelling before it sets its own; forward-auth
// refuses (400) a subrequest that carries an identity header in any
// spelling, or a strip-list or forward-auth input header spelled with
// '_' (the plain spellings are the front proxy's to clear). Each listener holds at
// most limits.max_connections connections, and every value a client
// chose is cut to 256 bytes before it is logged. docs/config.md has the
// whole policy.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/backchannel"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/cmd/keygate/internal/metrics"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/redisstore"
	"github.com/keygate/keygate/revoke"
)

// Options are the dependencies of a [Server] that do not come from the
// configuration file.
type Options struct {
	// Logger receives the JSON log. Nil means no logging.
	Logger *slog.Logger

	// Transport carries proxied requests to the upstream. Nil means a
	// transport like http.DefaultTransport's without proxy settings from
	// the environment, with the configured dial and response header
	// timeouts.
	Transport http.RoundTripper

	// KeysClient fetches discovery documents and key sets. Nil means the
	// jwks package's default client with the configured keys.timeout.
	KeysClient *http.Client
}

// Server is one keygate instance. Build it with [New], then call
// [Server.Start] or [Server.Run]. It is safe for concurrent use.
type Server struct {
	cfg     config.Config // with defaults
	log     *slog.Logger
	keys    *jwks.Source
	auth    *httpauth.Middleware
	metrics *metrics.Metrics
	headers identity
	// strip holds the names removed from proxied requests: the
	// identity headers (configured and default names), the strip list
	// and the forward-auth inputs. owned holds the identity headers
	// only. Forward-auth refuses owned names in any spelling and strip
	// names spelled with '_' (see spoofed).
	strip  headerSet
	owned  headerSet
	faPath string
	// proxy is the template of every proxyCall (nil without upstream);
	// calls pools them. Requests are proxied through a call, never
	// through proxy itself.
	proxy    *httputil.ReverseProxy
	calls    sync.Pool
	upstream *url.URL
	tls      *tls.Config
	epoch    time.Time // when New ran; decisions are timed as time.Since(epoch)

	// cluster holds the Redis client and revocation store. revocations
	// is the store as the admin endpoint and the logout receiver use it
	// (counted), nil without a revocation block; logout answers
	// back-channel logout requests on logoutPath ("" without it).
	cluster     clusterParts
	revocations revoke.Store
	logout      http.Handler
	logoutPath  string

	handler http.Handler
	admin   http.Handler

	mu       sync.Mutex
	srv      *http.Server
	adminSrv *http.Server
	extSrv   extAuthzServer // nil without ext_authz
	ln       net.Listener
	adminLn  net.Listener
	extLn    net.Listener
	done     chan struct{} // closed when both listeners have stopped serving
	serveErr chan error
}

// New provisions a Server from cfg, which it validates first. It reads
// the TLS files but does no network I/O: keys are fetched from Start on.
func New(cfg config.Config, opts Options) (*Server, error) {
	if err := config.Validate(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, metrics: metrics.New(), headers: newIdentity(cfg.IdentityHeaders), epoch: time.Now()}
	s.strip = newHeaderSet(s.headers.names(), config.DefaultIdentityHeaderNames(), cfg.StripHeaders, forwardAuthInputs())
	s.owned = newHeaderSet(s.headers.names(), config.DefaultIdentityHeaderNames())

	if cfg.ExtAuthz != nil && !extAuthzBuilt {
		return nil, errExtAuthzNotBuilt
	}
	var err error
	if s.cluster, err = newClusterParts(cfg, log, s.metrics); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.cluster.close()
		}
	}()
	var shared jwks.SharedCache
	if s.cluster.redis != nil {
		shared = redisstore.NewKeys(s.cluster.redis, cfg.Cluster.KeyPrefix, cfg.Cluster.Redis.Timeout)
	}
	s.keys, err = jwks.NewSource(cfg.SourceConfig(opts.KeysClient, log.With("component", "jwks"), shared))
	if err != nil {
		return nil, err
	}
	vcfg := cfg.VerifierConfig(s.keys, log)
	if store := s.cluster.store(); store != nil {
		vcfg.Revocations = store
		s.revocations = recordingStore{store, s.metrics}
		var stats func() redisstore.RevocationStats
		if s.cluster.sharedRevs != nil {
			stats = s.cluster.sharedRevs.Stats
		}
		s.metrics.WatchRevocations(stats)
	}
	verifier, err := keygate.NewVerifier(vcfg)
	if err != nil {
		return nil, err
	}
	if cfg.Revocation != nil && cfg.Revocation.BackchannelLogout != nil {
		s.logout, err = newLogoutHandler(cfg, backchannel.Config{
			Verifier: verifier, Store: s.revocations, Logger: log.With("component", "backchannel_logout"),
		})
		if err != nil {
			return nil, err
		}
		s.logoutPath = cfg.Revocation.BackchannelLogout.Path
	}
	var policy *authz.Policy
	if cfg.Access != nil {
		if policy, err = authz.Compile(*cfg.Access); err != nil {
			return nil, err
		}
	}
	// Decisions are made through Authorize, which does not log; the
	// server logs refusals itself, with the same attributes as the
	// middleware's Logger would.
	s.auth, err = httpauth.New(cfg.MiddlewareConfig(verifier, policy))
	if err != nil {
		return nil, err
	}
	s.metrics.WatchKeys(s.keys, nil)
	s.metrics.WatchCache(verifier)

	if cfg.Upstream != "" {
		u, err := url.Parse(cfg.Upstream)
		if err != nil {
			return nil, err
		}
		s.upstream = u
		s.proxy = s.newProxy(u, opts.Transport)
		s.calls.New = func() any { return s.newCall() }
	}
	if cfg.ForwardAuth != nil {
		s.faPath = cfg.ForwardAuth.Path
	}
	if t := cfg.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.handler = s.newHandler()
	s.admin = s.newAdminHandler()
	ok = true
	return s, nil
}

// Handler returns the handler of the main listener: forward-auth on its
// path, the proxy everywhere else.
func (s *Server) Handler() http.Handler { return s.handler }

// AdminHandler returns the handler of the admin listener.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// KeysReady returns a channel closed once the first key set is held.
func (s *Server) KeysReady() <-chan struct{} { return s.keys.Ready() }

// Start binds the listeners, starts fetching keys and serves in the
// background. It returns once the listeners are bound; a bind failure is
// its error. Start may be called once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("server: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var adminLn, extLn net.Listener
	if s.cfg.Admin != nil {
		if adminLn, err = net.Listen("tcp", s.cfg.Admin.Listen); err != nil {
			ln.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
	}
	if s.cfg.ExtAuthz != nil {
		if extLn, err = net.Listen("tcp", s.cfg.ExtAuthz.Listen); err != nil {
			ln.Close()
			if adminLn != nil {
				adminLn.Close()
			}
			return fmt.Errorf("ext_authz listen: %w", err)
		}
	}
	t := s.cfg.Timeouts
	read := max(t.Read, 0) // negative: none
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		TLSConfig:         s.tls,
		ErrorLog:          errLog,
		ConnState:         trackState,
	}
	// The limit counts TCP connections, under TLS: a client that never
	// finishes its handshake holds a slot too.
	ln = newLimitListener(ln, s.cfg.Limits.MaxConnections, true)
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	s.done = make(chan struct{})
	s.serveErr = make(chan error, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr <- err
		}
	}()
	if adminLn != nil {
		adminLn = newLimitListener(adminLn, s.cfg.Limits.MaxConnections, true)
		s.adminLn = adminLn
		s.adminSrv = &http.Server{
			Handler:           s.admin,
			ReadHeaderTimeout: t.ReadHeader,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       t.Idle,
			ErrorLog:          errLog,
			ConnState:         trackState,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
				s.serveErr <- err
			}
		}()
	}
	if extLn != nil {
		// A full listener waits rather than closing a connection: see
		// newExtAuthzServer.
		s.extLn = newLimitListener(extLn, s.cfg.Limits.MaxConnections, false)
		s.extSrv = s.newExtAuthzServer()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.extSrv.Serve(s.extLn); err != nil {
				s.serveErr <- err
			}
		}()
	}
	go func() { wg.Wait(); close(s.done) }()
	s.keys.Start()
	if err := s.cluster.start(); err != nil {
		s.log.Error("revocation subscriber not started", "error", err)
	}

	attrs := []any{"listen", s.ln.Addr().String(), "tls", s.tls != nil, "issuer", s.cfg.Issuer}
	if s.proxy != nil {
		attrs = append(attrs, "upstream", s.cfg.Upstream)
	}
	if s.faPath != "" {
		attrs = append(attrs, "forward_auth", s.faPath)
	}
	if s.logoutPath != "" {
		attrs = append(attrs, "backchannel_logout", s.logoutPath)
	}
	if s.cfg.Revocation != nil {
		attrs = append(attrs, "revocation", map[bool]string{true: "cluster", false: "local"}[s.cluster.sharedRevs != nil])
	}
	if adminLn != nil {
		attrs = append(attrs, "admin", adminLn.Addr().String())
	}
	if extLn != nil {
		attrs = append(attrs, "ext_authz", extLn.Addr().String())
	}
	s.log.Info("keygate started", attrs...)
	return nil
}

// Addr returns the address of the main listener, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// AdminAddr returns the address of the admin listener, or nil when there
// is none or before Start.
func (s *Server) AdminAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// ExtAuthzAddr returns the address of the ext_authz gRPC listener, or
// nil when there is none or before Start.
func (s *Server) ExtAuthzAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extLn == nil {
		return nil
	}
	return s.extLn.Addr()
}

// URL returns the base URL of the main listener, such as
// http://127.0.0.1:8080, or "" before Start.
func (s *Server) URL() string {
	a := s.Addr()
	if a == nil {
		return ""
	}
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + a.String()
}

// extAuthzServer serves Envoy's ext_authz checks on a listener: a gRPC
// server (extauthz.go), absent from builds with the tag
// keygate_noextauthz. Serve returns nil once stopped.
type extAuthzServer interface {
	Serve(net.Listener) error
	GracefulStop()
	Stop()
}

// errExtAuthzNotBuilt is New's error for an ext_authz block in a build
// without ext_authz.
var errExtAuthzNotBuilt = errors.New("config: ext_authz: this keygate was built without ext_authz (build tag keygate_noextauthz); use a default build")

// Shutdown stops accepting connections, waits for in-flight requests to
// finish or ctx to end, then closes what is left and stops fetching keys.
// Connections taken over by an upgrade (WebSocket) are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, adminSrv, extSrv := s.srv, s.adminSrv, s.extSrv
	s.mu.Unlock()
	defer s.cluster.close() // after the key source: it may share the client
	defer s.keys.Close()
	if srv == nil {
		return nil
	}
	var errs []error
	var wg sync.WaitGroup
	for _, h := range []*http.Server{srv, adminSrv} {
		if h == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.Shutdown(ctx); err != nil {
				h.Close()
				s.mu.Lock()
				errs = append(errs, err)
				s.mu.Unlock()
			}
		}()
	}
	if extSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopped := make(chan struct{})
			go func() { extSrv.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				extSrv.Stop()
				<-stopped
				s.mu.Lock()
				errs = append(errs, ctx.Err())
				s.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-s.done
	return errors.Join(errs...)
}

// Run starts the server, serves until ctx ends, then shuts down
// gracefully within the configured timeouts.shutdown. It returns nil
// after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.serveErr:
	}
	s.log.Info("keygate shutting down", "timeout", s.cfg.Timeouts.Shutdown.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeouts.Shutdown)
	defer cancel()
	err := s.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("shutdown: in-flight requests did not finish within %v", s.cfg.Timeouts.Shutdown)
	}
	s.log.Info("keygate stopped")
	return errors.Join(serveErr, err)
}
