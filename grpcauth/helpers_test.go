package grpcauth_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/grpcauth"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// testRules is the policy of the test server.
const testRules = `
default: deny
rules:
  - method: /keygate.test.Echo/Public
    require: permit_all
  - method: /keygate.test.Echo/*
    require: authenticated
  - method: /keygate.test.Admin/*
    require: {role: admin}
`

type env struct {
	idp      *keycloaktest.Server
	keys     *jwks.Source
	verifier *keygate.Verifier
	policy   *grpcauth.Policy
}

func newEnv(t testing.TB) *env {
	t.Helper()
	idp := keycloaktest.New(t, keycloaktest.Config{
		Realm: "shop",
		Clients: []keycloaktest.Client{
			{ID: "cli", DirectAccessGrants: true, Audiences: []string{"orders-api"}},
		},
		Users: []keycloaktest.User{
			{Username: "alice", Password: "alice", RealmRoles: []string{"user"}},
			{Username: "admin", Password: "admin", RealmRoles: []string{"user", "admin"}},
		},
	})
	src, err := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: src})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := grpcauth.ParseYAML([]byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return &env{idp: idp, keys: src, verifier: v, policy: policy}
}

func (e *env) token(t testing.TB, user string) string {
	t.Helper()
	return e.idp.MustMint(t, keycloaktest.Token{Client: "cli", User: user})
}

// The test services are declared by hand, with well-known protobuf
// messages, so that no generated code is needed: keygate.test.Echo has
// Say, Public and Delete (unary) and Chat (bidirectional streaming);
// keygate.test.Admin has Purge (unary); keygate.test.Other has Say, which
// no rule covers.
type echoServer interface{}

// whoami names the caller in ctx as the handlers see it, through
// httpauth.FromContext, to prove that both packages share the key.
func whoami(ctx context.Context) string {
	p, ok := httpauth.FromContext(ctx)
	q, ok2 := grpcauth.FromContext(ctx)
	if ok != ok2 || p != q {
		return "mismatch"
	}
	if !ok {
		return "anonymous"
	}
	return p.Username
}

func unary(name string, h func(ctx context.Context, in string) (string, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, req any) (any, error) {
				out, err := h(ctx, req.(*wrapperspb.StringValue).GetValue())
				if err != nil {
					return nil, err
				}
				return wrapperspb.String(out), nil
			}
			if interceptor == nil {
				return call(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + srvName(srv) + "/" + name}
			return interceptor(ctx, in, info, call)
		},
	}
}

// srvName recovers the service name from the implementation registered
// for it.
func srvName(srv any) string { return srv.(named).name }

type named struct{ name string }

func serviceDescs(auth *grpcauth.Interceptor) []*grpc.ServiceDesc {
	say := func(ctx context.Context, in string) (string, error) { return whoami(ctx) + ":" + in, nil }
	echo := &grpc.ServiceDesc{
		ServiceName: "keygate.test.Echo",
		HandlerType: (*echoServer)(nil),
		Methods: []grpc.MethodDesc{
			unary("Say", say),
			unary("Public", say),
			unary("Delete", func(ctx context.Context, in string) (string, error) {
				if _, err := auth.RequireRole(ctx, "admin"); err != nil {
					return "", err
				}
				return "deleted " + in, nil
			}),
		},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Chat",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(srv any, ss grpc.ServerStream) error {
				who := whoami(ss.Context())
				for {
					in := new(wrapperspb.StringValue)
					if err := ss.RecvMsg(in); err != nil {
						if errors.Is(err, io.EOF) {
							return nil
						}
						return err
					}
					if err := ss.SendMsg(wrapperspb.String(who + ":" + in.GetValue())); err != nil {
						return err
					}
				}
			},
		}},
	}
	admin := &grpc.ServiceDesc{
		ServiceName: "keygate.test.Admin",
		HandlerType: (*echoServer)(nil),
		Methods:     []grpc.MethodDesc{unary("Purge", say)},
	}
	other := &grpc.ServiceDesc{
		ServiceName: "keygate.test.Other",
		HandlerType: (*echoServer)(nil),
		Methods:     []grpc.MethodDesc{unary("Say", say)},
	}
	return []*grpc.ServiceDesc{echo, admin, other}
}

var chatDesc = &grpc.StreamDesc{StreamName: "Chat", ServerStreams: true, ClientStreams: true}

// newServer starts a gRPC server with the echo services, health checking
// and reflection, on lis, and returns a client connection to it.
func newServer(t testing.TB, auth *grpcauth.Interceptor, lis net.Listener, dial func(context.Context, string) (net.Conn, error), opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer(opts...)
	for _, d := range serviceDescs(auth) {
		srv.RegisterService(d, named{d.ServiceName})
	}
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	target := lis.Addr().String()
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if dial != nil {
		target = "passthrough:///bufnet"
		dopts = append(dopts, grpc.WithContextDialer(dial))
	}
	conn, err := grpc.NewClient(target, dopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// transports are the two ways the tests reach a server: TCP on loopback
// and an in-memory bufconn listener.
var transports = []struct {
	name string
	new  func(t testing.TB, auth *grpcauth.Interceptor, opts ...grpc.ServerOption) *grpc.ClientConn
}{
	{"loopback", func(t testing.TB, auth *grpcauth.Interceptor, opts ...grpc.ServerOption) *grpc.ClientConn {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return newServer(t, auth, lis, nil, opts...)
	}},
	{"bufconn", func(t testing.TB, auth *grpcauth.Interceptor, opts ...grpc.ServerOption) *grpc.ClientConn {
		lis := bufconn.Listen(1 << 20)
		return newServer(t, auth, lis, func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }, opts...)
	}},
}

// interceptorOpts installs auth with grpc's chaining options.
func interceptorOpts(auth *grpcauth.Interceptor) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(auth.Unary), grpc.ChainStreamInterceptor(auth.Stream)}
}

// verifierFunc is a Verifier stub, for outcomes a real provider cannot be
// made to give in a test, such as keys that cannot be fetched.
type verifierFunc func(ctx context.Context, raw string) (*keygate.Principal, error)

func (f verifierFunc) Verify(ctx context.Context, raw string) (*keygate.Principal, error) {
	return f(ctx, raw)
}
