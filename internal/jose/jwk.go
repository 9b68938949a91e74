// Package jose holds keygate's JOSE plumbing: parsing JSON Web Keys
// (RFC 7517) into standard-library public keys, splitting compact JWS
// (RFC 7515) and checking signatures for the asymmetric JWA algorithms
// (RFC 7518, RFC 8037). It is internal so that its API can change with
// the fast path it serves.
package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// MinRSABits is the smallest RSA modulus accepted for signature keys.
const MinRSABits = 2048

// JWK is one JSON Web Key as published in a JWKS document. Only the members
// keygate reads are decoded; private members are ignored.
type JWK struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// ErrNotSigningKey reports a key published for another use (encryption).
// Such keys are skipped silently: Keycloak always publishes one.
var ErrNotSigningKey = errors.New("not a signature key")

// PublicKey returns the public key the JWK describes. It fails with
// [ErrNotSigningKey] for encryption keys, and with a descriptive error for
// unsupported types, curves, weak RSA moduli and malformed encodings.
func (k *JWK) PublicKey() (crypto.PublicKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("%w: use %q", ErrNotSigningKey, k.Use)
	}
	if len(k.KeyOps) > 0 && !slices.Contains(k.KeyOps, "verify") {
		return nil, fmt.Errorf("%w: key_ops %q", ErrNotSigningKey, k.KeyOps)
	}
	if k.Alg != "" {
		if _, ok := algorithms[k.Alg]; !ok {
			if k.Use == "" && isEncryptionAlg(k.Alg) {
				return nil, fmt.Errorf("%w: alg %q", ErrNotSigningKey, k.Alg)
			}
			return nil, fmt.Errorf("unsupported alg %q", k.Alg)
		}
	}
	var (
		pub crypto.PublicKey
		err error
	)
	switch k.Kty {
	case "RSA":
		pub, err = k.rsa()
	case "EC":
		pub, err = k.ec()
	case "OKP":
		pub, err = k.okp()
	case "":
		return nil, errors.New("missing kty")
	default:
		return nil, fmt.Errorf("unsupported kty %q", k.Kty)
	}
	if err != nil {
		return nil, err
	}
	if k.Alg != "" && !KeyFits(k.Alg, pub) {
		return nil, fmt.Errorf("alg %q does not fit a %s key", k.Alg, k.Kty)
	}
	return pub, nil
}

func isEncryptionAlg(alg string) bool {
	switch alg {
	case "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512", "RSA1_5",
		"ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW":
		return true
	}
	return false
}

func (k *JWK) rsa() (*rsa.PublicKey, error) {
	n, err := decodeField("n", k.N)
	if err != nil {
		return nil, err
	}
	e, err := decodeField("e", k.E)
	if err != nil {
		return nil, err
	}
	if len(n) > 0 && n[0] == 0 {
		return nil, errors.New("n has a leading zero byte")
	}
	if len(e) == 0 || len(e) > 4 || e[0] == 0 {
		return nil, errors.New("e is out of range")
	}
	var exp int
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 {
		return nil, fmt.Errorf("e = %d is not a valid public exponent", exp)
	}
	mod := new(big.Int).SetBytes(n)
	if bits := mod.BitLen(); bits < MinRSABits {
		return nil, fmt.Errorf("RSA key has %d bits, want at least %d", bits, MinRSABits)
	}
	return &rsa.PublicKey{N: mod, E: exp}, nil
}

func (k *JWK) ec() (*ecdsa.PublicKey, error) {
	var (
		curve elliptic.Curve
		size  int
	)
	switch k.Crv {
	case "P-256":
		curve, size = elliptic.P256(), 32
	case "P-384":
		curve, size = elliptic.P384(), 48
	case "P-521":
		curve, size = elliptic.P521(), 66
	default:
		return nil, fmt.Errorf("unsupported EC curve %q", k.Crv)
	}
	x, err := decodeField("x", k.X)
	if err != nil {
		return nil, err
	}
	y, err := decodeField("y", k.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("%s coordinates must be %d bytes", k.Crv, size)
	}
	// The uncompressed SEC 1 encoding lets crypto/ecdh check that the
	// point is on the curve without the deprecated elliptic API.
	point := make([]byte, 0, 1+2*size)
	point = append(append(append(point, 4), x...), y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("invalid %s point: %w", k.Crv, err)
	}
	return pub, nil
}

func (k *JWK) okp() (ed25519.PublicKey, error) {
	if k.Crv != "Ed25519" {
		return nil, fmt.Errorf("unsupported OKP curve %q", k.Crv)
	}
	x, err := decodeField("x", k.X)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("Ed25519 key must be %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

func decodeField(name, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("missing %s", name)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%s is not base64url: %w", name, err)
	}
	return b, nil
}

// Set is the decoded form of a JWKS document. Keys stay raw so that a bad
// key can be skipped without failing the whole set.
type Set struct {
	Keys []json.RawMessage `json:"keys"`
}
