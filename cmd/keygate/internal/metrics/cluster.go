package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate/keygate/redisstore"
)

// revocationMetrics are the series of revocation, registered by
// [Metrics.WatchRevocations].
type revocationMetrics struct {
	recorded *prometheus.CounterVec
	applied  prometheus.Counter
	lag      prometheus.Histogram
}

// WatchRevocations registers the revocation series. stats, when not nil,
// reports the Redis-backed store's counters at scrape time.
func (m *Metrics) WatchRevocations(stats func() redisstore.RevocationStats) {
	r := &revocationMetrics{
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_revocations_recorded_total",
			Help: "Revocations this instance received, by source (backchannel_logout, admin) and result (ok, local_only, failed).",
		}, []string{"source", "result"}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keygate_revocations_applied_total",
			Help: "Revocations received from other instances through Redis and applied here.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keygate_revocation_propagation_seconds",
			Help:    "From a revocation's recording on another instance to its application here (clock skew included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	m.reg.MustRegister(r.recorded, r.applied, r.lag)
	if stats != nil {
		m.reg.MustRegister(&revocationCollector{stats: stats})
	}
	m.revocations = r
}

// RevocationRecorded counts a revocation this instance received; result
// is ok, local_only (not shared with the cluster) or failed.
func (m *Metrics) RevocationRecorded(source, result string) {
	if m.revocations != nil {
		m.revocations.recorded.WithLabelValues(source, result).Inc()
	}
}

// RevocationApplied records a revocation from another instance, lag after
// it was recorded there.
func (m *Metrics) RevocationApplied(lag time.Duration) {
	if m.revocations != nil {
		m.revocations.applied.Inc()
		m.revocations.lag.Observe(max(lag, 0).Seconds())
	}
}

var (
	descRevResyncs = prometheus.NewDesc("keygate_revocation_resyncs_total",
		"Full reads of the revocation set from Redis: at start and after each reconnect.", nil, nil)
	descRevErrors = prometheus.NewDesc("keygate_revocation_redis_errors_total",
		"Failed Redis calls of the revocation store; revocations stay local until Redis is back.", nil, nil)
	descRevPending = prometheus.NewDesc("keygate_revocations_pending",
		"Revocations recorded here while Redis was unreachable, waiting to be sent.", nil, nil)
)

// revocationCollector reads the Redis-backed store's counters.
type revocationCollector struct {
	stats func() redisstore.RevocationStats
}

func (c *revocationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRevResyncs
	ch <- descRevErrors
	ch <- descRevPending
}

func (c *revocationCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(descRevResyncs, prometheus.CounterValue, float64(st.Resyncs))
	ch <- prometheus.MustNewConstMetric(descRevErrors, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(descRevPending, prometheus.GaugeValue, float64(st.Pending))
}
