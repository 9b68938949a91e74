// Package jwks keeps the signature keys of an OpenID Connect provider:
// discovery from an issuer URL or a direct JWKS URL, a refresh in the
// background on a TTL, a rate-limited refetch when a token names an
// unknown key, and the last good keys kept through an outage of the
// provider, up to a maximum age.
//
// A [Source] is built with [NewSource], which does no I/O, started with
// [Source.Start], which never blocks, and stopped with [Source.Close].
// [Source.Key] is the call on the path of each request: a lock-free
// lookup in an immutable snapshot.
//
// Errors keep an outage apart from a forgery: [ErrUnknownKey] only when a
// key set was fetched successfully and lacks the kid, [ErrUnavailable]
// when the keys cannot be checked now (none held, too old, or the
// provider did not answer the refetch a new kid called for).
//
// # Shared key cache
//
// With [Config.Shared], the sources of a cluster share one copy of the key
// set in a store such as Redis (package redisstore): one instance per
// RefreshInterval fetches from the provider under a lease, stores the
// document as served, with its fetch time and ETag, and announces it; the
// others install it, parsed exactly as a provider's answer is, and call
// the provider only when the shared copy is RefreshInterval old or more.
// An unknown kid causes at most one provider fetch per MinRefetchInterval
// for the whole cluster, under a second lease; every instance learns a new
// key from the announcement. When the store fails or takes longer than
// SharedTimeout, each source fetches on its own, as without a store, and
// goes back to the shared copy when the store answers again: trouble with
// the store never refuses a token a source would accept without it.
//
// Security model. Each entry is sealed with HMAC-SHA256 under
// [Config.SharedSecret], over everything stored: the document, its fetch
// time, ETag, the JWKS URL, and the configured Issuer and URL it was
// fetched for. An entry that fails the check is ignored, logged without
// its content and counted ([Status].SharedAuthFailures). So whoever can
// write to the store but does not hold the secret
//   - cannot plant a key, alter a document, or make an old document look
//     fresh, nor pass one issuer's keys off as another's;
//   - can delete, withhold or corrupt entries, hold or delete leases
//     (for ever), or flood the channel: the sources then fetch from the
//     provider on their own, each at most as often as without a store,
//     after a bounded wait for the lease's holder, plus one store read per
//     announcement;
//   - can put back an older sealed entry (a replay): a source never
//     installs an entry older than the set it holds, nor one older than
//     MaxStale; a source holding nothing, at start, may install it, as
//     of its sealed fetch time, and then, the entry not being fresh,
//     refreshes from the provider at once. A key the provider removed
//     can so come back only to a source that starts while the replay is
//     in place, only until that refresh, and never past its sealed fetch
//     time plus MaxStale.
//
// Whoever holds the secret can plant keys: give it only to the instances,
// not to the store.
package jwks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/clip"
)

// Defaults for the zero values of [Config].
const (
	DefaultRefreshInterval    = 5 * time.Minute  // Config.RefreshInterval
	DefaultMinRefetchInterval = 10 * time.Second // Config.MinRefetchInterval
	DefaultMaxStale           = 24 * time.Hour   // Config.MaxStale
	DefaultMaxResponseSize    = 1 << 20          // Config.MaxResponseSize, in bytes
	DefaultMaxKeys            = 100              // Config.MaxKeys
	// DefaultTimeout bounds each request when Config.HTTPClient is nil or
	// has a zero Timeout. A configured Timeout replaces it, longer or
	// shorter.
	DefaultTimeout = 10 * time.Second
)

// Config configures a [Source]. At least one of Issuer and URL is set.
type Config struct {
	// Issuer is the provider's issuer URL, such as
	// https://keycloak.example.com/realms/myrealm. When URL is empty the
	// source discovers the key set URL from
	// {Issuer}/.well-known/openid-configuration, whose issuer member must
	// equal Issuer exactly.
	Issuer string

	// URL is the JWKS URL to fetch keys from. When set, no discovery takes
	// place: use it when the service reaches the provider by another name
	// than the public issuer (Keycloak behind an internal hostname).
	URL string

	// HTTPClient makes the requests. Its Timeout bounds each discovery or
	// key set request and is the only timeout the source applies; a zero
	// Timeout means [DefaultTimeout], so that a provider that never
	// answers cannot hold a fetch forever. Its CheckRedirect, if any, runs
	// after the source's own check that every redirect target obeys the
	// same scheme rule as URL (see InsecureAllowHTTP). Nil means a client
	// with the default transport and [DefaultTimeout]. The source uses a
	// copy and does not modify the client.
	HTTPClient *http.Client

	// RefreshInterval is how long a fetched key set is used before it is
	// refreshed in the background. Zero means [DefaultRefreshInterval].
	// Any positive value is allowed; a minute suits fast rotation.
	RefreshInterval time.Duration

	// MinRefetchInterval is the least time between two fetches caused by
	// tokens with an unknown kid. Between them an unknown kid fails at once:
	// with [ErrUnknownKey] if the last fetch succeeded, with
	// [ErrUnavailable] if it failed. Once the provider answers again, a
	// new kid resolves within this interval, or within the client's
	// Timeout if a hung fetch outlasts it. Zero means
	// [DefaultMinRefetchInterval].
	MinRefetchInterval time.Duration

	// MaxStale is how long the last good key set keeps being used while
	// refreshes fail. After it, [Source.Key] fails with [ErrUnavailable].
	// Zero means [DefaultMaxStale].
	MaxStale time.Duration

	// MaxResponseSize caps the size of a discovery or JWKS response in
	// bytes. Zero means [DefaultMaxResponseSize] (1 MiB).
	MaxResponseSize int64

	// MaxKeys caps the number of keys used from one set; keys past it are
	// skipped and reported. Zero means [DefaultMaxKeys].
	MaxKeys int

	// InsecureAllowHTTP allows plain http URLs for hosts other than
	// loopback. Without it, Issuer, URL, the discovered jwks_uri and every
	// redirect target must be https, or http to a loopback host. Keys
	// fetched over plain http can be replaced by anyone on the path; use
	// it only inside a trusted network.
	InsecureAllowHTTP bool

	// Logger receives refresh failures (Warn), key changes (Info) and the
	// expiry of a key set (Error). URLs are logged without userinfo and
	// query. Nothing is logged once [Source.Close] has returned. Nil means
	// no logging.
	Logger *slog.Logger

	// Now is the clock for key ages. Nil means time.Now. With Shared, the
	// fetch times in the store come from the clocks of the instances that
	// fetched, so the instances' clocks should agree within a small part
	// of RefreshInterval.
	Now func() time.Time

	// Shared, when set, is a store shared by the sources of a cluster
	// that use the same Issuer and URL (see [SharedCache]): one instance
	// per RefreshInterval fetches from the provider, under a lease, and
	// stores the document sealed with SharedSecret; the others install it
	// from the store and do not call the provider while it is younger than
	// RefreshInterval. An unknown kid causes at most one provider fetch per
	// MinRefetchInterval for the whole cluster. When a call to the store
	// fails or takes longer than SharedTimeout, the source fetches on its
	// own, as without Shared, and goes back to the store when it answers
	// again. Nil means every source fetches on its own.
	Shared SharedCache

	// SharedSecret is the HMAC-SHA256 key that seals the entries in
	// Shared, shared by every instance of the cluster and by nothing else.
	// Required with Shared: at least [MinSharedSecret] (32) bytes, such as
	// 32 random bytes. Whoever can write to the store but does not know it
	// cannot plant keys. Ignored when Shared is nil. The source keeps a
	// copy.
	SharedSecret []byte

	// SharedTimeout bounds each call to Shared. Zero means
	// [DefaultSharedTimeout] (1 s).
	SharedTimeout time.Duration
}

// Errors returned by [Source.Key].
var (
	// ErrUnknownKey reports a kid that the key set does not hold: the
	// refetch it caused succeeded without it, or the refetch was rate
	// limited and the last fetch succeeded. The token is to be refused.
	ErrUnknownKey = errors.New("jwks: unknown key id")
	// ErrUnavailable reports that the key for a token cannot be checked
	// now: no key set was fetched yet, the last good one is older than
	// MaxStale, the source is closed, or the kid is not in the set and
	// the refetch it called for failed, timed out, was given up by the
	// caller's context, or was rate limited while the last fetch had
	// failed. It is not the token's fault; retry later.
	ErrUnavailable = errors.New("jwks: keys unavailable")
)

// FetchError reports a failed discovery or key set fetch.
type FetchError struct {
	// URL is the requested URL without userinfo, query and fragment,
	// which may hold secrets.
	URL string
	// StatusCode is the HTTP status, or zero when no response arrived.
	StatusCode int
	Err        error
}

func (e *FetchError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("jwks: fetch %s: HTTP %d: %v", e.URL, e.StatusCode, e.Err)
	}
	return fmt.Sprintf("jwks: fetch %s: %v", e.URL, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// Status describes a [Source] for health checks and metrics.
type Status struct {
	// Ready reports whether Key can answer: a key set is held and is not
	// older than MaxStale.
	Ready bool
	// URL is the JWKS URL once known, without userinfo, query and
	// fragment.
	URL string
	// KeyIDs are the kids of the usable keys.
	KeyIDs []string
	// Skipped are the published keys that could not be used.
	Skipped []SkippedKey
	// LastSuccess is when a fetch last succeeded (a 304 counts).
	LastSuccess time.Time
	// LastError is the last fetch failure, cleared by a success.
	LastError error
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time
	// Fetches counts fetch attempts; Failures counts the failed ones.
	// With Config.Shared an attempt may end in the store, with no
	// provider request: see ProviderFetches.
	Fetches, Failures uint64
	// KidFetches counts fetches caused by an unknown kid.
	KidFetches uint64

	// ProviderFetches counts the key set requests this source sent to the
	// provider, whatever their answer; discovery requests are not
	// counted. Without Config.Shared it is Fetches less the attempts that
	// failed in discovery.
	ProviderFetches uint64

	// The counters below stay zero without Config.Shared.

	// SharedHits counts key sets installed from Config.Shared: fetched by
	// another instance, or by an earlier run.
	SharedHits uint64
	// LeaseWins counts the leases this source won in Config.Shared; each
	// was followed by a provider fetch on behalf of the cluster.
	LeaseWins uint64
	// SharedAuthFailures counts entries read from Config.Shared that were
	// ignored: not sealed with SharedSecret, altered, or sealed for
	// another Issuer or URL.
	SharedAuthFailures uint64
	// SharedErrors counts calls to Config.Shared that failed or timed out,
	// and subscriptions that ended.
	SharedErrors uint64
	// SharedError is the last failure of a call to Config.Shared, cleared
	// by the next call that succeeds; nil while the store answers.
	SharedError error
}

// Age is how long ago the key set was last fetched successfully, or zero
// before the first success.
func (st Status) Age(now time.Time) time.Duration {
	if st.LastSuccess.IsZero() {
		return 0
	}
	return now.Sub(st.LastSuccess)
}

// Source fetches and refreshes a provider's key set. It is safe for
// concurrent use. The caller calls Close when done.
type Source struct {
	cfg     Config
	client  *http.Client
	jwksURL atomic.Pointer[string]

	set         atomic.Pointer[Set]
	lastSuccess atomic.Int64 // unix nanoseconds; 0 before the first success

	life     context.Context // canceled by Close; every fetch runs under it
	stop     context.CancelFunc
	wg       sync.WaitGroup // every goroutine the source started; Add under mu
	readyC   chan struct{}
	readyOne sync.Once

	mu          sync.Mutex // guards the fields below
	started     bool
	closed      bool
	inflight    *flight
	lastKidTry  time.Time
	lastErr     error
	lastErrAt   time.Time
	fetches     uint64
	failures    uint64
	kidFetches  uint64
	consecutive int

	sharedName         string        // the entry's name in cfg.Shared
	changeC            chan struct{} // closed and replaced at each change announced
	providerFetches    uint64
	sharedHits         uint64
	leaseWins          uint64
	sharedAuthFailures uint64
	sharedErrors       uint64
	sharedErr          error

	// afterAllow, when set (by tests only), runs in Key between the rate
	// limiter's answer and acting on it.
	afterAllow func(kidFetch)
}

// A flightMode says what a flight is for.
type flightMode int

const (
	modeRefresh flightMode = iota // bring the key set up to date
	modeKid                       // find a kid the set lacks
	modeShared                    // install what the store announced; never fetch
)

type flight struct {
	mode flightMode
	kid  string // for modeKid
	done chan struct{}
	err  error
}

// ConfigError reports a [Config] field that [NewSource] refuses.
type ConfigError struct {
	// Field is the name of the field, such as "URL".
	Field string
	// Problem says what is wrong and what to do, such as "is negative".
	Problem string
}

func (e *ConfigError) Error() string { return "jwks: Config." + e.Field + " " + e.Problem }

// NewSource checks cfg and returns a Source. It does no I/O: keys are
// fetched once [Source.Start] is called. An error is a [*ConfigError].
func NewSource(cfg Config) (*Source, error) {
	if cfg.Issuer == "" && cfg.URL == "" {
		return nil, &ConfigError{"Issuer", "and URL are both empty; set the issuer, and URL where the keys are fetched from another address"}
	}
	for _, f := range []struct{ name, url string }{{"Issuer", cfg.Issuer}, {"URL", cfg.URL}} {
		if f.url == "" {
			continue
		}
		if err := checkURL(f.url, cfg.InsecureAllowHTTP); err != nil {
			return nil, &ConfigError{f.name, strings.TrimPrefix(err.Error(), "jwks: URL ")}
		}
	}
	for _, f := range []struct {
		name string
		val  int64
	}{
		{"RefreshInterval", int64(cfg.RefreshInterval)}, {"MinRefetchInterval", int64(cfg.MinRefetchInterval)},
		{"MaxStale", int64(cfg.MaxStale)}, {"MaxResponseSize", cfg.MaxResponseSize}, {"MaxKeys", int64(cfg.MaxKeys)},
		{"SharedTimeout", int64(cfg.SharedTimeout)},
	} {
		if f.val < 0 {
			return nil, &ConfigError{f.name, "is negative; use 0 for the default"}
		}
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MinRefetchInterval == 0 {
		cfg.MinRefetchInterval = DefaultMinRefetchInterval
	}
	if cfg.MaxStale == 0 {
		cfg.MaxStale = DefaultMaxStale
	}
	if cfg.MaxResponseSize == 0 {
		cfg.MaxResponseSize = DefaultMaxResponseSize
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Shared != nil && len(cfg.SharedSecret) < MinSharedSecret {
		return nil, &ConfigError{"SharedSecret", fmt.Sprintf("has %d bytes; Shared needs a secret of at least %d bytes, the same on every instance", len(cfg.SharedSecret), MinSharedSecret)}
	}
	if cfg.Shared == nil {
		cfg.SharedSecret = nil
	} else {
		cfg.SharedSecret = bytes.Clone(cfg.SharedSecret)
	}
	if cfg.SharedTimeout == 0 {
		cfg.SharedTimeout = DefaultSharedTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg, readyC: make(chan struct{}), changeC: make(chan struct{})}
	s.sharedName = sharedNameFor(cfg.Issuer, cfg.URL)
	s.client = &http.Client{}
	if cfg.HTTPClient != nil {
		*s.client = *cfg.HTTPClient
	}
	if s.client.Timeout == 0 {
		s.client.Timeout = DefaultTimeout
	}
	s.client.CheckRedirect = checkRedirect(s.client.CheckRedirect, cfg.InsecureAllowHTTP)
	if cfg.URL != "" {
		u := cfg.URL
		s.jwksURL.Store(&u)
	}
	s.life, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// checkURL parses raw and checks it with checkScheme.
func checkURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the raw URL, secrets included
		}
		return fmt.Errorf("jwks: URL is not a URL: %w", err)
	}
	return checkScheme(u, insecure)
}

// checkScheme requires https, except for loopback hosts or when insecure
// is set.
func checkScheme(u *url.URL, insecure bool) error {
	if u.Host == "" {
		return fmt.Errorf("jwks: URL %q has no host; write the full URL, such as https://keycloak.example.com/realms/myrealm", redact(u))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if insecure || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("jwks: URL %q uses plain http; use https, or set InsecureAllowHTTP inside a trusted network", redact(u))
	}
	return fmt.Errorf("jwks: URL %q must start with https://", redact(u))
}

// maxRedirects is how many redirects a request follows when the
// configured client has no CheckRedirect, as with net/http's default.
const maxRedirects = 10

// checkRedirect returns a CheckRedirect that holds each redirect target to
// the scheme rule of the first URL, then defers to next, or to net/http's
// default limit when next is nil.
func checkRedirect(next func(*http.Request, []*http.Request) error, insecure bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if err := checkScheme(req.URL, insecure); err != nil {
			return fmt.Errorf("redirect refused: %w", err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
}

// redact returns u without userinfo, query and fragment, fit for logs,
// errors and status pages.
func redact(u *url.URL) string {
	r := *u
	r.User = nil
	r.RawQuery, r.ForceQuery = "", false
	r.Fragment, r.RawFragment = "", ""
	return r.String()
}

// redactString is redact for a URL held as text.
func redactString(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return redact(u)
}

// quoteKid quotes kid for an error message, cut to clip.Quoted bytes.
func quoteKid(kid string) string { return clip.Quote(kid, clip.Quoted) }

// isLoopback reports whether host is "localhost" or a loopback IP. Other
// names under .localhost are not trusted: the resolver may answer them
// from anywhere.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start begins fetching keys in the background and returns at once, even
// when the provider is down. Until the first fetch succeeds, [Source.Key]
// fails with [ErrUnavailable]. Calls after the first, or after Close, do
// nothing.
func (s *Source) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	s.wg.Add(1)
	go s.loop()
	if s.cfg.Shared != nil {
		s.wg.Add(2)
		go s.subscribe()
		go s.watch()
	}
}

// Close stops the background refresh, cancels a fetch under way, and waits
// for every goroutine the source started, including fetches started by
// [Source.Key] and [Source.Refresh], to end; nothing is logged after it
// returns. Keys stay usable from the last snapshot, but a kid it lacks
// fails with [ErrUnavailable]. Close may be called more than once and
// always returns nil.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	return nil
}

// Ready returns a channel that is closed once the first key set is held.
func (s *Source) Ready() <-chan struct{} { return s.readyC }

// Key returns the signature key with the given kid. A kid the current set
// lacks triggers one refetch, shared by concurrent callers and allowed at
// most once per MinRefetchInterval, and Key waits for it or for ctx. When
// that refetch succeeds without the kid, or is rate limited after a
// successful fetch, Key fails with [ErrUnknownKey]. When it fails, or is
// rate limited while the last fetch failed, or ctx ends first, Key fails
// with [ErrUnavailable], as it does while no usable key set is held. Key
// never waits for a scheduled refresh. Error messages quote the kid cut to
// 64 bytes.
func (s *Source) Key(ctx context.Context, kid string) (*Key, error) {
	set := s.set.Load()
	if set == nil {
		if s.lastSuccess.Load() == 0 {
			return nil, fmt.Errorf("%w: no key set fetched yet", ErrUnavailable)
		}
		return nil, fmt.Errorf("%w: key set expired: older than %v", ErrUnavailable, s.cfg.MaxStale)
	}
	if s.stale() {
		return nil, fmt.Errorf("%w: last good key set is older than %v", ErrUnavailable, s.cfg.MaxStale)
	}
	if k, ok := set.Lookup(kid); ok {
		return k, nil
	}
	// At most twice: a fetch already under way when the kid was first
	// missed may have started before the provider published it, so its
	// answer alone does not prove the kid unknown; the next one does.
	for try := 0; ; {
		allow := s.allowKidFetch()
		if s.afterAllow != nil {
			s.afterAllow(allow)
		}
		switch allow {
		case kidFetchLimited:
			return nil, fmt.Errorf("%w %s (refetch rate limited)", ErrUnknownKey, quoteKid(kid))
		case kidFetchLimitedFailing:
			return nil, fmt.Errorf("%w: key %s not held, refetch rate limited and the last fetch failed", ErrUnavailable, quoteKid(kid))
		case kidFetchClosed:
			return nil, fmt.Errorf("%w: key %s not held and the source is closed", ErrUnavailable, quoteKid(kid))
		}
		var err error
		if allow == kidFetchJoined {
			// Only join: the limiter did not count this caller, so it
			// must not start a fetch. If the fetch it saw has ended
			// since, the limiter answers again.
			var joined bool
			if err, joined = s.joinFlight(ctx); !joined {
				continue
			}
		} else {
			err, _ = s.refreshMode(ctx, modeKid, kid)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: key %s not held and the refetch failed: %w", ErrUnavailable, quoteKid(kid), err)
		}
		if k, ok := s.set.Load().Lookup(kid); ok {
			return k, nil
		}
		if allow != kidFetchJoined || try > 0 {
			return nil, fmt.Errorf("%w %s", ErrUnknownKey, quoteKid(kid))
		}
		try++
	}
}

// joinFlight waits for the fetch under way, or for ctx, and reports its
// result; joined is false when no fetch is under way (or only the
// installation of a shared copy, which fetches nothing).
func (s *Source) joinFlight(ctx context.Context) (err error, joined bool) {
	s.mu.Lock()
	f := s.inflight
	s.mu.Unlock()
	if f == nil || f.mode == modeShared {
		return nil, false
	}
	select {
	case <-f.done:
		return f.err, true
	case <-ctx.Done():
		return ctx.Err(), true
	}
}

// Keys returns the current key set, or nil before the first success.
func (s *Source) Keys() *Set { return s.set.Load() }

// Refresh fetches the key set now, joining a fetch already under way, and
// reports its result, or ctx's error if ctx ends first; the fetch goes on
// for other callers. It is not rate limited. After Close it fails with
// [ErrUnavailable].
//
// With Config.Shared, a copy in the store younger than RefreshInterval
// stands for the fetch: Refresh installs it, if newer than the held set,
// and does not call the provider.
func (s *Source) Refresh(ctx context.Context) error { return s.refresh(ctx) }

// Status returns a snapshot of the source's state.
func (s *Source) Status() Status {
	st := Status{Ready: s.set.Load() != nil && !s.stale()}
	if u := s.jwksURL.Load(); u != nil {
		st.URL = redactString(*u)
	}
	if set := s.set.Load(); set != nil {
		for _, k := range set.keys {
			st.KeyIDs = append(st.KeyIDs, k.ID)
		}
		st.Skipped = append(st.Skipped, set.skipped...)
	}
	if ns := s.lastSuccess.Load(); ns != 0 {
		st.LastSuccess = time.Unix(0, ns)
	}
	s.mu.Lock()
	st.LastError, st.LastErrorAt = s.lastErr, s.lastErrAt
	st.Fetches, st.Failures, st.KidFetches = s.fetches, s.failures, s.kidFetches
	st.ProviderFetches, st.SharedHits, st.LeaseWins = s.providerFetches, s.sharedHits, s.leaseWins
	st.SharedAuthFailures, st.SharedErrors, st.SharedError = s.sharedAuthFailures, s.sharedErrors, s.sharedErr
	s.mu.Unlock()
	return st
}

func (s *Source) stale() bool {
	ns := s.lastSuccess.Load()
	return ns != 0 && s.cfg.Now().Sub(time.Unix(0, ns)) > s.cfg.MaxStale
}

// A kidFetch is the rate limiter's answer to an unknown kid.
type kidFetch int

const (
	kidFetchAllowed        kidFetch = iota // a new fetch
	kidFetchJoined                         // the fetch under way, which may predate the kid
	kidFetchLimited                        // and the last fetch succeeded
	kidFetchLimitedFailing                 // and the last fetch failed
	kidFetchClosed                         // the source is closed
)

func (s *Source) allowKidFetch() kidFetch {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return kidFetchClosed
	}
	if s.inflight != nil && s.inflight.mode != modeShared {
		return kidFetchJoined // joining a fetch under way costs the provider nothing
	}
	if !s.lastKidTry.IsZero() && now.Sub(s.lastKidTry) < s.cfg.MinRefetchInterval {
		if s.lastErr != nil {
			return kidFetchLimitedFailing
		}
		return kidFetchLimited
	}
	s.lastKidTry = now
	s.kidFetches++
	return kidFetchAllowed
}

// errClosed reports a fetch asked for after Close.
var errClosed = fmt.Errorf("%w: source closed", ErrUnavailable)

// refresh runs one fetch, or joins the one under way, and waits for it or
// for ctx. The fetch itself is bound to the source's life, not to ctx, so
// that a caller giving up does not fail the others; the client's timeout
// bounds it, so a hung provider holds the shared fetch no longer than
// that.
func (s *Source) refresh(ctx context.Context) error {
	err, _ := s.refreshMode(ctx, modeRefresh, "")
	return err
}

// refreshMode is refresh for a flight of the given mode, and reports
// whether it joined a flight under way rather than start one. Only a
// modeShared flight joins a modeShared flight, which fetches nothing;
// the others wait for its end and start their own.
func (s *Source) refreshMode(ctx context.Context, mode flightMode, kid string) (err error, joined bool) {
	s.mu.Lock()
	f := s.inflight
	for f != nil && f.mode == modeShared && mode != modeShared {
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err(), false
		}
		s.mu.Lock()
		f = s.inflight
	}
	joined = f != nil
	if f == nil {
		if s.closed {
			s.mu.Unlock()
			return errClosed, false
		}
		f = &flight{mode: mode, kid: kid, done: make(chan struct{})}
		s.inflight = f
		s.wg.Add(1) // under mu, before Close can see closed and Wait
		go s.run(f)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.err, joined
	case <-ctx.Done():
		return ctx.Err(), joined
	}
}

// run carries out flight f. It alone installs or expires key sets while it
// holds s.inflight, and it ends before Close returns.
func (s *Source) run(f *flight) {
	defer s.wg.Done()
	var err error
	if s.cfg.Shared == nil {
		err = s.fetch(s.life)
	} else {
		err = s.syncShared(s.life, f)
	}
	if f.mode == modeShared { // no fetch: nothing to count or report
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
		f.err = err
		close(f.done)
		return
	}
	if err != nil {
		if s.life.Err() == nil { // a fetch Close canceled is no failure to report
			s.cfg.Logger.Warn("jwks refresh failed", "url", s.currentURL(), "error", err)
		}
		s.expire()
	}
	now := s.cfg.Now()
	s.mu.Lock()
	s.fetches++
	if err != nil {
		s.failures++
		s.consecutive++
		s.lastErr, s.lastErrAt = err, now
	} else {
		s.consecutive = 0
		s.lastErr = nil
	}
	s.inflight = nil
	s.mu.Unlock()
	f.err = err
	close(f.done)
}

// expire drops the key set if it is older than MaxStale: its keys retire,
// so caches keyed on them empty, and Key fails with ErrUnavailable until a
// fetch succeeds again. It drops only the set whose age it checked, never
// one installed meanwhile.
func (s *Source) expire() {
	old := s.set.Load()
	if old == nil || !s.stale() || !s.set.CompareAndSwap(old, nil) {
		return
	}
	s.cfg.Logger.Error("jwks key set expired: older than MaxStale and no refresh succeeded", "max_stale", s.cfg.MaxStale)
	for _, k := range old.keys {
		k.retired.Store(true)
	}
}

// currentURL is the JWKS URL, or the issuer before discovery, redacted.
func (s *Source) currentURL() string {
	if u := s.jwksURL.Load(); u != nil {
		return redactString(*u)
	}
	return redactString(s.cfg.Issuer)
}

// loop refreshes on the TTL after each success, and with exponential
// backoff and full jitter after each failure.
func (s *Source) loop() {
	defer s.wg.Done()
	for {
		err := s.refresh(s.life)
		if s.life.Err() != nil {
			return
		}
		wait := s.cfg.RefreshInterval
		if err != nil {
			wait = s.backoff()
		} else if s.cfg.Shared != nil {
			wait = s.sharedWait()
		}
		t := time.NewTimer(wait)
		select {
		case <-s.life.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sharedWait is the wait before the next refresh with Shared: until the
// held set, which may have been fetched by another instance a while ago,
// is RefreshInterval old, but at least an eighth of it, so that clocks a
// little apart do not make the loop spin.
func (s *Source) sharedWait() time.Duration {
	age := s.cfg.Now().Sub(time.Unix(0, s.lastSuccess.Load()))
	return max(s.cfg.RefreshInterval-age, s.cfg.RefreshInterval/8)
}

// maxBackoff caps the wait between attempts while fetches fail, so that a
// source recovers within half a minute of the provider coming back.
const maxBackoff = 30 * time.Second

// backoff returns the wait before the next attempt after consecutive
// failures: 1s doubling per failure, capped at RefreshInterval and
// maxBackoff, with jitter over its upper half so that a fleet does not
// retry in step.
func (s *Source) backoff() time.Duration {
	s.mu.Lock()
	n := s.consecutive
	s.mu.Unlock()
	d := time.Second
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RefreshInterval, maxBackoff)
	return d/2 + rand.N(d/2+1)
}
