package grpcauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/grpcauth"
	"github.com/keygate/keygate/keycloaktest"
)

// callCase is one call and the answer it must get.
type callCase struct {
	name   string
	method string   // full method name
	auth   []string // authorization metadata values
	code   codes.Code
	msg    string // status message, or the reply for OK
	// challenge is the www-authenticate trailer wanted, "" for none.
	challenge string
}

// callCases are the outcomes of the interceptor, for env e.
func callCases(e *env, t testing.TB) []callCase {
	alice, admin := e.token(t, "alice"), e.token(t, "admin")
	expired := e.idp.MustMint(t, keycloaktest.Token{Client: "cli", User: "alice", Claims: map[string]any{"exp": 1000}})
	const bare = `Bearer realm="shop"`
	return []callCase{
		{name: "valid token", method: "/keygate.test.Echo/Say", auth: []string{"Bearer " + alice}, code: codes.OK, msg: "alice:hi"},
		{name: "scheme in any case", method: "/keygate.test.Echo/Say", auth: []string{"bEaReR " + alice}, code: codes.OK, msg: "alice:hi"},
		{name: "no token", method: "/keygate.test.Echo/Say", code: codes.Unauthenticated, msg: "a bearer token is required", challenge: bare},
		{name: "another scheme", method: "/keygate.test.Echo/Say", auth: []string{"Basic YWxpY2U6YWxpY2U="}, code: codes.Unauthenticated, msg: "a bearer token is required", challenge: bare},
		{name: "Bearer without token", method: "/keygate.test.Echo/Say", auth: []string{"Bearer"}, code: codes.Unauthenticated, msg: "malformed token",
			challenge: `Bearer realm="shop", error="invalid_token", error_description="malformed token"`},
		{name: "token not b64token", method: "/keygate.test.Echo/Say", auth: []string{"Bearer a b"}, code: codes.Unauthenticated, msg: "malformed token",
			challenge: `Bearer realm="shop", error="invalid_token", error_description="malformed token"`},
		{name: "expired token", method: "/keygate.test.Echo/Say", auth: []string{"Bearer " + expired}, code: codes.Unauthenticated, msg: "token expired",
			challenge: `Bearer realm="shop", error="invalid_token", error_description="token expired"`},
		{name: "garbage token", method: "/keygate.test.Echo/Say", auth: []string{"Bearer abc.def.ghi"}, code: codes.Unauthenticated, msg: "malformed token",
			challenge: `Bearer realm="shop", error="invalid_token", error_description="malformed token"`},
		{name: "two authorization values", method: "/keygate.test.Echo/Say", auth: []string{"Bearer " + alice, "Bearer " + admin}, code: codes.InvalidArgument, msg: "more than one authorization value"},
		{name: "role refused", method: "/keygate.test.Admin/Purge", auth: []string{"Bearer " + alice}, code: codes.PermissionDenied, msg: "the token does not grant access to this method",
			challenge: `Bearer realm="shop", error="insufficient_scope", error_description="the token does not grant access to this method"`},
		{name: "role granted", method: "/keygate.test.Admin/Purge", auth: []string{"Bearer " + admin}, code: codes.OK, msg: "admin:hi"},
		{name: "no rule: default denies", method: "/keygate.test.Other/Say", auth: []string{"Bearer " + admin}, code: codes.PermissionDenied, msg: "the token does not grant access to this method",
			challenge: `Bearer realm="shop", error="insufficient_scope", error_description="the token does not grant access to this method"`},
		{name: "no rule, no token", method: "/keygate.test.Other/Say", code: codes.Unauthenticated, msg: "a bearer token is required", challenge: bare},
		{name: "public, anonymous", method: "/keygate.test.Echo/Public", code: codes.OK, msg: "anonymous:hi"},
		{name: "public, bad token ignored", method: "/keygate.test.Echo/Public", auth: []string{"Bearer " + expired}, code: codes.OK, msg: "anonymous:hi"},
		{name: "public, valid token identifies", method: "/keygate.test.Echo/Public", auth: []string{"Bearer " + alice}, code: codes.OK, msg: "alice:hi"},
		{name: "handler guard refuses", method: "/keygate.test.Echo/Delete", auth: []string{"Bearer " + alice}, code: codes.PermissionDenied, msg: "the token does not grant access to this method",
			challenge: `Bearer realm="shop", error="insufficient_scope", error_description="the token does not grant access to this method"`},
		{name: "handler guard allows", method: "/keygate.test.Echo/Delete", auth: []string{"Bearer " + admin}, code: codes.OK, msg: "deleted hi"},
	}
}

func outgoing(auth []string) context.Context {
	ctx := context.Background()
	for _, a := range auth {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", a)
	}
	return ctx
}

func (c callCase) run(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	var trailer metadata.MD
	out := new(wrapperspb.StringValue)
	err := conn.Invoke(outgoing(c.auth), c.method, wrapperspb.String("hi"), out, grpc.Trailer(&trailer))
	c.check(t, err, out.GetValue(), trailer)
}

func (c callCase) check(t *testing.T, err error, reply string, trailer metadata.MD) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != c.code {
		t.Fatalf("%s: code = %v (%q); want %v", c.method, st.Code(), st.Message(), c.code)
	}
	got := st.Message()
	if c.code == codes.OK {
		got = reply
	}
	if got != c.msg {
		t.Errorf("%s: message = %q; want %q", c.method, got, c.msg)
	}
	var ch string
	if vs := trailer.Get("www-authenticate"); len(vs) > 0 {
		ch = vs[0]
	}
	if ch != c.challenge {
		t.Errorf("%s: www-authenticate = %q; want %q", c.method, ch, c.challenge)
	}
	for _, a := range c.auth {
		if tok := strings.TrimPrefix(a, "Bearer "); len(tok) > 8 && strings.Contains(st.Message(), tok) {
			t.Errorf("%s: the status message quotes the token", c.method)
		}
	}
}

func TestUnary(t *testing.T) {
	e := newEnv(t)
	in, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier, Policy: e.policy, Realm: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	cases := callCases(e, t)
	for _, tr := range transports {
		conn := tr.new(t, in, interceptorOpts(in)...)
		for _, c := range cases {
			t.Run(tr.name+"/"+c.name, func(t *testing.T) { c.run(t, conn) })
		}
	}
}

// chat opens the Chat stream, sends two messages and returns what came
// back, the trailer and the final status.
func chat(ctx context.Context, conn *grpc.ClientConn) ([]string, metadata.MD, error) {
	cs, err := conn.NewStream(ctx, chatDesc, "/keygate.test.Echo/Chat")
	if err != nil {
		return nil, nil, err
	}
	var got []string
	for _, m := range []string{"a", "b"} {
		if err := cs.SendMsg(wrapperspb.String(m)); err != nil {
			break // the status comes with RecvMsg
		}
	}
	cs.CloseSend()
	for {
		out := new(wrapperspb.StringValue)
		if err := cs.RecvMsg(out); err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return got, cs.Trailer(), err
		}
		got = append(got, out.GetValue())
	}
}

func TestStream(t *testing.T) {
	e := newEnv(t)
	in, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier, Policy: e.policy, Realm: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	alice := e.token(t, "alice")
	for _, tr := range transports {
		conn := tr.new(t, in, interceptorOpts(in)...)
		t.Run(tr.name, func(t *testing.T) {
			got, _, err := chat(outgoing([]string{"Bearer " + alice}), conn)
			if err != nil || strings.Join(got, ",") != "alice:a,alice:b" {
				t.Errorf("Chat as alice = %q, %v; want [alice:a alice:b], nil", got, err)
			}
			for _, c := range []callCase{
				{method: "Chat", code: codes.Unauthenticated, msg: "a bearer token is required", challenge: `Bearer realm="shop"`},
				{method: "Chat", auth: []string{"Bearer x y"}, code: codes.Unauthenticated, msg: "malformed token",
					challenge: `Bearer realm="shop", error="invalid_token", error_description="malformed token"`},
				{method: "Chat", auth: []string{"Bearer " + alice, "Bearer " + alice}, code: codes.InvalidArgument, msg: "more than one authorization value"},
			} {
				got, trailer, err := chat(outgoing(c.auth), conn)
				if len(got) > 0 {
					t.Errorf("Chat %v: the handler answered %q", c.auth, got)
				}
				c.check(t, err, "", trailer)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	down := verifierFunc(func(context.Context, string) (*keygate.Principal, error) {
		return nil, &keygate.Error{Kind: keygate.ErrKeysUnavailable, Err: errors.New("connection refused")}
	})
	in, err := grpcauth.New(grpcauth.Config{Verifier: down})
	if err != nil {
		t.Fatal(err)
	}
	conn := transports[1].new(t, in, interceptorOpts(in)...)
	callCase{method: "/keygate.test.Echo/Say", auth: []string{"Bearer abc"}, code: codes.Unavailable,
		msg: "the token cannot be checked now; retry later"}.run(t, conn)
	got, _, err := chat(outgoing([]string{"Bearer abc"}), conn)
	if status.Code(err) != codes.Unavailable || len(got) > 0 {
		t.Errorf("Chat with keys down = %q, %v; want Unavailable", got, err)
	}
}

// TestNilPolicy: without a policy every method needs a valid token.
func TestNilPolicy(t *testing.T) {
	e := newEnv(t)
	in, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier})
	if err != nil {
		t.Fatal(err)
	}
	conn := transports[1].new(t, in, interceptorOpts(in)...)
	callCase{method: "/keygate.test.Other/Say", auth: []string{"Bearer " + e.token(t, "alice")}, code: codes.OK, msg: "alice:hi"}.run(t, conn)
	callCase{method: "/keygate.test.Echo/Public", code: codes.Unauthenticated, msg: "a bearer token is required", challenge: `Bearer realm="keygate"`}.run(t, conn)
}

func TestExemptions(t *testing.T) {
	e := newEnv(t)
	for _, exempt := range []bool{false, true} {
		t.Run(fmt.Sprint("exempt=", exempt), func(t *testing.T) {
			in, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier, Policy: e.policy, ExemptHealth: exempt, ExemptReflection: exempt})
			if err != nil {
				t.Fatal(err)
			}
			conn := transports[0].new(t, in, interceptorOpts(in)...)
			want := codes.Unauthenticated
			if exempt {
				want = codes.OK
			}
			_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
			if status.Code(err) != want {
				t.Errorf("health Check without token: %v; want %v", err, want)
			}
			rc, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
			if err == nil {
				// A refused stream may end before Send; Send then
				// reports io.EOF and Recv the status.
				rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
				_, err = rc.Recv()
			}
			if status.Code(err) != want {
				t.Errorf("reflection without token: %v; want %v", err, want)
			}
			// An exemption covers those services only.
			callCase{method: "/keygate.test.Echo/Say", code: codes.Unauthenticated, msg: "a bearer token is required", challenge: `Bearer realm="keygate"`}.run(t, conn)
		})
	}
}

// TestMalformedMethod sends names that grpc-go routes to an unknown
// service handler, where the interceptor sees them as they came.
func TestMalformedMethod(t *testing.T) {
	e := newEnv(t)
	all, err := grpcauth.Compile(grpcauth.Access{Rules: []grpcauth.Rule{{Method: "/**", Require: authz.Authenticated()}}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	in, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier, Policy: all,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	unknown := grpc.UnknownServiceHandler(func(srv any, ss grpc.ServerStream) error { return nil })
	conn := transports[1].new(t, in, append(interceptorOpts(in), unknown)...)
	tok := e.token(t, "alice")
	long := "/a/" + strings.Repeat("x", 5000) + "/y"
	for _, m := range []string{"/a/b/c", "/x//", long} {
		err := conn.Invoke(outgoing([]string{"Bearer " + tok}), m, wrapperspb.String("hi"), new(wrapperspb.StringValue))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%.40s: %v; want InvalidArgument", m, err)
		}
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the log holds the token")
	}
	if strings.Contains(logs.String(), strings.Repeat("x", 300)) || !strings.Contains(logs.String(), "bytes)") {
		t.Errorf("the log holds a long method name uncut:\n%.500s", logs.String())
	}
}

// TestGoGRPCMiddleware runs the same calls through go-grpc-middleware's
// auth interceptors with in.AuthFunc: the two compose.
func TestGoGRPCMiddleware(t *testing.T) {
	e := newEnv(t)
	in, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier, Policy: e.policy, Realm: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	var af auth.AuthFunc = in.AuthFunc
	var override func(context.Context, string) (context.Context, error) = in.Authorize
	_ = auth.ServiceAuthFuncOverride(overrider(override))
	conn := transports[0].new(t, in,
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(af)),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(af)))
	for _, c := range callCases(e, t) {
		t.Run(c.name, func(t *testing.T) { c.run(t, conn) })
	}
	got, _, err := chat(outgoing([]string{"Bearer " + e.token(t, "alice")}), conn)
	if err != nil || strings.Join(got, ",") != "alice:a,alice:b" {
		t.Errorf("Chat as alice = %q, %v", got, err)
	}
	got, trailer, err := chat(context.Background(), conn)
	if status.Code(err) != codes.Unauthenticated || len(got) > 0 || len(trailer.Get("www-authenticate")) != 1 {
		t.Errorf("Chat anonymous = %q, %v, trailer %v; want Unauthenticated with a challenge", got, err, trailer)
	}
}

// overrider is a service that hands its auth decision to Authorize, as
// go-grpc-middleware's ServiceAuthFuncOverride lets a service do.
type overrider func(context.Context, string) (context.Context, error)

func (o overrider) AuthFuncOverride(ctx context.Context, fullMethod string) (context.Context, error) {
	return o(ctx, fullMethod)
}

func TestAuthFuncOutsideServer(t *testing.T) {
	in, err := grpcauth.New(grpcauth.Config{Verifier: verifierFunc(func(context.Context, string) (*keygate.Principal, error) { return &keygate.Principal{}, nil })})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.AuthFunc(context.Background()); status.Code(err) != codes.Internal {
		t.Errorf("AuthFunc(Background) = %v; want Internal", err)
	}
	if _, err := in.Require(context.Background(), authz.Role("x")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Require(Background) = %v; want Unauthenticated", err)
	}
}

func TestNew(t *testing.T) {
	if _, err := grpcauth.New(grpcauth.Config{}); err == nil {
		t.Error("New without Verifier: no error")
	}
	v := verifierFunc(func(context.Context, string) (*keygate.Principal, error) { return nil, nil })
	if _, err := grpcauth.New(grpcauth.Config{Verifier: v, Realm: `a"b`}); err == nil {
		t.Error("New with a quote in the realm: no error")
	}
}
