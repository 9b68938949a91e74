// Package e2e holds keygate's end-to-end tier: tests that validate tokens
// a real Keycloak issued. They are behind the build tag e2e, so a plain
// go test ./... builds nothing here; run them with make e2e (see
// README.md in this directory).
package e2e
