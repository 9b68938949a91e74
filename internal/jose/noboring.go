//go:build !boringcrypto

package jose

// boringCrypto is set when the program is built with
// GOEXPERIMENT=boringcrypto; see boring.go.
const boringCrypto = false
