// Package keycloaktest provides an in-process, Keycloak-compatible OpenID
// Connect issuer for tests, in the spirit of [net/http/httptest].
//
// A [Server] serves one realm under Keycloak's paths:
//
//	/realms/{realm}/.well-known/openid-configuration
//	/realms/{realm}/protocol/openid-connect/certs
//	/realms/{realm}/protocol/openid-connect/token
//
// The discovery document also lists Keycloak's other endpoints
// (authorization, userinfo, introspection, ...), but those are not served
// and answer 404. The token endpoint supports the client_credentials and
// password grants, with client authentication by HTTP Basic or form
// parameters.
//
// Its tokens are shaped like those of Keycloak 26: RS256 (or another
// configured algorithm) access and ID tokens carrying realm_access,
// resource_access, azp, sid, scope and the profile claims, and HS512
// refresh tokens signed with a secret that is never published. The JWK set
// contains every signing key plus one RSA-OAEP encryption key, as
// Keycloak's does.
//
// Beyond serving, a Server lets a test mint arbitrary tokens
// ([Server.MintToken]), including unsigned and algorithm-confusion tokens,
// mint the logout tokens Keycloak posts to back-channel logout URLs
// ([Server.MintLogoutToken]), rotate keys ([Server.AddKey],
// [Server.RemoveKey], [Server.SetActiveKey]), inject faults per endpoint
// ([Server.SetFault]) and count requests ([Server.Requests]).
//
// A handler test needs the issuer, a key source and verifier against it,
// and a request with a minted token (TestDocHandlerTest in
// example_test.go runs these lines):
//
//	idp := keycloaktest.New(t, keycloaktest.Config{Clients: []keycloaktest.Client{{ID: "orders-api", Audiences: []string{"orders-api"}}}})
//	keys, _ := jwks.NewSource(jwks.Config{Issuer: idp.Issuer()})
//	keys.Refresh(t.Context())
//	v, _ := keygate.NewVerifier(keygate.Config{Issuer: idp.Issuer(), Audiences: []string{"orders-api"}, Keys: keys})
//	auth, _ := httpauth.New(httpauth.Config{Verifier: v})
//	req := httptest.NewRequest("GET", "/orders", nil)
//	req.Header.Set("Authorization", "Bearer "+idp.MustMint(t, keycloaktest.Token{}))
//	rec := httptest.NewRecorder()
//	auth.Wrap(orders).ServeHTTP(rec, req) // rec.Code is orders' answer, or 401
//
// The package uses only the standard library, not even the testing
// package ([New] and [Server.MustMint] take a [TB]), so that the keygate
// dev command embeds the same issuer without linking testing. It is meant
// for tests and local development; it performs no real user management
// and none of its secrets are protected.
package keycloaktest
