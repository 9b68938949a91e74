package jose

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"math/bits"
	mathrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
)

// testKey is one of the fixed keys in testdata/rsa-keys.pem, with
// signatures made once for the differential fuzz target.
type testKey struct {
	priv *rsa.PrivateKey
	prep *rsaKey
	// valid[h] signs testMessage under testHashes[h].
	valid [3][]byte
	// forged are signatures of encodings that must not verify for
	// testMessage under SHA-256: each EM is wrong in one place.
	forged [][]byte
}

var testHashes = [3]crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

const testMessage = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJrZXlnYXRlIn0"

func digestOf(h crypto.Hash, msg string) []byte {
	w := h.New()
	io.WriteString(w, msg)
	return w.Sum(nil)
}

// loadTestKeys parses the fixed keys once per test binary: the fuzz
// target calls it on every input.
var loadTestKeys = sync.OnceValues(func() ([]*testKey, error) {
	data, err := os.ReadFile("testdata/rsa-keys.pem")
	if err != nil {
		return nil, err
	}
	var keys []*testKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		priv, err := x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", len(keys), err)
		}
		k := &testKey{priv: priv, prep: newRSAKey(&priv.PublicKey, false)}
		if k.prep.n == nil {
			return nil, fmt.Errorf("key %d (%d bits, e=%d) was not prepared", len(keys), priv.N.BitLen(), priv.E)
		}
		for i, h := range testHashes {
			if k.valid[i], err = rsa.SignPKCS1v15(nil, priv, h, digestOf(h, testMessage)); err != nil {
				return nil, err
			}
		}
		for _, em := range forgedEncodings(priv.Size(), digestOf(crypto.SHA256, testMessage)) {
			k.forged = append(k.forged, rawSign(priv, em))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key in testdata/rsa-keys.pem")
	}
	return keys, nil
})

func testKeys(t testing.TB) []*testKey {
	t.Helper()
	keys, err := loadTestKeys()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// rawSign is the RSA private operation, m^d mod n (with the CRT), with
// no padding, to sign encodings crypto/rsa would never produce.
func rawSign(priv *rsa.PrivateKey, em []byte) []byte {
	m := new(big.Int).SetBytes(em)
	p, q, pc := priv.Primes[0], priv.Primes[1], priv.Precomputed
	m1 := new(big.Int).Exp(m, pc.Dp, p)
	m2 := new(big.Int).Exp(m, pc.Dq, q)
	h := m1.Sub(m1, m2)
	h.Mul(h, pc.Qinv).Mod(h, p)
	s := h.Mul(h, q).Add(h, m2)
	return s.FillBytes(make([]byte, priv.Size()))
}

// forgedEncodings are near misses of encoding(crypto.SHA256, …), the shapes that
// padding parsers have accepted by mistake.
func forgedEncodings(k int, digest []byte) [][]byte {
	prefix := digestInfoPrefix(crypto.SHA256)
	t := k - len(prefix) - len(digest) // where DigestInfo starts
	edit := func(f func(em []byte) []byte) []byte { return f(encoding(crypto.SHA256, k, digest)) }
	return [][]byte{
		edit(func(em []byte) []byte { em[1] = 2; return em }),                 // block type 2
		edit(func(em []byte) []byte { em[1] = 0; return em }),                 // block type 0
		edit(func(em []byte) []byte { em[2] = 0xfe; return em }),              // a padding byte not FF
		edit(func(em []byte) []byte { em[t-1] = 0xff; return em }),            // no 0x00 separator
		edit(func(em []byte) []byte { em[t+1]++; return em }),                 // DigestInfo length off
		edit(func(em []byte) []byte { em[t+14] = 0x02; return em }),           // SHA-384's OID
		edit(func(em []byte) []byte { em[len(em)-1] ^= 1; return em }),        // another digest
		edit(func(em []byte) []byte { em[t+15], em[t+16] = 0, 0; return em }), // parameters not NULL
		// The separator moved left: DigestInfo, digest, then garbage (the
		// Bleichenbacher 2006 layout for e = 3).
		edit(func(em []byte) []byte {
			body := append(append([]byte{}, prefix...), digest...)
			clear(em[2:])
			for i := 2; i < 10; i++ {
				em[i] = 0xff
			}
			copy(em[11:], body)
			for i := 11 + len(body); i < len(em); i++ {
				em[i] = 0x5a
			}
			return em
		}),
		// The padding shortened to 7 bytes, the digest prefixed by zeros.
		edit(func(em []byte) []byte {
			body := append(append([]byte{}, prefix...), digest...)
			clear(em[2:])
			for i := 2; i < 9; i++ {
				em[i] = 0xff
			}
			copy(em[len(em)-len(body):], body)
			return em
		}),
	}
}

func TestRSAKnownAnswers(t *testing.T) {
	for _, k := range testKeys(t) {
		pub := &k.priv.PublicKey
		name := fmt.Sprintf("%dbits/e=%d", pub.N.BitLen(), pub.E)
		t.Run(name, func(t *testing.T) {
			for i, h := range testHashes {
				digest := digestOf(h, testMessage)
				if !k.prep.verifyPKCS1v15(h, digest, k.valid[i]) {
					t.Errorf("%v: a crypto/rsa signature does not verify", h)
				}
				for bit := 0; bit < len(k.valid[i])*8; bit += 97 {
					sig := bytes.Clone(k.valid[i])
					sig[bit/8] ^= 1 << (bit % 8)
					if k.prep.verifyPKCS1v15(h, digest, sig) {
						t.Errorf("%v: verifies with bit %d of the signature flipped", h, bit)
					}
				}
				other := digestOf(h, testMessage+".")
				if k.prep.verifyPKCS1v15(h, other, k.valid[i]) {
					t.Errorf("%v: verifies over another message", h)
				}
				for _, wrong := range testHashes {
					if wrong != h && k.prep.verifyPKCS1v15(wrong, digestOf(wrong, testMessage), k.valid[i]) {
						t.Errorf("%v signature verifies as %v", h, wrong)
					}
				}
			}
			digest := digestOf(crypto.SHA256, testMessage)
			if sig := rawSign(k.priv, encoding(crypto.SHA256, pub.Size(), digest)); !k.prep.verifyPKCS1v15(crypto.SHA256, digest, sig) {
				t.Errorf("the raw signature of a correct encoding does not verify")
			}
			for i, sig := range k.forged {
				if k.prep.verifyPKCS1v15(crypto.SHA256, digest, sig) {
					t.Errorf("forged encoding %d verifies", i)
				}
				if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig) == nil {
					t.Errorf("forged encoding %d verifies with crypto/rsa: the test is wrong", i)
				}
			}
			n := pub.N.FillBytes(make([]byte, pub.Size()))
			nMinus1 := new(big.Int).Sub(pub.N, big.NewInt(1)).FillBytes(make([]byte, pub.Size()))
			for _, c := range []struct {
				name string
				sig  []byte
			}{
				{"empty", nil},
				{"one byte short", k.valid[0][1:]},
				{"leading zero added", append([]byte{0}, k.valid[0]...)},
				{"s = n", n},
				{"s = n-1", nMinus1},
				{"all zero", make([]byte, pub.Size())},
				{"all FF", bytes.Repeat([]byte{0xff}, pub.Size())},
				{"s = 1", append(make([]byte, pub.Size()-1), 1)},
			} {
				if k.prep.verifyPKCS1v15(crypto.SHA256, digest, c.sig) {
					t.Errorf("%s: verifies", c.name)
				}
			}
			// s + n ≡ s (mod n): a verifier that reduces s instead of
			// refusing it accepts this.
			if v := new(big.Int).Add(pub.N, new(big.Int).SetBytes(k.valid[0])); v.BitLen() <= 8*pub.Size() {
				if k.prep.verifyPKCS1v15(crypto.SHA256, digest, v.FillBytes(make([]byte, pub.Size()))) {
					t.Errorf("s + n verifies")
				}
			}
			if k.prep.verifyPKCS1v15(crypto.SHA256, digest[1:], k.valid[0]) {
				t.Errorf("a short digest verifies")
			}
			// A 33-byte "SHA-256 digest" encoded the same way: crypto/rsa
			// refuses the digest before looking at the signature.
			long := append(bytes.Clone(digest), 0x5a)
			if k.prep.verifyPKCS1v15(crypto.SHA256, long, rawSign(k.priv, encoding(crypto.SHA256, pub.Size(), long))) {
				t.Errorf("a 33-byte SHA-256 digest verifies")
			}
			if k.prep.verifyPKCS1v15(crypto.SHA1, make([]byte, 20), k.valid[0]) {
				t.Errorf("SHA-1 verifies")
			}
		})
	}
}

func TestRSAExponentsAndSizes(t *testing.T) {
	want := map[[2]int]bool{{2048, 65537}: true, {2048, 3}: true, {3072, 65537}: true, {4096, 65537}: true, {4096, 3}: true}
	for _, k := range testKeys(t) {
		delete(want, [2]int{k.priv.N.BitLen(), k.priv.E})
	}
	if len(want) > 0 {
		t.Errorf("testdata/rsa-keys.pem lacks keys (bits, e) %v", want)
	}
}

// TestRSAFallback checks which keys newRSAKey prepares: in FIPS mode none,
// otherwise every key crypto/rsa would verify with.
func TestRSAFallback(t *testing.T) {
	good := &testKeys(t)[0].priv.PublicKey
	with := func(f func(k *rsa.PublicKey)) *rsa.PublicKey {
		k := &rsa.PublicKey{N: new(big.Int).Set(good.N), E: good.E}
		f(k)
		return k
	}
	tests := []struct {
		name    string
		pub     *rsa.PublicKey
		fips    bool
		prepare bool
	}{
		{"good key", good, false, true},
		{"FIPS mode", good, true, false},
		{"nil modulus", with(func(k *rsa.PublicKey) { k.N = nil }), false, false},
		{"negative modulus", with(func(k *rsa.PublicKey) { k.N.Neg(k.N) }), false, false},
		{"even modulus", with(func(k *rsa.PublicKey) { k.N.SetBit(k.N, 0, 0) }), false, false},
		{"1023 bits", with(func(k *rsa.PublicKey) { k.N.Rsh(k.N, 1025).SetBit(k.N, 0, 1) }), false, false},
		{"e = 1", with(func(k *rsa.PublicKey) { k.E = 1 }), false, false},
		{"even e", with(func(k *rsa.PublicKey) { k.E = 65536 }), false, false},
		{"e over 2^31-1", with(func(k *rsa.PublicKey) { k.E = 1<<31 + 1 }), false, false},
		{"e = 3", with(func(k *rsa.PublicKey) { k.E = 3 }), false, true},
	}
	for _, tt := range tests {
		k := newRSAKey(tt.pub, tt.fips)
		if got := k.n != nil; got != tt.prepare {
			t.Errorf("%s: newRSAKey(fips=%v) prepared = %v; want %v", tt.name, tt.fips, got, tt.prepare)
		}
		if k.pub != tt.pub {
			t.Errorf("%s: newRSAKey does not remember its key", tt.name)
		}
	}
}

type holder struct{ Prepared }

func TestVerifyPrepared(t *testing.T) {
	k := testKeys(t)[0]
	pub := &k.priv.PublicKey
	for i, alg := range []string{"RS256", "RS384", "RS512"} {
		sig := k.valid[i]
		var h holder // prepared on first use
		if err := VerifyPrepared(alg, &h, pub, testMessage, sig); err != nil {
			t.Errorf("%s: VerifyPrepared = %v", alg, err)
		}
		if p := h.rsa.Load(); p == nil || p.n == nil || p.pub != pub {
			t.Errorf("%s: the key was not prepared on first use", alg)
		}
		bad := bytes.Clone(sig)
		bad[10] ^= 0x80
		if err := VerifyPrepared(alg, &h, pub, testMessage, bad); err != ErrSignature {
			t.Errorf("%s: tampered signature: VerifyPrepared = %v; want ErrSignature", alg, err)
		}
		if err := VerifyPrepared(alg, nil, pub, testMessage, sig); err != nil {
			t.Errorf("%s: nil holder: VerifyPrepared = %v", alg, err)
		}
	}

	// A holder prepared for one key verifies with another key when the
	// public key it is given changes.
	var h holder
	Prepare(&h.Prepared, pub)
	other := testKeys(t)[1]
	if err := VerifyPrepared("RS256", &h, &other.priv.PublicKey, testMessage, other.valid[0]); err != nil {
		t.Errorf("after a key change: VerifyPrepared = %v", err)
	}
	if err := VerifyPrepared("RS256", &h, &other.priv.PublicKey, testMessage, k.valid[0]); err != ErrSignature {
		t.Errorf("after a key change, the old key's signature: VerifyPrepared = %v; want ErrSignature", err)
	}

	// A key the fast path does not take goes to crypto/rsa, which keeps
	// its verdict.
	small := &rsa.PublicKey{N: new(big.Int).Rsh(pub.N, 1100), E: 65537}
	small.N.SetBit(small.N, 0, 1)
	var hs holder
	if err := VerifyPrepared("RS256", &hs, small, testMessage, k.valid[0]); err != ErrSignature {
		t.Errorf("a sub-1024-bit key: VerifyPrepared = %v; want ErrSignature", err)
	}
	if p := hs.rsa.Load(); p == nil || p.n != nil {
		t.Errorf("a sub-1024-bit key was prepared")
	}

	// PS256 stays on crypto/rsa and is unaffected by a prepared key.
	digest := sha256.Sum256([]byte(testMessage))
	pss, err := rsa.SignPSS(rand.Reader, k.priv, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		t.Fatal(err)
	}
	Prepare(&h.Prepared, pub)
	if err := VerifyPrepared("PS256", &h, pub, testMessage, pss); err != nil {
		t.Errorf("PS256: VerifyPrepared = %v", err)
	}
	if err := VerifyPrepared("RS256", &h, pub, testMessage, pss); err != ErrSignature {
		t.Errorf("a PS256 signature as RS256: VerifyPrepared = %v; want ErrSignature", err)
	}
}

func TestNatBytes(t *testing.T) {
	tests := []struct {
		limbs []uint
		size  int
		want  []byte
		ok    bool
	}{
		{[]uint{0x0102}, 3, []byte{0, 1, 2}, true},
		{[]uint{0x0102, 0}, 2, []byte{1, 2}, true},
		{[]uint{0x010203}, 2, nil, false},
		{[]uint{0, 1}, 8, nil, false},
		{nil, 2, []byte{0, 0}, true},
	}
	for _, tt := range tests {
		dst := bytes.Repeat([]byte{0xee}, tt.size)
		ok := natBytes(dst, tt.limbs)
		if ok != tt.ok || ok && !bytes.Equal(dst, tt.want) {
			t.Errorf("natBytes(%d, %x) = %x, %v; want %x, %v", tt.size, tt.limbs, dst, ok, tt.want, tt.ok)
		}
	}
}

// TestNatBytesBig checks natBytes against math/big on lengths that end
// inside a limb, with values that fit and values one byte too long.
func TestNatBytesBig(t *testing.T) {
	r := mathrand.New(mathrand.NewPCG(1, 2))
	for size := 1; size <= 70; size++ {
		for _, extra := range []int{0, 1} {
			b := make([]byte, size+extra)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			b[0] |= 1 // so that the value really is size+extra bytes long
			v := new(big.Int).SetBytes(b)
			words := v.Bits()
			limbs := make([]uint, len(words), len(words)+r.IntN(3)) // zero limbs above, as bigmod keeps
			for i, w := range words {
				limbs[i] = uint(w)
			}
			limbs = limbs[:cap(limbs)]
			dst := bytes.Repeat([]byte{0xee}, size)
			ok := natBytes(dst, limbs)
			if ok != (extra == 0) || ok && !bytes.Equal(dst, v.FillBytes(make([]byte, size))) {
				t.Errorf("natBytes(%d, %x) = %x, %v; want %x, %v", size, b, dst, ok, b, extra == 0)
			}
		}
	}
}

// FuzzRSAVerify checks that the prepared verification gives
// crypto/rsa.VerifyPKCS1v15's verdict, for signatures built from the
// fuzzer's input in the ways attacks and bugs shape them. With op below
// opRandomKey it uses the fixed keys; from opRandomKey up, a public key
// the fuzzer chooses (see fuzzRandomKey).
func FuzzRSAVerify(f *testing.F) {
	keys := testKeys(f)
	for op := range uint8(16) {
		f.Add(uint8(0), uint8(0), op, []byte(testMessage), []byte{1, 2, 3}, uint32(77))
	}
	f.Add(uint8(1), uint8(2), uint8(2), []byte("x"), []byte{}, uint32(4000))
	f.Add(uint8(7), uint8(1), uint8(5), []byte(""), []byte{0xff}, uint32(0))
	// Random keys: moduli of known factors with valid signatures, for
	// exponents crypto/rsa takes and refuses, and of several sizes.
	for _, c := range []struct {
		e     uint8 // index in fuzzExponents
		shape uint8
		bits  uint32
	}{
		{5, 8, 2048}, {2, 8, 2048}, {2, 8, 1100}, {5, 8, 4200}, {5, 8, 950}, {5, 8, 1023}, {5, 8, 1030}, {0, 8, 2048}, {9, 8, 2048},
		{10, 8, 2048}, {7, 8, 2048}, {5, 9, 2048}, {5, 10, 2048}, {5, 11, 2048}, {5, 12, 2048}, {5, 13, 3000},
		{5, 3, 2048}, {5, 4, 2048}, {5, 5, 2048}, {3, 1, 1024}, {4, 2, 1024},
	} {
		f.Add(c.e, uint8(0), opRandomKey|opKnownFactors|c.shape, []byte(testMessage), []byte("seed"), c.bits)
	}
	// Random keys taken from the input as they are: a fixed key's modulus,
	// with leading zeros, made even, or cut short, and its signature.
	k0 := keys[0]
	n0 := k0.priv.N.Bytes()
	even := bytes.Clone(n0)
	even[len(even)-1] &^= 1
	for _, c := range []struct {
		n     []byte
		shape uint8
	}{
		{n0, 0}, {append([]byte{0, 0}, n0...), 0}, {even, 0}, {n0[1:], 0}, {n0, 3}, {n0, 5}, {n0, 6}, {n0, 7},
	} {
		f.Add(fuzzExponentIndex(k0.priv.E), uint8(0), opRandomKey|c.shape, k0.valid[0], c.n, uint32(0))
	}
	f.Fuzz(func(t *testing.T, keyIdx, hashIdx, op uint8, msg, data []byte, pos uint32) {
		if op >= opRandomKey {
			fuzzRandomKey(t, keyIdx, hashIdx, op, msg, data, pos)
			return
		}
		k := keys[int(keyIdx)%len(keys)]
		pub := &k.priv.PublicKey
		size := pub.Size()
		hi := int(hashIdx) % len(testHashes)
		h := testHashes[hi]
		digest := digestOf(h, string(msg))
		good := digestOf(h, testMessage)
		valid := k.valid[hi]
		var sig []byte
		mustVerify := false
		switch op % 16 {
		case 0: // the input as the signature
			sig = data
		case 1: // a valid signature
			sig, digest, mustVerify = valid, good, true
		case 2: // a valid signature with one bit flipped
			sig, digest = bytes.Clone(valid), good
			b := int(pos) % (8 * size)
			sig[b/8] ^= 1 << (b % 8)
		case 3: // a valid signature over another message (or the same)
			sig = valid
		case 4: // the input as the digest, any length
			sig, digest = valid, data
		case 5: // s ≥ n: n plus the input, if it fits
			v := new(big.Int).Add(pub.N, new(big.Int).SetBytes(data))
			if v.BitLen() > 8*size {
				v.Set(pub.N)
			}
			sig, digest = v.FillBytes(make([]byte, size)), good
		case 6: // s just under n
			v := new(big.Int).Sub(pub.N, new(big.Int).SetBytes(data))
			v.Sub(v, big.NewInt(1))
			if v.Sign() < 0 {
				v.SetInt64(0)
			}
			sig, digest = v.FillBytes(make([]byte, size)), good
		case 7: // all zero, of any length near k
			sig, digest = make([]byte, size+int(pos%5)-2), good
		case 8: // all FF, of any length near k
			sig, digest = bytes.Repeat([]byte{0xff}, size+int(pos%5)-2), good
		case 9: // a valid signature, cut or extended
			switch pos % 4 {
			case 0:
				sig = valid[1:]
			case 1:
				sig = append([]byte{0}, valid...)
			case 2:
				sig = append(bytes.Clone(valid), data...)
			case 3:
				sig = valid[:min(len(data), len(valid))]
			}
			digest = good
		case 10: // a forged encoding, signed, as SHA-256
			sig, h, digest = k.forged[int(pos)%len(k.forged)], crypto.SHA256, digestOf(crypto.SHA256, testMessage)
		case 11: // a valid signature XORed with the input
			sig, digest = bytes.Clone(valid), good
			for i, b := range data {
				sig[(int(pos)+i)%size] ^= b
			}
		case 12: // a small s: the input, left-padded to k bytes
			if len(data) > size {
				data = data[:size]
			}
			sig = append(make([]byte, size-len(data)), data...)
		case 13: // the raw signature of the input as EM
			em := append(make([]byte, max(0, size-len(data))), data...)[:size]
			if new(big.Int).SetBytes(em).Cmp(pub.N) >= 0 {
				em[0] = 0
			}
			// Only with the 1024-bit key: the private operation is slow
			// on larger ones.
			if size > 128 {
				sig = em
				break
			}
			sig = rawSign(k.priv, em)
		case 14: // a correct encoding of the fuzzed message, signed raw
			if h != crypto.SHA256 || size > 128 {
				sig = valid
				break
			}
			sig = rawSign(k.priv, encoding(crypto.SHA256, size, digest))
			mustVerify = true
		case 15: // another key's valid signature
			sig, digest = keys[int(pos)%len(keys)].valid[hi], good
		}
		want := rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
		got := k.prep.verifyPKCS1v15(h, digest, sig)
		if got != want {
			t.Fatalf("key %d (%d bits, e=%d), %v, op %d: prepared verify = %v, crypto/rsa = %v\ndigest %x\nsig %x",
				int(keyIdx)%len(keys), pub.N.BitLen(), pub.E, h, op%16, got, want, digest, sig)
		}
		if mustVerify && !got {
			t.Fatalf("key %d, %v, op %d: a valid signature does not verify", int(keyIdx)%len(keys), h, op%16)
		}
	})
}

// FuzzRSAVerify's op from opRandomKey up selects fuzzRandomKey; below
// it, the fixed keys (op%16, as the committed corpus has them).
const (
	opRandomKey    = 0xc0
	opKnownFactors = 0x20 // with opRandomKey: a modulus of known factors
)

// fuzzExponents are the public exponents fuzzRandomKey tries, by index:
// those crypto/rsa takes (odd, from 3 to 2³¹−1) and those it refuses.
// An index past the end takes the exponent from the input.
func fuzzExponents() []int {
	es := []int{1, 2, 3, 5, 17, 65537, 65536, 1<<31 - 1, 1 << 31, 1<<31 + 1, 1<<31 - 3, 0, -3, -65537, 1<<16 + 1, 7}
	if bits.UintSize == 64 {
		var one uint64 = 1
		es = append(es, int(one<<32+1), int(one<<32-1), int(one<<40+3), int(one<<63-1))
	}
	return es
}

func fuzzExponentIndex(e int) uint8 {
	i := slices.Index(fuzzExponents(), e)
	if i < 0 {
		panic(fmt.Sprintf("exponent %d is not in fuzzExponents", e))
	}
	return uint8(i)
}

// fuzzPrimes are 128 primes of 48 to 62 bits, made once from a fixed
// seed: fuzzRandomKey multiplies some of them into moduli whose factors
// it knows, so that it can sign under them.
var fuzzPrimes = sync.OnceValue(func() []*big.Int {
	r := mathrand.New(mathrand.NewPCG(5, 6))
	var ps []*big.Int
	for len(ps) < 128 {
		bits := 48 + r.IntN(15)
		p := new(big.Int).SetUint64(r.Uint64()>>(64-bits) | 1<<(bits-1) | 1)
		if p.ProbablyPrime(20) && !slices.ContainsFunc(ps, func(q *big.Int) bool { return q.Cmp(p) == 0 }) {
			ps = append(ps, p)
		}
	}
	return ps
})

// knownFactors is a modulus made of distinct primes and the exponent it
// was made for.
type knownFactors struct {
	n      *big.Int
	primes []*big.Int
}

// newKnownFactors multiplies primes from fuzzPrimes, in an order seeded
// by seed, each one that keeps the product within bits bits (and at least
// one). With e odd and positive, it skips primes p with gcd(e, p−1) ≠ 1,
// so that every message has an e-th root modulo n.
func newKnownFactors(seed []byte, bits int, e int) *knownFactors {
	sum := sha256.Sum256(seed)
	r := mathrand.New(mathrand.NewChaCha8(sum))
	kf := &knownFactors{n: big.NewInt(1)}
	for _, i := range r.Perm(len(fuzzPrimes())) {
		p := fuzzPrimes()[i]
		if len(kf.primes) > 0 && kf.n.BitLen()+p.BitLen() > bits {
			continue
		}
		if e > 0 && e&1 == 1 {
			pm1 := new(big.Int).Sub(p, big.NewInt(1))
			if new(big.Int).GCD(nil, nil, big.NewInt(int64(e)), pm1).Cmp(big.NewInt(1)) != 0 {
				continue
			}
		}
		kf.primes = append(kf.primes, p)
		kf.n.Mul(kf.n, p)
	}
	return kf
}

// sign returns s with s^e ≡ em (mod n), k bytes long, computed prime by
// prime and joined with the Chinese remainder theorem: n is square-free,
// so s = em^d with e·d ≡ 1 modulo each p−1 is an e-th root of em. It
// reports false when e has no inverse modulo some p−1 (e even, say).
func (kf *knownFactors) sign(e int, em []byte, k int) ([]byte, bool) {
	m := new(big.Int).SetBytes(em)
	x, mod := big.NewInt(0), big.NewInt(1)
	for _, p := range kf.primes {
		pm1 := new(big.Int).Sub(p, big.NewInt(1))
		d := new(big.Int).ModInverse(new(big.Int).Mod(big.NewInt(int64(e)), pm1), pm1)
		if d == nil {
			return nil, false
		}
		sp := new(big.Int).Exp(new(big.Int).Mod(m, p), d, p)
		// x ≡ sp (mod p), keeping x mod the primes before.
		t := new(big.Int).Sub(sp, x)
		t.Mul(t, new(big.Int).ModInverse(new(big.Int).Mod(mod, p), p)).Mod(t, p)
		x.Add(x, t.Mul(t, mod))
		mod.Mul(mod, p)
	}
	if x.BitLen() > 8*k {
		return nil, false
	}
	return x.FillBytes(make([]byte, k)), true
}

// encoding is EM for digest under h, RFC 8017 section 9.2, or nil when
// k bytes cannot hold it.
func encoding(h crypto.Hash, k int, digest []byte) []byte {
	prefix := digestInfoPrefix(h)
	if k < len(prefix)+len(digest)+11 {
		return nil
	}
	em := make([]byte, k)
	em[1] = 1
	t := k - len(prefix) - len(digest)
	for i := 2; i < t-1; i++ {
		em[i] = 0xff
	}
	copy(em[t:], prefix)
	copy(em[t+len(prefix):], digest)
	return em
}

// fuzzRandomKey is FuzzRSAVerify with a public key the fuzzer chooses.
// The exponent is fuzzExponents()[keyIdx], or past its end the input's
// first eight bytes. The modulus is, with opKnownFactors, a product of
// known primes of about pos%4300 bits chosen by data, so that valid
// signatures can be made for it; otherwise data itself, as bytes: any
// length, even, with leading zeros. A random modulus (one whose factors
// nobody knows) has no signature anyone can make, and there the verdicts
// mostly agree on "refuse": the known-factor moduli are where the fuzzer
// also sees both sides accept.
func fuzzRandomKey(t *testing.T, keyIdx, hashIdx, op uint8, msg, data []byte, pos uint32) {
	es := fuzzExponents()
	var e int
	if int(keyIdx) < len(es) {
		e = es[keyIdx]
	} else {
		var b [8]byte
		copy(b[:], msg)
		e = int(binary.BigEndian.Uint64(b[:]))
	}
	h := testHashes[int(hashIdx)%len(testHashes)]
	digest := digestOf(h, string(msg))

	var kf *knownFactors
	pub := &rsa.PublicKey{E: e}
	if op&opKnownFactors != 0 {
		kf = newKnownFactors(data, int(pos%4300), e)
		pub.N = kf.n
	} else {
		pub.N = new(big.Int).SetBytes(data[:min(len(data), 4300/8)])
		digest = digestOf(h, testMessage)
	}
	size := pub.Size()
	fill := func(v *big.Int) []byte { // v as size bytes, or v's own length if longer
		if v.Sign() < 0 {
			v = new(big.Int)
		}
		return v.FillBytes(make([]byte, max(size, (v.BitLen()+7)/8)))
	}
	// A valid signature, when the factors are known and e can be inverted.
	var valid []byte
	if kf != nil {
		if em := encoding(h, size, digest); em != nil {
			valid, _ = kf.sign(e, em, size)
		}
	}
	one := big.NewInt(1)
	var sig []byte
	mustVerify := false
	shape := op & 0x1f
	if valid == nil && shape >= 8 {
		shape = 7
	}
	switch shape {
	case 0: // the input as the signature
		sig = msg
	case 1: // s = 0
		sig = make([]byte, size)
	case 2: // s = 1
		sig = fill(one)
	case 3: // s = n-1
		sig = fill(new(big.Int).Sub(pub.N, one))
	case 4: // s = n
		sig = fill(pub.N)
	case 5: // s = n+1
		sig = fill(new(big.Int).Add(pub.N, one))
	case 6: // a length off by one or two, zeros or FF
		sig = make([]byte, max(0, size+int(pos>>13%5)-2))
		if pos>>16&1 == 1 {
			for i := range sig {
				sig[i] = 0xff
			}
		}
	case 7: // the input as s, left-padded or cut to k bytes
		sig = append(make([]byte, max(0, size-len(msg))), msg...)[:size]
	case 8: // a valid signature
		sig, mustVerify = valid, true
	case 9: // a valid signature with one bit flipped
		sig = bytes.Clone(valid)
		b := int(pos>>13) % (8 * size)
		sig[b/8] ^= 1 << (b % 8)
	case 10: // a valid signature plus n: s ≥ n and s ≡ a valid one
		sig = fill(new(big.Int).Add(pub.N, new(big.Int).SetBytes(valid)))
	case 11: // a valid signature under another hash, checked as h
		other := testHashes[(int(hashIdx)+1)%len(testHashes)]
		if em := encoding(other, size, digestOf(other, string(msg))); em != nil {
			sig, _ = kf.sign(e, em, size)
		}
	case 12: // a forged encoding, signed
		if len(digest) == 32 && size >= 64 {
			forged := forgedEncodings(size, digest)
			sig, _ = kf.sign(e, forged[int(pos>>13)%len(forged)], size)
		}
	default: // a valid signature of another message
		sig, digest = valid, digestOf(h, string(msg)+".")
	}

	want := rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
	k := newRSAKey(pub, false)
	got := want // crypto/rsa verifies with the keys newRSAKey leaves to it
	if k.n != nil {
		got = k.verifyPKCS1v15(h, digest, sig)
	}
	if got != want {
		t.Fatalf("modulus of %d bits (known factors %v), e=%d, %v, shape %d: prepared verify = %v, crypto/rsa = %v\nn %x\ndigest %x\nsig %x",
			pub.N.BitLen(), kf != nil, e, h, shape, got, want, pub.N, digest, sig)
	}
	if mustVerify {
		// crypto/rsa verifies this signature exactly when it takes the
		// key at all: newRSAKey must prepare those keys, and only those.
		if want != (k.n != nil) {
			t.Fatalf("modulus of %d bits, e=%d: crypto/rsa verifies a valid signature = %v, newRSAKey prepared the key = %v",
				pub.N.BitLen(), e, want, k.n != nil)
		}
		// A key crypto/rsa takes: the signature must verify, or sign is
		// wrong and the fuzzer tests less than it seems.
		if pub.N.BitLen() >= 1024 && e >= 3 && e&1 == 1 && e <= 1<<31-1 && !want {
			t.Fatalf("modulus of %d bits, e=%d, %v: a signature made with the known factors does not verify", pub.N.BitLen(), e, h)
		}
	}
}

// BenchmarkRSAVerify compares crypto/rsa.VerifyPKCS1v15 with the prepared
// verification on the same signature, and measures the preparation that
// happens once per key.
func BenchmarkRSAVerify(b *testing.B) {
	for _, k := range testKeys(b) {
		pub := &k.priv.PublicKey
		if pub.E != 65537 || pub.N.BitLen()%1024 != 0 || pub.N.BitLen() < 2048 {
			continue
		}
		digest, sig := digestOf(crypto.SHA256, testMessage), k.valid[0]
		name := fmt.Sprintf("%d", pub.N.BitLen())
		b.Run(name+"/stdlib", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig) != nil {
					b.Fatal("does not verify")
				}
			}
		})
		b.Run(name+"/prepared", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !k.prep.verifyPKCS1v15(crypto.SHA256, digest, sig) {
					b.Fatal("does not verify")
				}
			}
		})
		b.Run(name+"/prepare", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				newRSAKey(pub, false)
			}
		})
	}
}

// TestVerifyPreparedConcurrent verifies with one holder from many
// goroutines, first use included; run it with -race.
func TestVerifyPreparedConcurrent(t *testing.T) {
	keys := testKeys(t)
	var h holder
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				// Alternate keys so that the prepared state is replaced
				// while others read it.
				k := keys[(g+i)%2]
				if err := VerifyPrepared("RS256", &h, &k.priv.PublicKey, testMessage, k.valid[0]); err != nil {
					t.Errorf("VerifyPrepared = %v", err)
					return
				}
				if err := VerifyPrepared("RS256", &h, &k.priv.PublicKey, testMessage, keys[(g+i+1)%2].valid[0]); err != ErrSignature {
					t.Errorf("another key's signature: VerifyPrepared = %v; want ErrSignature", err)
					return
				}
			}
		})
	}
	wg.Wait()
}
