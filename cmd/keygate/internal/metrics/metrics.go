// Package metrics holds keygate's Prometheus metrics on a registry of its
// own: access decisions, upstream errors, and the state of the key set.
package metrics

import (
	"github.com/keygate/keygate"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keygate/keygate/jwks"
)

// Outcomes of an access decision, the outcome label of
// keygate_decisions_total.
const (
	Allowed      = "allowed"
	Unauthorized = "unauthorized"
	Forbidden    = "forbidden"
	BadRequest   = "bad_request"
	Unavailable  = "unavailable"
)

// ReasonOK is the reason label of allowed decisions.
const ReasonOK = "ok"

// Outcome returns the outcome label for the HTTP status of a decision.
func Outcome(status int) string {
	switch status {
	case http.StatusOK:
		return Allowed
	case http.StatusUnauthorized:
		return Unauthorized
	case http.StatusForbidden:
		return Forbidden
	case http.StatusBadRequest:
		return BadRequest
	}
	return Unavailable
}

// Metrics are the metrics of one keygate server. The zero value is not
// usable; call [New]. Its methods are safe for concurrent use.
type Metrics struct {
	reg       *prometheus.Registry
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	upstream  prometheus.Counter
	// The series of allowed decisions, resolved once: most decisions
	// are allowed, and resolving labels costs a hash per call.
	allowed        prometheus.Counter
	allowedLatency prometheus.Observer
	// revocations is nil until WatchRevocations.
	revocations *revocationMetrics
}

// New returns Metrics on a fresh registry that also holds the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_decisions_total",
			Help: "Access decisions by outcome and reason (the fixed error description, or ok).",
		}, []string{"outcome", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keygate_decision_duration_seconds",
			Help:    "Time taken to decide a request: token extraction, verification and rules.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"outcome"}),
		upstream: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keygate_upstream_errors_total",
			Help: "Proxied requests answered 502 because the upstream failed.",
		}),
	}
	m.allowed = m.decisions.WithLabelValues(Allowed, ReasonOK)
	m.allowedLatency = m.latency.WithLabelValues(Allowed)
	m.reg.MustRegister(m.decisions, m.latency, m.upstream,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Decision records one access decision.
func (m *Metrics) Decision(outcome, reason string, d time.Duration) {
	if outcome == Allowed && reason == ReasonOK {
		m.allowed.Inc()
		m.allowedLatency.Observe(d.Seconds())
		return
	}
	m.decisions.WithLabelValues(outcome, reason).Inc()
	m.latency.WithLabelValues(outcome).Observe(d.Seconds())
}

// UpstreamError records a failed upstream round trip.
func (m *Metrics) UpstreamError() { m.upstream.Inc() }

// KeyStatus reports the state of a key set; [*jwks.Source] implements it.
type KeyStatus interface {
	Status() jwks.Status
}

// WatchKeys exports the state of keys on every scrape: fetches, failures,
// kid-driven fetches, readiness, the number of keys and the key set's age.
// now is the clock for the age; nil means time.Now.
func (m *Metrics) WatchKeys(keys KeyStatus, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	m.reg.MustRegister(&keyCollector{keys: keys, now: now})
}

// CacheStatser reports a verified-token cache; [*keygate.Verifier]
// implements it.
type CacheStatser interface {
	CacheStats() keygate.CacheStats
}

// WatchCache exports the verified-token cache on every scrape: hits,
// misses, evictions, rejections (tokens a full cache did not admit),
// entries and estimated bytes, and both capacities.
func (m *Metrics) WatchCache(v CacheStatser) {
	m.reg.MustRegister(&cacheCollector{v: v})
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var (
	descFetches = prometheus.NewDesc("keygate_jwks_fetches_total",
		"Key set fetch attempts (discovery and JWKS), scheduled or caused by an unknown kid.", nil, nil)
	descFailures = prometheus.NewDesc("keygate_jwks_fetch_failures_total",
		"Failed key set fetches.", nil, nil)
	descKidFetches = prometheus.NewDesc("keygate_jwks_kid_fetches_total",
		"Key set fetches caused by a token naming an unknown kid.", nil, nil)
	descReady = prometheus.NewDesc("keygate_jwks_ready",
		"1 when a usable key set is held, 0 otherwise.", nil, nil)
	descKeys = prometheus.NewDesc("keygate_jwks_keys",
		"Usable keys in the current key set.", nil, nil)
	descSkipped = prometheus.NewDesc("keygate_jwks_skipped_keys",
		"Published signature keys that could not be used (encryption keys not counted).", nil, nil)
	descAge = prometheus.NewDesc("keygate_jwks_age_seconds",
		"Seconds since the key set was last fetched successfully; 0 before the first success.", nil, nil)
	descLastSuccess = prometheus.NewDesc("keygate_jwks_last_success_timestamp_seconds",
		"Unix time of the last successful fetch; 0 before the first.", nil, nil)
)

// keyCollector reads a key set's Status at scrape time.
type keyCollector struct {
	keys KeyStatus
	now  func() time.Time
}

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFetches, descFailures, descKidFetches, descReady, descKeys, descSkipped, descAge, descLastSuccess,
		descProviderFetches, descSharedHits, descLeaseWins, descSharedAuth, descSharedErrors} {
		ch <- d
	}
}

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.keys.Status()
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	last := 0.0
	if !st.LastSuccess.IsZero() {
		last = float64(st.LastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(st.Fetches))
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(st.Failures))
	ch <- prometheus.MustNewConstMetric(descKidFetches, prometheus.CounterValue, float64(st.KidFetches))
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(len(st.KeyIDs)))
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.GaugeValue, float64(unusable(st.Skipped)))
	ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, st.Age(c.now()).Seconds())
	ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(descProviderFetches, prometheus.CounterValue, float64(st.ProviderFetches))
	ch <- prometheus.MustNewConstMetric(descSharedHits, prometheus.CounterValue, float64(st.SharedHits))
	ch <- prometheus.MustNewConstMetric(descLeaseWins, prometheus.CounterValue, float64(st.LeaseWins))
	ch <- prometheus.MustNewConstMetric(descSharedAuth, prometheus.CounterValue, float64(st.SharedAuthFailures))
	ch <- prometheus.MustNewConstMetric(descSharedErrors, prometheus.CounterValue, float64(st.SharedErrors))
}

var (
	descProviderFetches = prometheus.NewDesc("keygate_jwks_provider_fetches_total",
		"Key set requests this instance sent to the provider (discovery excluded); in cluster mode most instances send none.", nil, nil)
	descSharedHits = prometheus.NewDesc("keygate_jwks_shared_hits_total",
		"Key sets installed from the cluster's shared copy in Redis instead of the provider.", nil, nil)
	descLeaseWins = prometheus.NewDesc("keygate_jwks_lease_wins_total",
		"Times this instance won the cluster lease to fetch from the provider.", nil, nil)
	descSharedAuth = prometheus.NewDesc("keygate_jwks_shared_auth_failures_total",
		"Shared key set documents ignored because their HMAC did not verify under cluster.secret (or they were for another issuer).", nil, nil)
	descSharedErrors = prometheus.NewDesc("keygate_jwks_shared_errors_total",
		"Failed or timed-out calls to the shared key cache (Redis); each falls back to fetching on this instance.", nil, nil)
)

var _ prometheus.Collector = (*keyCollector)(nil)

var (
	descCacheHits = prometheus.NewDesc("keygate_token_cache_hits_total",
		"Tokens answered from the verified-token cache.", nil, nil)
	descCacheMisses = prometheus.NewDesc("keygate_token_cache_misses_total",
		"Tokens verified in full: not in the cache, or their entry had ended.", nil, nil)
	descCacheSize = prometheus.NewDesc("keygate_token_cache_entries",
		"Tokens held by the verified-token cache.", nil, nil)
	descCacheCapacity = prometheus.NewDesc("keygate_token_cache_capacity",
		"The most tokens the verified-token cache holds; 0 when it is off.", nil, nil)
	descCacheBytes = prometheus.NewDesc("keygate_token_cache_bytes",
		"Estimated memory the tokens in the verified-token cache pin, in bytes.", nil, nil)
	descCacheByteCapacity = prometheus.NewDesc("keygate_token_cache_capacity_bytes",
		"The most bytes the verified-token cache holds (estimated); 0 when it is off.", nil, nil)
	descCacheEvictions = prometheus.NewDesc("keygate_token_cache_evictions_total",
		"Tokens dropped from the verified-token cache to make room for others.", nil, nil)
	descCacheRejected = prometheus.NewDesc("keygate_token_cache_rejected_total",
		"Verified tokens a full verified-token cache did not admit: seen once, and no ended entry to replace.", nil, nil)
)

// cacheCollector reads a verifier's cache counters at scrape time.
type cacheCollector struct{ v CacheStatser }

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheHits, descCacheMisses, descCacheSize, descCacheCapacity,
		descCacheBytes, descCacheByteCapacity, descCacheEvictions, descCacheRejected} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.v.CacheStats()
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(descCacheMisses, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(descCacheSize, prometheus.GaugeValue, float64(st.Size))
	ch <- prometheus.MustNewConstMetric(descCacheCapacity, prometheus.GaugeValue, float64(st.Capacity))
	ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descCacheByteCapacity, prometheus.GaugeValue, float64(st.ByteCapacity))
	ch <- prometheus.MustNewConstMetric(descCacheEvictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(descCacheRejected, prometheus.CounterValue, float64(st.Rejected))
}

var _ prometheus.Collector = (*cacheCollector)(nil)

// unusable counts the skipped keys that were meant for signatures: not
// the encryption key every Keycloak realm publishes.
func unusable(skipped []jwks.SkippedKey) int {
	n := 0
	for _, k := range skipped {
		if !k.NotForSignatures {
			n++
		}
	}
	return n
}
