package grpcauth_test

import (
	"context"
	"fmt"
	"log"
	"net"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/grpcauth"
	"github.com/keygate/keygate/jwks"
	"github.com/keygate/keygate/keycloaktest"
)

// A gRPC server whose health Check needs a token: the interceptor answers
// a call without one with Unauthenticated and the RFC 6750 challenge in
// the www-authenticate trailer.
func Example() {
	idp, err := keycloaktest.NewServer(keycloaktest.Config{
		Realm:   "shop",
		Clients: []keycloaktest.Client{{ID: "web", Audiences: []string{"orders-api"}}},
		Users:   []keycloaktest.User{{Username: "alice", Password: "alice", RealmRoles: []string{"user"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	keys, _ := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
	keys.Start()
	defer keys.Close()
	<-keys.Ready()
	verifier, err := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})
	if err != nil {
		log.Fatal(err)
	}

	policy, err := grpcauth.ParseYAML([]byte(`
rules:
  - method: /grpc.health.v1.Health/Check
    require: {role: user}
`))
	if err != nil {
		log.Fatal(err)
	}
	in, err := grpcauth.New(grpcauth.Config{Verifier: verifier, Policy: policy, Realm: "shop"})
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(in.Unary), grpc.ChainStreamInterceptor(in.Stream))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	var trailer metadata.MD
	_, err = client.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
	fmt.Println(status.Code(err), trailer.Get("www-authenticate"))

	token, _ := idp.MintToken(keycloaktest.Token{Client: "web", User: "alice"})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output:
	// Unauthenticated [Bearer realm="shop"]
	// SERVING <nil>
}

// The few lines a gRPC service needs, as in the README: rules by full
// method name, the interceptors on the server, health checks exempt.
func ExampleNew() {
	var verifier *keygate.Verifier // from keygate.NewVerifier
	// The README's gRPC snippet starts here.
	policy, err := grpcauth.ParseYAML([]byte(`
rules:
  - method: /shop.Orders/Get
    require: {scope: orders.read}
  - method: /shop.Admin/*
    require: {role: admin}
default: authenticated
`))
	if err != nil {
		log.Fatal(err)
	}
	auth, err := grpcauth.New(grpcauth.Config{Verifier: verifier, Policy: policy, ExemptHealth: true})
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.Unary),
		grpc.ChainStreamInterceptor(auth.Stream),
	)
	// Handlers read the caller with grpcauth.FromContext(ctx).
	// The README's gRPC snippet ends here.
	_ = srv
}

// A guard inside one handler, like Spring's @PreAuthorize, for a check
// finer than the method rules.
func ExampleInterceptor_Require() {
	var in *grpcauth.Interceptor // from grpcauth.New
	deleteOrder := func(ctx context.Context, id string) error {
		p, err := in.Require(ctx, authz.AnyOf(authz.Role("admin"), authz.ClientRole("orders-api", "writer")))
		if err != nil {
			return err // PermissionDenied or Unauthenticated, as it is
		}
		log.Printf("%s deletes order %s", p.Username, id)
		return nil
	}
	_ = deleteOrder
}

// The interceptor's decision as a go-grpc-middleware auth.AuthFunc, for
// servers that already chain that package's auth interceptors.
func ExampleInterceptor_AuthFunc() {
	var in *grpcauth.Interceptor // from grpcauth.New
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(in.AuthFunc)),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(in.AuthFunc)),
	)
	_ = srv
}
