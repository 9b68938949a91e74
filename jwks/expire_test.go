package jwks

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

type hookHandler struct{ fn func(slog.Record) }

func (h hookHandler) Enabled(context.Context, slog.Level) bool      { return true }
func (h hookHandler) Handle(_ context.Context, r slog.Record) error { h.fn(r); return nil }
func (h hookHandler) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h hookHandler) WithGroup(string) slog.Handler                 { return h }

// A failed fetch past MaxStale expires the old key set, but never a set
// installed while it checked the old one's age.
func TestExpireKeepsSetInstalledMeanwhile(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	t.Cleanup(down.Close)

	var s *Source
	a, b := StaticSet(&Key{ID: "a"}), StaticSet(&Key{ID: "b"})
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).UnixNano())
	// armed is set when the failure is logged; the next reading of the
	// clock, the age check of expire, then installs b, as a concurrent
	// successful fetch would.
	var armed atomic.Bool
	clock := func() time.Time {
		if armed.CompareAndSwap(true, false) {
			s.installAt(a, b, time.Unix(0, now.Load()), "provider")
		}
		return time.Unix(0, now.Load())
	}
	logger := slog.New(hookHandler{func(r slog.Record) {
		if r.Message == "jwks refresh failed" {
			armed.Store(true)
		}
	}})
	s, err := NewSource(Config{URL: down.URL, Now: clock, MaxStale: time.Hour, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.installAt(nil, a, time.Unix(0, now.Load()), "provider")
	now.Add(int64(2 * time.Hour))

	if err := s.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh() = nil; want HTTP 503")
	}
	if got := s.Keys(); got != b {
		t.Errorf("Keys() = %v; want the set installed during the failed fetch", got)
	}
	if b.keys[0].Retired() {
		t.Error("key of the set installed meanwhile is retired")
	}
	if _, err := s.Key(context.Background(), "b"); err != nil {
		t.Errorf(`Key("b") = %v`, err)
	}
}
