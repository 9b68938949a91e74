package keycloaktest

import (
	"bytes"
	"net/http"
	"strconv"
	"time"
)

// An Endpoint identifies one of the endpoints a [Server] serves, for
// [Server.SetFault] and [Server.Requests].
type Endpoint int

// The endpoints of a Server, relative to its issuer.
const (
	EndpointDiscovery Endpoint = iota + 1 // /.well-known/openid-configuration
	EndpointCerts                         // /protocol/openid-connect/certs (the JWK set)
	EndpointToken                         // /protocol/openid-connect/token
)

// String returns the endpoint's name: "discovery", "certs" or "token".
func (e Endpoint) String() string {
	switch e {
	case EndpointDiscovery:
		return "discovery"
	case EndpointCerts:
		return "certs"
	case EndpointToken:
		return "token"
	}
	return "Endpoint(" + strconv.Itoa(int(e)) + ")"
}

// A Fault describes how an endpoint misbehaves; see [Server.SetFault].
//
// Its effects apply in order: Hang or Delay, then Drop, then the response
// given by Status, Header and Body. If Status and Body are both zero, the
// endpoint answers normally after the delay. The zero Fault has no effect.
type Fault struct {
	// Status is the status code of the fault response. Zero means 200 if
	// Body is set.
	Status int

	// Body is the body of the fault response, typically garbage. It is sent
	// as application/json unless Header sets a Content-Type.
	Body []byte

	// Header is added to the fault response. It is ignored when the
	// endpoint answers normally.
	Header http.Header

	// Delay postpones the response. The request ends early, without a
	// response, when the client gives up or the server is closed.
	Delay time.Duration

	// Hang never responds: the request ends only when the client gives up
	// or the server is closed.
	Hang bool

	// Drop closes the connection without a response. Note that Go's
	// http.Transport silently retries an idempotent request once if a
	// reused connection closes this way, so one client call may make two
	// requests.
	Drop bool

	// Count limits the fault to the next Count requests, after which the
	// endpoint recovers. Zero means until SetFault is called again.
	Count int
}

type faultState struct {
	f         Fault
	remaining int // requests left; 0 for unlimited
}

// SetFault makes endpoint e misbehave as f describes from the next request
// on; f == nil restores normal service. The Server keeps a copy of f. For
// example, SetFault(EndpointCerts, &Fault{Status: 503}) takes the JWK set
// down without changing the server's address.
func (s *Server) SetFault(e Endpoint, f *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.faults, e)
		return
	}
	fs := &faultState{f: *f, remaining: f.Count}
	fs.f.Header = f.Header.Clone()
	fs.f.Body = bytes.Clone(f.Body)
	s.faults[e] = fs
}

// Requests returns the number of requests endpoint e has received,
// including those answered by a fault, with 304 Not Modified or with an
// error.
func (s *Server) Requests(e Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[e]
}

// takeFaultLocked returns the fault for a request to e, or nil, consuming
// one use of a counted fault. s.mu must be held.
func (s *Server) takeFaultLocked(e Endpoint) *Fault {
	fs := s.faults[e]
	if fs == nil {
		return nil
	}
	f := fs.f
	if fs.remaining > 0 {
		if fs.remaining--; fs.remaining == 0 {
			delete(s.faults, e)
		}
	}
	return &f
}

// applyFault carries out f for a request and reports whether it produced
// the response, so that the endpoint must not run. It does not return if
// the request is to get no response.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	switch {
	case f.Hang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		abort()
	case f.Delay > 0:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			abort()
		case <-s.closing:
			abort()
		}
	}
	if f.Drop {
		abort()
	}
	if f.Status == 0 && f.Body == nil {
		return false
	}
	h := w.Header()
	for k, v := range f.Header {
		h[k] = v
	}
	if f.Body != nil && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(f.Body)
	return true
}

// abort ends the current request without a response: net/http closes the
// connection (or resets the HTTP/2 stream) and logs nothing.
func abort() { panic(http.ErrAbortHandler) }
