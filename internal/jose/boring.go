//go:build boringcrypto

package jose

// boringCrypto is set when the program is built with
// GOEXPERIMENT=boringcrypto: crypto/rsa then verifies with BoringCrypto,
// and keygate leaves RSA verification to it.
const boringCrypto = true
