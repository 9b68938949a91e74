// Package devissuer is the Keycloak-compatible OpenID Connect issuer
// behind package [github.com/keygate/keygate/keycloaktest] and the
// keygate dev command. It imports neither testing nor any of keygate's
// verification packages, so the release binary can embed it without
// linking the testing package, and keycloaktest stays independent of what
// it is used to test.
//
// Users reach it through keycloaktest, whose types are aliases of the ones
// here; this package's documentation is theirs. Error messages keep the
// "keycloaktest:" prefix, the name users know.
package devissuer
