package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unsafe"
)

type family uint8

const (
	familyRSA family = iota + 1
	familyPSS
	familyEC
	familyEd25519
)

type algorithm struct {
	family family
	hash   crypto.Hash
	size   int // ECDSA: bytes per coordinate of the curve
}

// algorithms lists the asymmetric JWS algorithms keygate verifies. It is
// read-only. HMAC and "none" are deliberately absent: with published
// public keys they can only be attacks.
var algorithms = map[string]algorithm{
	"RS256": {familyRSA, crypto.SHA256, 0},
	"RS384": {familyRSA, crypto.SHA384, 0},
	"RS512": {familyRSA, crypto.SHA512, 0},
	"PS256": {familyPSS, crypto.SHA256, 0},
	"PS384": {familyPSS, crypto.SHA384, 0},
	"PS512": {familyPSS, crypto.SHA512, 0},
	"ES256": {familyEC, crypto.SHA256, 32},
	"ES384": {familyEC, crypto.SHA384, 48},
	"ES512": {familyEC, crypto.SHA512, 66},
	"EdDSA": {familyEd25519, 0, 0},
	// RFC 9864 names Ed25519 explicitly; it means the same as EdDSA with
	// an Ed25519 key.
	"Ed25519": {familyEd25519, 0, 0},
}

// Algorithms returns the names of every algorithm [Verify] supports.
func Algorithms() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
}

// Supported reports whether alg is an algorithm [Verify] supports.
func Supported(alg string) bool {
	_, ok := algorithms[alg]
	return ok
}

// KeyFits reports whether a token signed with alg can be checked with pub:
// the key type matches the algorithm family and, for ECDSA, the curve
// matches the algorithm.
func KeyFits(alg string, pub crypto.PublicKey) bool {
	a, ok := algorithms[alg]
	if !ok {
		return false
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return a.family == familyRSA || a.family == familyPSS
	case *ecdsa.PublicKey:
		return a.family == familyEC && (k.Curve.Params().BitSize+7)/8 == a.size
	case ed25519.PublicKey:
		return a.family == familyEd25519
	}
	return false
}

// ErrSignature reports a signature that does not verify.
var ErrSignature = errors.New("signature does not verify")

// Verify checks sig over signingInput with pub under alg. The caller has
// checked [KeyFits]; Verify checks again and fails closed. Verify uses the
// standard library for every algorithm; [VerifyPrepared] is faster.
func Verify(alg string, pub crypto.PublicKey, signingInput string, sig []byte) error {
	return verify(alg, nil, pub, signingInput, sig)
}

// VerifyPrepared is [Verify] with the state that key (which holds pub)
// keeps for it: RS256, RS384 and RS512 signatures are checked with the
// modulus prepared once per key (see [Prepared]), outside FIPS 140-3
// mode. A nil key is Verify.
func VerifyPrepared(alg string, key Holder, pub crypto.PublicKey, signingInput string, sig []byte) error {
	var p *Prepared
	if key != nil {
		p = key.prepared()
	}
	return verify(alg, p, pub, signingInput, sig)
}

func verify(alg string, p *Prepared, pub crypto.PublicKey, signingInput string, sig []byte) error {
	a, ok := algorithms[alg]
	if !ok || !KeyFits(alg, pub) {
		return fmt.Errorf("algorithm %q cannot be used with this key", alg)
	}
	if a.family == familyEd25519 {
		if !ed25519.Verify(pub.(ed25519.PublicKey), readOnly(signingInput), sig) {
			return ErrSignature
		}
		return nil
	}
	if a.family == familyRSA && p != nil {
		if k := p.rsaKey(pub.(*rsa.PublicKey)); k.n != nil {
			// A buffer of its own, which stays on the stack: the
			// standard library's verifiers below let their digest
			// argument escape.
			var buf [64]byte
			if !k.verifyPKCS1v15(a.hash, sum(&buf, a.hash, signingInput), sig) {
				return ErrSignature
			}
			return nil
		}
	}
	var buf [64]byte
	digest := sum(&buf, a.hash, signingInput)
	if digest == nil {
		return fmt.Errorf("algorithm %q: no hash", alg)
	}
	switch a.family {
	case familyRSA:
		if rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), a.hash, digest, sig) != nil {
			return ErrSignature
		}
	case familyPSS:
		opts := rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash}
		if rsa.VerifyPSS(pub.(*rsa.PublicKey), a.hash, digest, sig, &opts) != nil {
			return ErrSignature
		}
	case familyEC:
		// JWS carries R || S at fixed width (RFC 7518 section 3.4), not DER.
		if len(sig) != 2*a.size {
			return ErrSignature
		}
		r := new(big.Int).SetBytes(sig[:a.size])
		s := new(big.Int).SetBytes(sig[a.size:])
		if !ecdsa.Verify(pub.(*ecdsa.PublicKey), digest, r, s) {
			return ErrSignature
		}
	}
	return nil
}

// sum writes the digest of s under h, one of SHA-256, SHA-384 and
// SHA-512, to buf and returns it; for another hash it returns nil. It
// hashes s in place, with no copy and no hash state on the heap.
func sum(buf *[64]byte, h crypto.Hash, s string) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(readOnly(s))
		return append(buf[:0], d[:]...)
	case crypto.SHA384:
		d := sha512.Sum384(readOnly(s))
		return append(buf[:0], d[:]...)
	case crypto.SHA512:
		d := sha512.Sum512(readOnly(s))
		return append(buf[:0], d[:]...)
	}
	return nil
}

// readOnly returns the bytes of s without copying them, for a function
// that only reads its argument and keeps no reference to it once it
// returns: sha256.Sum256, sha512.Sum384, sha512.Sum512 and
// ed25519.Verify here. The result must never be written to, appended
// to or kept; a string is immutable and others may share its bytes.
func readOnly(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Header is the part of a JOSE header keygate reads.
type Header struct {
	Alg, Kid, Typ string
	// Crit reports a crit member. keygate understands no extension, so any
	// crit member at all means the token must be refused (RFC 7515 section
	// 4.1.11).
	Crit bool
}

// ParseHeader decodes a JOSE header. A member of the wrong type, a
// duplicated member it reads, or invalid JSON is an error.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	var seen uint8
	s := NewScanner(string(b))
	err := s.Object(func(key string) error {
		var (
			bit uint8
			dst *string
		)
		switch key {
		case "alg":
			bit, dst = 1, &h.Alg
		case "kid":
			bit, dst = 2, &h.Kid
		case "typ":
			bit, dst = 4, &h.Typ
		case "crit":
			h.Crit = true
			return s.Skip()
		default:
			return s.Skip()
		}
		if seen&bit != 0 {
			return fmt.Errorf("%w: duplicate member %q", ErrSyntax, key)
		}
		seen |= bit
		if s.Null() {
			return nil
		}
		v, err := s.String()
		*dst = v
		return err
	})
	if err != nil {
		return Header{}, err
	}
	return h, s.End()
}

// Compact is a compact-serialised JWS split into its parts.
type Compact struct {
	// SigningInput is the ASCII "header.payload" the signature covers.
	SigningInput string
	// Header, Payload and Signature are the decoded parts.
	Header, Payload, Signature []byte
}

// Shape errors returned by [Split].
var (
	ErrParts    = errors.New("a JWS must have exactly three dot-separated parts")
	ErrEncoding = errors.New("not base64url without padding")
)

var b64 = base64.RawURLEncoding.Strict()

// Split checks the shape of a compact JWS and decodes its three parts into
// one buffer. Padding, line breaks and any character outside the base64url
// alphabet are refused.
func Split(raw string) (Compact, error) {
	h, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return Compact{}, ErrParts
	}
	p, s, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s, '.') >= 0 {
		return Compact{}, ErrParts
	}
	if h == "" || p == "" {
		return Compact{}, ErrParts
	}
	// The decoder skips CR and LF; a token must not contain them.
	if strings.IndexByte(raw, '\n') >= 0 || strings.IndexByte(raw, '\r') >= 0 {
		return Compact{}, ErrEncoding
	}
	buf := make([]byte, 0, b64.DecodedLen(len(h))+b64.DecodedLen(len(p))+b64.DecodedLen(len(s)))
	var err error
	if buf, err = b64.AppendDecode(buf, []byte(h)); err != nil {
		return Compact{}, fmt.Errorf("header: %w", ErrEncoding)
	}
	nh := len(buf)
	if buf, err = b64.AppendDecode(buf, []byte(p)); err != nil {
		return Compact{}, fmt.Errorf("payload: %w", ErrEncoding)
	}
	np := len(buf)
	if buf, err = b64.AppendDecode(buf, []byte(s)); err != nil {
		return Compact{}, fmt.Errorf("signature: %w", ErrEncoding)
	}
	return Compact{
		SigningInput: raw[:len(h)+1+len(p)],
		Header:       buf[:nh:nh],
		Payload:      buf[nh:np:np],
		Signature:    buf[np:],
	}, nil
}
