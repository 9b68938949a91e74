package jose

import (
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
	"sync/atomic"

	"filippo.io/bigmod"
)

// This file holds keygate's own RSASSA-PKCS1-v1_5 verification (RS256,
// RS384, RS512). crypto/rsa.VerifyPKCS1v15 converts the modulus and
// recomputes its Montgomery constants (R² mod n) on every call, which is
// about a third of a 2048-bit verification. Here they are computed once
// per key, when the key enters a key set, with filippo.io/bigmod (the
// standard library's own crypto/internal/fips140/bigmod, re-exported);
// the rest follows RFC 8017 section 8.2.2: length check, s < n, s^e mod n,
// then the expected encoding built from the digest and compared in
// constant time. The padding is never parsed. ARCHITECTURE.md gives the
// measurement.
//
// In FIPS 140-3 mode (GODEBUG fips140=on or only) and with
// GOEXPERIMENT=boringcrypto, keys are not prepared and crypto/rsa does
// every verification: only the validated module may verify then.

// Prepared holds what keygate computes once per public key to verify
// faster: for RSA keys, the modulus in Montgomery form. The zero value is
// ready to use and prepares itself on first use; [Prepare] does it ahead.
// A Prepared is safe for concurrent use and must not be copied after
// first use.
//
// A key type embeds it under an unexported alias, so that it satisfies
// [Holder] without any exported field or method:
//
//	type prepared = jose.Prepared
//	type Key struct {
//		Public crypto.PublicKey
//		prepared
//	}
type Prepared struct {
	rsa atomic.Pointer[rsaKey]
}

func (p *Prepared) prepared() *Prepared { return p }

// Holder is a key type that embeds a [Prepared]; see there.
type Holder interface {
	prepared() *Prepared
}

// Prepare computes p's state for pub now, so that the first verification
// does not pay for it. It does nothing for keys other than RSA keys.
func Prepare(p *Prepared, pub crypto.PublicKey) {
	if k, ok := pub.(*rsa.PublicKey); ok {
		p.rsaKey(k)
	}
}

// PreparedFor reports whether h holds state prepared for pub, an RSA key,
// that the fast path will use. It is for tests of the packages that
// prepare keys.
func PreparedFor(h Holder, pub crypto.PublicKey) bool {
	k := h.prepared().rsa.Load()
	return k != nil && k.n != nil && crypto.PublicKey(k.pub) == pub
}

// rsaKey returns p's prepared form of pub, preparing it when p holds none
// or holds another key's.
func (p *Prepared) rsaKey(pub *rsa.PublicKey) *rsaKey {
	if k := p.rsa.Load(); k != nil && k.pub == pub {
		return k
	}
	// Two goroutines may both prepare a key on first use; either result is
	// right and the second store wins.
	k := newRSAKey(pub, fipsMode())
	p.rsa.Store(k)
	return k
}

// fipsMode reports whether only the Go Cryptographic Module (or
// BoringCrypto) may verify signatures. It cannot change after the program
// has started.
func fipsMode() bool { return fips140.Enabled() || boringCrypto }

// rsaKey is an RSA public key prepared for verification. A nil n means
// that crypto/rsa verifies with this key: in FIPS mode, and for keys
// crypto/rsa refuses, so that its error stays the answer.
type rsaKey struct {
	pub  *rsa.PublicKey // the key this was prepared from
	n    *bigmod.Modulus
	e    uint
	size int // k: the modulus' length in bytes
	// pad is 0x00 0x01 and then 0xff bytes, size bytes in all: every
	// encoding verifyPKCS1v15 accepts starts with all but the last
	// len(DigestInfo)+len(H)+1 of them.
	pad []byte
}

// newRSAKey prepares pub. It returns a key with a nil n (use crypto/rsa)
// when fips is set and for every key crypto/rsa.VerifyPKCS1v15 refuses
// outright (nil or even modulus, under 1024 bits, even exponent or one
// outside [3, 2³¹-1]).
func newRSAKey(pub *rsa.PublicKey, fips bool) *rsaKey {
	k := &rsaKey{pub: pub}
	if fips || pub.N == nil || pub.N.Sign() <= 0 || pub.N.Bit(0) == 0 || pub.N.BitLen() < 1024 ||
		pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return k
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return k
	}
	k.n, k.e, k.size = n, uint(pub.E), pub.Size()
	k.pad = make([]byte, k.size)
	k.pad[1] = 0x01
	for i := 2; i < len(k.pad); i++ {
		k.pad[i] = 0xff
	}
	return k
}

// digestInfoPrefix is the DER encoding of DigestInfo up to the digest
// itself (RFC 8017 section 9.2, note 1), for the hashes of RS256, RS384
// and RS512.
func digestInfoPrefix(h crypto.Hash) []byte {
	switch h {
	case crypto.SHA256:
		return []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	case crypto.SHA384:
		return []byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}
	case crypto.SHA512:
		return []byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}
	}
	return nil
}

// verifyPKCS1v15 reports whether sig is a valid RSASSA-PKCS1-v1_5
// signature of digest, a hash h of the message, under k. k.n must not be
// nil.
func (k *rsaKey) verifyPKCS1v15(h crypto.Hash, digest, sig []byte) bool {
	prefix := digestInfoPrefix(h)
	// RFC 8017 section 8.2.2 step 1: the signature is exactly k bytes.
	if prefix == nil || len(digest) != h.Size() || len(sig) != k.size {
		return false
	}
	// Section 9.2 step 3: the encoding needs room for 8 bytes of padding.
	if k.size < len(prefix)+len(digest)+11 {
		return false
	}
	// Step 2: s < n (SetBytes refuses anything else), m = s^e mod n.
	s, err := bigmod.NewNat().SetBytes(sig, k.n)
	if err != nil {
		return false
	}
	m := bigmod.NewNat().ExpShortVarTime(s, k.e, k.n)

	// 512 bytes on the stack cover keys up to 4096 bits.
	var buf [512]byte
	var em []byte
	if k.size <= len(buf) {
		em = buf[:k.size]
	} else {
		em = make([]byte, k.size)
	}
	if !natBytes(em, m.Bits()) {
		return false
	}
	// Steps 3 and 4: EM must be EM' = 0x00 || 0x01 || PS (0xff…) || 0x00
	// || DigestInfo || H, compared in constant time part by part, the
	// padding against the key's prepared pad.
	t := k.size - len(prefix) - len(digest) // where DigestInfo starts
	return subtle.ConstantTimeCompare(em[:t-1], k.pad[:t-1])&
		subtle.ConstantTimeByteEq(em[t-1], 0x00)&
		subtle.ConstantTimeCompare(em[t:t+len(prefix)], prefix)&
		subtle.ConstantTimeCompare(em[t+len(prefix):], digest) == 1
}

// natBytes writes the little-endian limbs x into dst big-endian, zero
// extended. It reports false if x does not fit, which a value reduced
// modulo an n of len(dst) bytes always does.
func natBytes(dst []byte, x []uint) bool {
	const limbBytes = bits.UintSize / 8
	i := len(dst)
	for j, limb := range x {
		if i >= limbBytes {
			i -= limbBytes
			if limbBytes == 8 {
				binary.BigEndian.PutUint64(dst[i:], uint64(limb))
			} else {
				binary.BigEndian.PutUint32(dst[i:], uint32(limb))
			}
			continue
		}
		// The last bytes of dst: the rest of x must be zero.
		for ; i > 0; i-- {
			dst[i-1] = byte(limb)
			limb >>= 8
		}
		if limb != 0 {
			return false
		}
		for _, l := range x[j+1:] {
			if l != 0 {
				return false
			}
		}
		return true
	}
	clear(dst[:i])
	return true
}
