//go:build !keygate_noextauthz

package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/cmd/keygate/internal/config"
	"github.com/keygate/keygate/httpauth"
)

// extAuthz answers Envoy's external authorization checks
// (envoy.service.auth.v3.Authorization) with the decision of
// forward-auth: each CheckRequest is translated into the forward-auth
// subrequest it stands for ([extAuthzRequest]) and decided by
// [Server.checkSubrequest], so that the two modes give the same answer
// for the same request.
// extAuthzMaxStreams and extAuthzMaxMessage bound one ext_authz
// connection: its concurrent checks, and the size of one CheckRequest
// (Envoy sends headers only, unless with_request_body is configured,
// which keygate does not need).
const (
	extAuthzMaxStreams = 1024
	extAuthzMaxMessage = 1 << 20
)

// extAuthzBuilt reports whether this build serves ext_authz: built with
// the tag keygate_noextauthz, keygate links neither gRPC nor Envoy's
// protobufs (see extauthz_off.go).
const extAuthzBuilt = true

// newExtAuthzServer returns the gRPC server of the ext_authz listener,
// its Authorization service registered. Envoy holds a few long-lived
// HTTP/2 connections and sends every check over them: a full listener
// waits rather than closing one (gRPC reports no connection states to
// tell a busy one), and each connection gets bounded streams and
// messages instead.
func (s *Server) newExtAuthzServer() extAuthzServer {
	t := s.cfg.Timeouts
	srv := grpc.NewServer(
		grpc.ConnectionTimeout(t.ReadHeader),
		grpc.MaxConcurrentStreams(extAuthzMaxStreams),
		grpc.MaxRecvMsgSize(extAuthzMaxMessage),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: t.Idle}),
	)
	authv3.RegisterAuthorizationServer(srv, &extAuthz{s: s, remove: s.headersToRemove()})
	return grpcServer{srv}
}

// grpcServer is a *grpc.Server whose Serve, once stopped, returns nil.
type grpcServer struct{ *grpc.Server }

func (g grpcServer) Serve(ln net.Listener) error {
	if err := g.Server.Serve(ln); !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
	s *Server
	// remove is the headers_to_remove of every allowed answer, less the
	// identity headers the answer sets: see [Server.headersToRemove].
	remove []string
}

// Check implements authv3.AuthorizationServer. A request is allowed with
// an OkHttpResponse that sets the identity headers and removes every
// other header keygate owns or strips; it is refused with a
// DeniedHttpResponse that carries forward-auth's status (400, 401, 403,
// 503), WWW-Authenticate or Retry-After, and JSON body. The gRPC call
// itself never fails: a CheckRequest without HTTP attributes is denied
// with 400 like any malformed request.
func (x *extAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r, e := extAuthzRequest(ctx, req)
	var p *keygate.Principal
	if e != nil {
		x.s.record(ctx, modeExtAuthz, "", "", e, 0)
	} else {
		p, e = x.s.checkSubrequest(r, modeExtAuthz)
	}
	if e != nil {
		return x.denied(e), nil
	}
	h := make(http.Header)
	if p != nil {
		x.s.headers.set(h, p)
	}
	ok := &authv3.OkHttpResponse{HeadersToRemove: make([]string, 0, len(x.remove))}
	for _, name := range x.remove {
		if h[http.CanonicalHeaderKey(name)] == nil {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
		}
	}
	for _, k := range sortedKeys(h) {
		for _, v := range h[k] {
			ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: v},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}, nil
}

// denied renders e as forward-auth writes it, through
// httpauth.WriteError, into a DeniedHttpResponse.
func (x *extAuthz) denied(e *httpauth.Error) *authv3.CheckResponse {
	e.Realm = x.s.cfg.Realm
	w := &recorder{header: http.Header{"Cache-Control": {"no-store"}}}
	httpauth.WriteError(w, new(http.Request), e)
	d := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(w.status)},
		Body:   w.body.String(),
	}
	for _, k := range sortedKeys(w.header) {
		for _, v := range w.header[k] {
			d.Headers = append(d.Headers, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: v},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
	}
	code := codes.PermissionDenied
	switch w.status {
	case http.StatusUnauthorized:
		code = codes.Unauthenticated
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	case http.StatusServiceUnavailable:
		code = codes.Unavailable
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code), Message: e.Description},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: d},
	}
}

// extAuthzRequest translates a CheckRequest into the forward-auth
// subrequest it stands for: the client's headers as Envoy passed them,
// with X-Forwarded-Method and X-Forwarded-Uri set from the request's
// method and path (the request target as sent, query included), for
// [Server.checkSubrequest]. Envoy's header keys are lower case; they are
// canonicalized. A client's forward-auth method and URI inputs
// (x-forwarded-uri, x-original-uri and their method headers, in any
// spelling) are refused as spoofed: here the inputs come from the
// attributes, never from the client. X-Forwarded-For and -Proto pass as
// Envoy set them.
//
// The headers come from header_map when Envoy sends raw headers
// (encode_raw_headers: true), repeated names kept apart, else from the
// headers map, where Envoy has joined repeated names with ",": there an
// Authorization value with a comma is split back, so that two tokens are
// a malformed request (400) as in forward-auth. Pseudo-headers are
// dropped after checking that :method and :path agree with the
// attributes. A fragment, which Envoy never sends, is kept on the URI
// and so refused.
func extAuthzRequest(ctx context.Context, req *authv3.CheckRequest) (*http.Request, *httpauth.Error) {
	hr := req.GetAttributes().GetRequest().GetHttp()
	if hr == nil {
		return nil, badRequest("the check request has no HTTP attributes")
	}
	h := make(http.Header)
	add := func(k, v string) *httpauth.Error {
		if strings.HasPrefix(k, ":") {
			want := map[string]string{":method": hr.GetMethod(), ":path": hr.GetPath()}[k]
			if want != "" && v != want {
				return badRequest("the check request's " + k + " disagrees with its attributes")
			}
			return nil
		}
		ck := http.CanonicalHeaderKey(k)
		switch config.NormalizeHeaderName(k) {
		case "x-forwarded-method", "x-forwarded-uri", "x-original-method", "x-original-uri":
			// Here the forward-auth inputs come from the attributes,
			// so one from the client is spoofed, in any spelling.
			return badRequest(spoofedHeader)
		}
		h[ck] = append(h[ck], v)
		return nil
	}
	if raw := hr.GetHeaderMap().GetHeaders(); len(raw) > 0 {
		for _, hv := range raw {
			v := string(hv.GetRawValue())
			if v == "" {
				v = hv.GetValue()
			}
			if e := add(hv.GetKey(), v); e != nil {
				return nil, e
			}
		}
	} else {
		for _, k := range sortedKeys(hr.GetHeaders()) {
			v := hr.GetHeaders()[k]
			if http.CanonicalHeaderKey(k) == "Authorization" && joinedBearer(v) {
				for part := range strings.SplitSeq(v, ",") {
					h["Authorization"] = append(h["Authorization"], strings.TrimLeft(part, " \t"))
				}
				continue
			}
			if e := add(k, v); e != nil {
				return nil, e
			}
		}
	}
	uri := hr.GetPath()
	if f := hr.GetFragment(); f != "" {
		uri += "#" + f
	}
	h["X-Forwarded-Method"] = []string{hr.GetMethod()}
	h["X-Forwarded-Uri"] = []string{uri}
	if s := hr.GetScheme(); s != "" && h["X-Forwarded-Proto"] == nil {
		h["X-Forwarded-Proto"] = []string{s}
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return nil, badRequest("the check request cannot be read")
	}
	r.Header = h
	return r, nil
}

// joinedBearer reports whether v, an Authorization value from Envoy's
// headers map, joins several values with "," and one after the first is
// a Bearer credential: then it is split back, so that two credentials
// are a malformed request as in forward-auth. A single value with commas
// of its own (Digest, AWS SigV4) stays whole, as forward-auth reads it.
func joinedBearer(v string) bool {
	_, rest, found := strings.Cut(v, ",")
	for found {
		var part string
		part, rest, found = strings.Cut(rest, ",")
		scheme, _, _ := strings.Cut(strings.TrimLeft(part, " \t"), " ")
		if strings.EqualFold(scheme, "Bearer") {
			return true
		}
	}
	return false
}

// headersToRemove returns the headers_to_remove of allowed ext_authz
// answers: every identity header name (configured and default), every
// strip_headers name and the forward-auth method and URI inputs, in
// lower case as Envoy compares them, in every spelling of '-' and '_'
// (see spellings). checkSubrequest refuses the '_' spellings it sees,
// but Envoy may not send every header (allowed_headers,
// headersToExtAuth): the removal does not rely on it. X-Forwarded-For and -Proto are
// Envoy's own (set before its filters run) and stay; a client's
// X-Forwarded-Host goes with the strip list (a route's
// append_x_forwarded_host adds Envoy's after the filters). Authorization
// is removed unless forward_token is set, as proxy mode does.
func (s *Server) headersToRemove() []string {
	var names []string
	addName := func(n string) {
		for _, v := range spellings(strings.ToLower(n)) {
			if !slices.Contains(names, v) {
				names = append(names, v)
			}
		}
	}
	for _, n := range s.headers.names() {
		if n != "" {
			addName(n)
		}
	}
	for _, list := range [][]string{config.DefaultIdentityHeaderNames(), s.cfg.StripHeaders, {"X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Method", "X-Original-Uri"}} {
		for _, n := range list {
			addName(n)
		}
	}
	if !s.cfg.ForwardToken {
		names = append(names, "authorization")
	}
	return names
}

// spellings returns n with each '-' or '_' written either way: every name
// an upstream that reads '_' as '-' (CGI, WSGI, Rack, PHP) takes for n.
// Envoy compares header names in lower case. Header names have a few
// separators, so the list stays short (2^4 for X-Auth-Request-User).
func spellings(n string) []string {
	out := []string{""}
	for _, c := range []byte(n) {
		if c != '-' && c != '_' {
			for i := range out {
				out[i] += string(c)
			}
			continue
		}
		next := make([]string, 0, 2*len(out))
		for _, o := range out {
			next = append(next, o+"-", o+"_")
		}
		out = next
	}
	return out
}

// recorder is the least http.ResponseWriter that captures what
// httpauth.WriteError writes.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
