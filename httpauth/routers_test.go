package httpauth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/mux"

	"github.com/keygate/keygate/httpauth"
)

// TestRouters runs the middleware in the three routers people use, each
// with a route parameter, a public route and a guarded handler.
func TestRouters(t *testing.T) {
	e := newEnv(t)
	m, err := httpauth.New(httpauth.Config{Verifier: e.verifier, Policy: e.policy})
	if err != nil {
		t.Fatal(err)
	}
	order := func(id func(*http.Request) string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := httpauth.FromContext(r.Context())
			w.Write([]byte(p.Username + " " + id(r)))
		})
	}

	std := http.NewServeMux()
	std.Handle("GET /api/orders/{id}", order(func(r *http.Request) string { return r.PathValue("id") }))
	std.Handle("GET /public/ping", echo)
	std.Handle("GET /admin/stats", m.RequireRole("admin")(echo))

	c := chi.NewRouter()
	c.Use(m.Wrap)
	c.Get("/api/orders/{id}", order(func(r *http.Request) string { return chi.URLParam(r, "id") }).ServeHTTP)
	c.Get("/public/ping", echo)
	c.With(m.RequireRole("admin")).Get("/admin/stats", echo)

	g := mux.NewRouter()
	g.Use(m.Wrap)
	g.Handle("/api/orders/{id}", order(func(r *http.Request) string { return mux.Vars(r)["id"] })).Methods("GET")
	g.Handle("/public/ping", echo).Methods("GET")
	g.Handle("/admin/stats", m.RequireRole("admin")(echo)).Methods("GET")

	routers := map[string]http.Handler{"ServeMux": m.Wrap(std), "chi": c, "gorilla/mux": g}
	alice := e.token(t, "alice", nil)
	admin := e.token(t, "admin", nil)
	tests := []struct {
		target, tok string
		status      int
		body        string
	}{
		{"/api/orders/42", alice, 200, "alice 42"},
		{"/api/orders/42", "", 401, ""},
		{"/public/ping", "", 200, "anonymous"},
		{"/admin/stats", alice, 403, ""},
		{"/admin/stats", admin, 200, "admin"},
	}
	for name, h := range routers {
		for _, tt := range tests {
			r := httptest.NewRequest("GET", tt.target, nil)
			if tt.tok != "" {
				r.Header.Set("Authorization", "Bearer "+tt.tok)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status || tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("%s: GET %s = %d %q; want %d %q", name, tt.target, w.Code, w.Body, tt.status, tt.body)
			}
		}
	}
}
