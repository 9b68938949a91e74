package grpcauth_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/grpcauth"
	"github.com/keygate/keygate/keycloaktest"
)

// benchPool is how many distinct tokens the unique-token benchmark cycles
// through, with the verifier's cache off so that each call verifies in
// full, as in the root package's BenchmarkVerify.
const benchPool = 512

// BenchmarkUnary measures unary calls over TCP on loopback, one at a
// time from one client: "bare" is the server without the interceptor,
// "repeated" sends the same token each call (the verifier's cache
// answers), "unique" a different token each call (cache off: full RS256
// verification). Compare the calls/s metric of each with bare's.
func BenchmarkUnary(b *testing.B) {
	e := newEnv(b)
	toks := make([]string, benchPool)
	for i := range toks {
		toks[i] = e.idp.MustMint(b, keycloaktest.Token{Client: "cli", User: "alice"})
	}
	uncached, err := keygate.NewVerifier(keygate.Config{Issuer: e.idp.Issuer(), Audiences: []string{"orders-api"},
		Keys: e.keys, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	cached, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier, Policy: e.policy})
	if err != nil {
		b.Fatal(err)
	}
	full, err := grpcauth.New(grpcauth.Config{Verifier: uncached, Policy: e.policy})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts []grpc.ServerOption
		toks []string
	}{
		{"bare", nil, toks[:1]},
		{"repeated", interceptorOpts(cached), toks[:1]},
		{"unique", interceptorOpts(full), toks},
	} {
		b.Run(c.name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			conn := newServer(b, cached, lis, nil, c.opts...)
			ctxs := make([]context.Context, len(c.toks))
			for i, tok := range c.toks {
				ctxs[i] = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
			}
			in, out := wrapperspb.String("hi"), new(wrapperspb.StringValue)
			// Warm up the connection (and, for repeated, the cache).
			if err := conn.Invoke(ctxs[0], "/keygate.test.Echo/Say", in, out); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := conn.Invoke(ctxs[i%len(ctxs)], "/keygate.test.Echo/Say", in, out); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// BenchmarkInterceptor measures the interceptor alone, without a
// network: Unary on a context that holds the authorization metadata, a
// repeated token, and a handler that does nothing.
func BenchmarkInterceptor(b *testing.B) {
	e := newEnv(b)
	in, err := grpcauth.New(grpcauth.Config{Verifier: e.verifier, Policy: e.policy})
	if err != nil {
		b.Fatal(err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+e.token(b, "alice")))
	info := &grpc.UnaryServerInfo{FullMethod: "/keygate.test.Echo/Say"}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	if _, err := in.Unary(ctx, nil, info, handler); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.Unary(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}
