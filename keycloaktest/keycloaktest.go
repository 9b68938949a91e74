package keycloaktest

import (
	"testing"

	"github.com/keygate/keygate/internal/devissuer"
)

// The types of this package are defined in package
// github.com/keygate/keygate/internal/devissuer, which the keygate dev
// command shares without linking the testing package. Their fields and
// methods are documented there:
//
//	go doc github.com/keygate/keygate/internal/devissuer Config
//	go doc github.com/keygate/keygate/internal/devissuer Server.MintToken
type (
	// Config describes the realm a [Server] serves. The zero value is a
	// usable configuration: realm "test" on a random loopback port, RS256
	// keys, five minute access tokens, and no clients or users.
	Config = devissuer.Config

	// Client is a client of the realm: ID, Secret, ServiceAccount,
	// DirectAccessGrants, Audiences, roles, Algorithm.
	Client = devissuer.Client

	// User is a user of the realm: Username, Password, profile, roles,
	// groups.
	User = devissuer.User

	// A Server is a Keycloak-compatible issuer listening on a local
	// address. All methods are safe for concurrent use, including while it
	// serves requests. The creator calls Close when done ([New] arranges
	// that through testing.TB.Cleanup). Its methods give its URLs (Issuer,
	// JWKSURL, TokenURL, ...), mint tokens (MintToken, MustMint), rotate
	// keys (AddKey, RemoveKey, SetActiveKey) and inject faults (SetFault,
	// Requests).
	Server = devissuer.Server

	// Token describes a token for Server.MintToken. The zero value
	// describes the access token the token endpoint would issue to the
	// service account of the first configured client.
	Token = devissuer.Token

	// A Fault describes how an endpoint misbehaves; see Server.SetFault.
	Fault = devissuer.Fault

	// An Endpoint identifies one of the endpoints a [Server] serves, for
	// Server.SetFault and Server.Requests.
	Endpoint = devissuer.Endpoint
)

// The endpoints of a Server, relative to its issuer.
const (
	EndpointDiscovery = devissuer.EndpointDiscovery // /.well-known/openid-configuration
	EndpointCerts     = devissuer.EndpointCerts     // /protocol/openid-connect/certs (the JWK set)
	EndpointToken     = devissuer.EndpointToken     // /protocol/openid-connect/token
)

// AlgNone is the Token.Algorithm that produces an unsigned token: header
// alg "none" and an empty signature.
const AlgNone = devissuer.AlgNone

// NewUnstartedServer returns a Server for cfg that has generated its keys
// and bound its listener but does not yet answer requests; call
// Server.Start to serve. Until then connections to Server.URL are accepted
// by the operating system but hang, and Server.Issuer and Server.MintToken
// already work. The caller must call Server.Close.
func NewUnstartedServer(cfg Config) (*Server, error) { return devissuer.NewUnstartedServer(cfg) }

// NewServer returns a started Server for cfg. The caller must call
// Server.Close.
func NewServer(cfg Config) (*Server, error) { return devissuer.NewServer(cfg) }

// New returns a started Server for cfg and registers its Close with
// tb.Cleanup. It stops the test with tb.Fatal if the server cannot be
// created.
func New(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}
