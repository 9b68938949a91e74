// Package grpcauth is gRPC server middleware that authenticates calls by
// their OAuth 2.0 bearer token with a [keygate.Verifier] and authorizes
// them by full method name with [authz.Requirement]s: package httpauth's
// counterpart for gRPC. It is the only package of keygate that imports
// google.golang.org/grpc.
//
// The token is read from the authorization metadata, as gRPC clients send
// it (grpc-go's oauth.TokenSource, grpcurl -H, Envoy): "Bearer <token>",
// the scheme in any case, with the syntax of RFC 6750 section 2.1
// ([httpauth.ParseAuthorization]). Refusals carry fixed messages, never
// the token or a value taken from it:
//
//	case                                             code              www-authenticate trailer
//	no token                                         Unauthenticated   Bearer realm="..."
//	malformed token, or one that fails verification  Unauthenticated   Bearer realm="...", error="invalid_token", ...
//	verified caller the rules refuse                 PermissionDenied  Bearer realm="...", error="insufficient_scope", ...
//	provider's keys unavailable                      Unavailable       (none)
//	two authorization values, malformed method name  InvalidArgument   (none)
//
// These are the HTTP answers of package httpauth (401, 403, 503, 400) in
// gRPC's terms; the trailer holds the RFC 6750 challenge an HTTP client
// would get in WWW-Authenticate.
//
// [Interceptor.Unary] and [Interceptor.Stream] are a grpc.UnaryServerInterceptor
// and a grpc.StreamServerInterceptor. [Interceptor.AuthFunc] has the shape of
// go-grpc-middleware's auth.AuthFunc, and [Interceptor.Authorize] that of its
// AuthFuncOverride, for servers that already chain that package's auth
// interceptor. Handlers read the caller with [FromContext], and guard single
// methods with [Interceptor.Require].
//
// Rules match full method names (/pkg.Service/Method, /pkg.Service/*,
// /**), first match wins, and calls no rule matches get the default,
// which denies unless set; see [Access] and [ParseYAML]. Health checking
// and server reflection are public only when [Config.ExemptHealth] and
// [Config.ExemptReflection] say so.
//
// A streaming call is authorized once, when it starts: a stream that
// outlives the token's exp goes on. Services with long streams should
// bound them (a deadline, or the Principal's ExpiresAt in the handler).
package grpcauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/internal/clip"
)

// Verifier checks a raw bearer token. [*keygate.Verifier] implements it.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*keygate.Principal, error)
}

// Config configures an [Interceptor].
type Config struct {
	// Verifier checks tokens. Required.
	Verifier Verifier

	// Policy decides what each method needs. Nil means every method
	// needs a valid token and nothing else, as in package httpauth; a
	// Policy whose rules match nothing denies by default.
	Policy *Policy

	// Realm is the realm of the www-authenticate challenge. Zero means
	// "keygate".
	Realm string

	// ExemptHealth lets every caller, with or without a token, call the
	// standard health checking service (grpc.health.v1.Health: Check,
	// Watch, List), so that load balancers and Kubernetes probes need
	// no token. Off by default.
	ExemptHealth bool

	// ExemptReflection lets every caller use server reflection
	// (grpc.reflection.v1 and v1alpha ServerReflection), as grpcurl and
	// other tools do. Off by default: reflection lists every method and
	// message of the server. Keeping it off does not make method names
	// secret: grpc-go answers a call to an unknown method with
	// Unimplemented, naming it, before any interceptor runs, while known
	// methods answer Unauthenticated.
	ExemptReflection bool

	// Logger receives one line per refused call: code, reason, method,
	// subject when known and the cause; never the token. Values are cut
	// to 256 bytes. Nil means no logging.
	Logger *slog.Logger
}

// Interceptor authenticates and authorizes gRPC calls. It is safe for
// concurrent use.
type Interceptor struct {
	cfg Config
}

// ConfigError reports a [Config] field that [New] refuses.
type ConfigError struct {
	// Field is the name of the field, such as "Realm".
	Field string
	// Problem says what is wrong and what to do.
	Problem string
}

func (e *ConfigError) Error() string { return "grpcauth: Config." + e.Field + " " + e.Problem }

// New checks cfg and returns an Interceptor. An error is a [*ConfigError].
func New(cfg Config) (*Interceptor, error) {
	if cfg.Verifier == nil {
		return nil, &ConfigError{"Verifier", "is nil; use a *keygate.Verifier"}
	}
	if cfg.Realm == "" {
		cfg.Realm = "keygate"
	}
	for _, c := range cfg.Realm {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return nil, &ConfigError{"Realm", fmt.Sprintf("%q must be printable ASCII without quotes or backslashes", cfg.Realm)}
		}
	}
	return &Interceptor{cfg: cfg}, nil
}

// NewContext returns a copy of ctx that carries p. It is
// [httpauth.NewContext]: both packages keep the caller under the same
// key.
func NewContext(ctx context.Context, p *keygate.Principal) context.Context {
	return httpauth.NewContext(ctx, p)
}

// FromContext returns the verified caller the interceptor put in ctx. It
// reports false for anonymous calls of public methods and for exempt
// services. It is [httpauth.FromContext]: code that reads the caller
// works the same behind the HTTP middleware and behind the gRPC
// interceptor.
func FromContext(ctx context.Context) (*keygate.Principal, bool) {
	return httpauth.FromContext(ctx)
}

// Unary is a grpc.UnaryServerInterceptor: it calls handler only for calls
// the rules allow, with the caller in the context. Install it with
// grpc.ChainUnaryInterceptor(in.Unary).
func (in *Interceptor) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := in.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is a grpc.StreamServerInterceptor: it calls handler only for
// calls the rules allow, with the caller in the stream's context. Install
// it with grpc.ChainStreamInterceptor(in.Stream).
func (in *Interceptor) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := in.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	if ctx == ss.Context() {
		return handler(srv, ss)
	}
	return handler(srv, &stream{ServerStream: ss, ctx: ctx})
}

// stream is a grpc.ServerStream with the caller in its context.
type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

// Authorize decides one call of fullMethod, such as "/shop.Orders/Get",
// from the metadata in ctx: it returns ctx with the verified caller
// added, ctx itself for an anonymous caller of a public method or an
// exempt service, or a status error to return to the client, as the
// package documentation lists. Before it returns a refusal it sets the
// www-authenticate trailer with grpc.SetTrailer, which works in a server
// handler's context and does nothing elsewhere.
//
// Its signature is that of go-grpc-middleware's
// auth.ServiceAuthFuncOverride.AuthFuncOverride.
func (in *Interceptor) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	return in.authorize(ctx, fullMethod)
}

// AuthFunc is Authorize for the method grpc.Method(ctx) names, the call
// being served. It has the shape of go-grpc-middleware's auth.AuthFunc,
// so that in.AuthFunc can be passed to its auth.UnaryServerInterceptor
// and auth.StreamServerInterceptor. Outside a gRPC server's context it
// refuses with Internal.
func (in *Interceptor) AuthFunc(ctx context.Context) (context.Context, error) {
	m, ok := grpc.Method(ctx)
	if !ok {
		err := status.Error(codes.Internal, "grpcauth: the context names no gRPC method")
		in.log(ctx, codes.Internal, "", "the context names no gRPC method", nil, nil)
		return nil, err
	}
	return in.authorize(ctx, m)
}

// exempt reports whether service is exempt from authentication by cfg.
func (in *Interceptor) exempt(service string) bool {
	switch service {
	case "grpc.health.v1.Health":
		return in.cfg.ExemptHealth
	case "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection":
		return in.cfg.ExemptReflection
	}
	return false
}

// refusal is a refused call, before it becomes a status error.
type refusal struct {
	code  codes.Code
	msg   string // fixed, sent to the client
	rfc   string // RFC 6750 error code, "" for none
	scope []string
	p     *keygate.Principal
	err   error // cause, for the log only
}

func (in *Interceptor) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	service, _, ok := splitMethod(fullMethod)
	if !ok {
		return nil, in.refuse(ctx, fullMethod, &refusal{code: codes.InvalidArgument, msg: "malformed method name"})
	}
	if in.exempt(service) {
		return ctx, nil
	}
	req := authz.Authenticated()
	if in.cfg.Policy != nil {
		req, _ = in.cfg.Policy.Match(fullMethod)
	}
	raw, r := token(ctx)
	if req.Public() {
		// A public method serves anonymous callers; a token that
		// verifies still identifies its caller, one that does not is
		// ignored, as in package httpauth.
		if r != nil || raw == "" {
			return ctx, nil
		}
		p, err := in.cfg.Verifier.Verify(ctx, raw)
		if err != nil {
			return ctx, nil
		}
		return NewContext(ctx, p), nil
	}
	if r != nil {
		return nil, in.refuse(ctx, fullMethod, r)
	}
	if raw == "" {
		return nil, in.refuse(ctx, fullMethod, &refusal{code: codes.Unauthenticated, msg: "a bearer token is required"})
	}
	p, err := in.cfg.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, in.refuse(ctx, fullMethod, verifyRefusal(err))
	}
	if !req.Allows(p) {
		return nil, in.refuse(ctx, fullMethod, forbidden(p, req))
	}
	return NewContext(ctx, p), nil
}

// token returns the bearer token of the authorization metadata in ctx,
// "" when there is none, or a refusal: InvalidArgument for more than one
// authorization value, Unauthenticated for a malformed bearer token.
func token(ctx context.Context) (string, *refusal) {
	switch vs := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vs) {
	case 0:
		return "", nil
	case 1:
		tok, err := httpauth.ParseAuthorization(vs[0])
		if err != nil {
			return "", &refusal{code: codes.Unauthenticated, msg: "malformed token", rfc: "invalid_token", err: err}
		}
		return tok, nil
	default:
		return "", &refusal{code: codes.InvalidArgument, msg: "more than one authorization value"}
	}
}

func verifyRefusal(err error) *refusal {
	if errors.Is(err, keygate.ErrKeysUnavailable) {
		return &refusal{code: codes.Unavailable, msg: "the token cannot be checked now; retry later", err: err}
	}
	msg := "invalid token"
	var ke *keygate.Error
	if errors.As(err, &ke) {
		msg = ke.Description()
	}
	return &refusal{code: codes.Unauthenticated, msg: msg, rfc: "invalid_token", err: err}
}

func forbidden(p *keygate.Principal, req authz.Requirement) *refusal {
	return &refusal{
		code:  codes.PermissionDenied,
		msg:   "the token does not grant access to this method",
		rfc:   "insufficient_scope",
		scope: req.Scopes(),
		p:     p,
		err:   fmt.Errorf("grpcauth: requirement %s not met", req),
	}
}

// Require checks that the caller in ctx, as [FromContext] returns it,
// satisfies req: a guard for one handler, like Spring's @PreAuthorize,
// for rules finer than the method rules. It returns the caller, or the
// status error the handler returns as it is: Unauthenticated when ctx
// has no caller, PermissionDenied when req refuses the caller (both with
// the www-authenticate trailer set, as the interceptor does):
//
//	func (s *orders) Delete(ctx context.Context, r *pb.DeleteRequest) (*pb.Empty, error) {
//		if _, err := s.auth.Require(ctx, authz.Role("admin")); err != nil {
//			return nil, err
//		}
//		...
//	}
//
// The caller is put in ctx by [Interceptor.Unary] or [Interceptor.Stream];
// Require itself reads no metadata. A [authz.PermitAll] requirement lets
// anonymous callers through and returns a nil caller for them.
func (in *Interceptor) Require(ctx context.Context, req authz.Requirement) (*keygate.Principal, error) {
	p, ok := FromContext(ctx)
	if req.Allows(p) {
		return p, nil
	}
	m, _ := grpc.Method(ctx)
	if !ok {
		return nil, in.refuse(ctx, m, &refusal{code: codes.Unauthenticated, msg: "a bearer token is required"})
	}
	return nil, in.refuse(ctx, m, forbidden(p, req))
}

// RequireRole is Require(ctx, authz.Role(role)).
func (in *Interceptor) RequireRole(ctx context.Context, role string) (*keygate.Principal, error) {
	return in.Require(ctx, authz.Role(role))
}

// RequireScope is Require(ctx, authz.Scope(scope)).
func (in *Interceptor) RequireScope(ctx context.Context, scope string) (*keygate.Principal, error) {
	return in.Require(ctx, authz.Scope(scope))
}

// refuse logs r, sets the www-authenticate trailer for Unauthenticated
// and PermissionDenied, and returns the status error.
func (in *Interceptor) refuse(ctx context.Context, method string, r *refusal) error {
	in.log(ctx, r.code, method, r.msg, r.p, r.err)
	if r.code == codes.Unauthenticated || r.code == codes.PermissionDenied {
		md := metadata.Pairs("www-authenticate", httpauth.Challenge(&httpauth.Error{
			Code: r.rfc, Description: r.msg, Scope: r.scope, Realm: in.cfg.Realm,
		}))
		// The context of a unary or streaming call carries its
		// transport stream; outside a call (Authorize called directly)
		// this fails, and the status error still tells the code.
		_ = grpc.SetTrailer(ctx, md)
	}
	return status.Error(r.code, r.msg)
}

func (in *Interceptor) log(ctx context.Context, code codes.Code, method, reason string, p *keygate.Principal, err error) {
	if in.cfg.Logger == nil {
		return
	}
	attrs := []any{"code", code.String(), "reason", reason, "method", logValue(method)}
	if p != nil {
		attrs = append(attrs, "sub", logValue(p.Subject))
	}
	if err != nil {
		attrs = append(attrs, "error", logValue(err.Error()))
	}
	in.cfg.Logger.Log(ctx, slog.LevelInfo, "call refused", attrs...)
}

// logValue cuts s, a value the caller chose, to clip.Log bytes with a
// note of its full length.
func logValue(s string) string { return clip.String(s, clip.Log) }
