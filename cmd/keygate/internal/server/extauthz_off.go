//go:build keygate_noextauthz

package server

// Built with the tag keygate_noextauthz, keygate has no ext_authz
// listener and links neither gRPC nor Envoy's protobufs: a smaller binary
// with a smaller resident set and a smaller steady heap for deployments
// that use the proxy or forward-auth only (docs/config.md, "Operations").
// New refuses a configuration with an ext_authz block.
const extAuthzBuilt = false

func (s *Server) newExtAuthzServer() extAuthzServer {
	panic("server: ext_authz is not built in") // New refuses such a configuration
}
