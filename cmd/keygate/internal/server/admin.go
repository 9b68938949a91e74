package server

import (
	"net/http"
	"time"
)

// newAdminHandler serves the admin listener: /healthz (the process is
// alive), /readyz (keys are loaded) and /metrics (Prometheus).
func (s *Server) newAdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", s.metrics.Handler())
	if s.revocations != nil && s.cfg.Revocation.AdminToken != "" {
		mux.HandleFunc("/revocations", s.serveRevocations)
	}
	return mux
}

// readiness is the body of /readyz.
type readiness struct {
	Ready bool       `json:"ready"`
	JWKS  keysStatus `json:"jwks"`
	// Redis is reported in cluster mode; its state never makes the
	// instance unready: keys and revocations are held locally.
	Redis *redisStatus `json:"redis,omitempty"`
}

type keysStatus struct {
	URL         string     `json:"url,omitempty"`
	KeyIDs      []string   `json:"key_ids"`
	Skipped     int        `json:"skipped_keys"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	AgeSeconds  float64    `json:"age_seconds"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Fetches     uint64     `json:"fetches"`
	Failures    uint64     `json:"failures"`
	KidFetches  uint64     `json:"kid_fetches"`
	// Shared is the shared key cache's part, in cluster mode only.
	Shared *sharedKeysStatus `json:"shared,omitempty"`
}

type sharedKeysStatus struct {
	ProviderFetches uint64 `json:"provider_fetches"`
	Hits            uint64 `json:"hits"`
	LeaseWins       uint64 `json:"lease_wins"`
	AuthFailures    uint64 `json:"auth_failures"`
	Errors          uint64 `json:"errors"`
	LastError       string `json:"last_error,omitempty"`
}

// serveReady answers 200 when a usable key set is held and 503 otherwise,
// with the key set's status either way.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	st := s.keys.Status()
	ks := keysStatus{
		URL: st.URL, KeyIDs: st.KeyIDs, Skipped: len(st.Skipped),
		AgeSeconds: st.Age(time.Now()).Seconds(),
		Fetches:    st.Fetches, Failures: st.Failures, KidFetches: st.KidFetches,
	}
	if ks.KeyIDs == nil {
		ks.KeyIDs = []string{}
	}
	if !st.LastSuccess.IsZero() {
		t := st.LastSuccess.UTC()
		ks.LastSuccess = &t
	}
	if st.LastError != nil {
		ks.LastError = st.LastError.Error()
		t := st.LastErrorAt.UTC()
		ks.LastErrorAt = &t
	}
	if s.cluster.redis != nil {
		ks.Shared = &sharedKeysStatus{ProviderFetches: st.ProviderFetches, Hits: st.SharedHits,
			LeaseWins: st.LeaseWins, AuthFailures: st.SharedAuthFailures, Errors: st.SharedErrors}
		if st.SharedError != nil {
			ks.Shared.LastError = clipValue(st.SharedError.Error())
		}
	}
	status := http.StatusOK
	if !st.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, readiness{Ready: st.Ready, JWKS: ks, Redis: s.pingRedis(r.Context())})
}
