package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
)

var enc = base64.RawURLEncoding

func rsaJWK(t testing.TB, bits int) (*rsa.PrivateKey, JWK) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k, JWK{Kty: "RSA", Kid: "r", N: enc.EncodeToString(k.N.Bytes()), E: enc.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(t testing.TB, c elliptic.Curve, crv string) (*ecdsa.PrivateKey, JWK) {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	size := (c.Params().BitSize + 7) / 8
	return k, JWK{Kty: "EC", Kid: "e", Crv: crv, X: enc.EncodeToString(k.X.FillBytes(make([]byte, size))), Y: enc.EncodeToString(k.Y.FillBytes(make([]byte, size)))}
}

func TestJWKPublicKey(t *testing.T) {
	_, rsa2048 := rsaJWK(t, 2048)
	_, rsa1024 := rsaJWK(t, 1024)
	_, p256 := ecJWK(t, elliptic.P256(), "P-256")
	_, p384 := ecJWK(t, elliptic.P384(), "P-384")
	_, p521 := ecJWK(t, elliptic.P521(), "P-521")
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ed := JWK{Kty: "OKP", Crv: "Ed25519", X: enc.EncodeToString(edPub)}

	with := func(k JWK, f func(*JWK)) JWK { f(&k); return k }
	offCurve := with(p256, func(k *JWK) {
		y, _ := enc.DecodeString(k.Y)
		y[len(y)-1] ^= 1
		k.Y = enc.EncodeToString(y)
	})

	tests := []struct {
		name    string
		jwk     JWK
		wantErr string // substring; "" means success
		notSig  bool
	}{
		{"rsa", rsa2048, "", false},
		{"rsa with alg and use", with(rsa2048, func(k *JWK) { k.Alg, k.Use = "RS256", "sig" }), "", false},
		{"rsa pss alg", with(rsa2048, func(k *JWK) { k.Alg = "PS512" }), "", false},
		{"rsa 1024 bits", rsa1024, "1024 bits", false},
		{"rsa enc use", with(rsa2048, func(k *JWK) { k.Use = "enc"; k.Alg = "RSA-OAEP" }), "use", true},
		{"rsa oaep alg without use", with(rsa2048, func(k *JWK) { k.Alg = "RSA-OAEP" }), "alg", true},
		{"key_ops without verify", with(rsa2048, func(k *JWK) { k.KeyOps = []string{"encrypt"} }), "key_ops", true},
		{"key_ops with verify", with(rsa2048, func(k *JWK) { k.KeyOps = []string{"verify"} }), "", false},
		{"rsa missing n", with(rsa2048, func(k *JWK) { k.N = "" }), "missing n", false},
		{"rsa padded n", with(rsa2048, func(k *JWK) { k.N += "==" }), "base64url", false},
		{"rsa even exponent", with(rsa2048, func(k *JWK) { k.E = enc.EncodeToString([]byte{2}) }), "public exponent", false},
		{"rsa huge exponent", with(rsa2048, func(k *JWK) { k.E = enc.EncodeToString([]byte{1, 0, 0, 0, 1}) }), "out of range", false},
		{"rsa leading zero", with(rsa2048, func(k *JWK) {
			n, _ := enc.DecodeString(k.N)
			k.N = enc.EncodeToString(append([]byte{0}, n...))
		}), "leading zero", false},
		{"alg of other family", with(rsa2048, func(k *JWK) { k.Alg = "ES256" }), "does not fit", false},
		{"unknown alg", with(rsa2048, func(k *JWK) { k.Alg = "XS256" }), "unsupported alg", false},
		{"p256", p256, "", false},
		{"p384", p384, "", false},
		{"p521", p521, "", false},
		{"p256 with ES384 alg", with(p256, func(k *JWK) { k.Alg = "ES384" }), "does not fit", false},
		{"point off curve", offCurve, "invalid P-256 point", false},
		{"short coordinate", with(p256, func(k *JWK) { k.X = enc.EncodeToString([]byte{1, 2, 3}) }), "32 bytes", false},
		{"secp256k1", with(p256, func(k *JWK) { k.Crv = "secp256k1" }), "unsupported EC curve", false},
		{"ed25519", ed, "", false},
		{"ed25519 alg EdDSA", with(ed, func(k *JWK) { k.Alg = "EdDSA" }), "", false},
		{"x25519", with(ed, func(k *JWK) { k.Crv = "X25519" }), "unsupported OKP curve", false},
		{"ed25519 short", with(ed, func(k *JWK) { k.X = enc.EncodeToString([]byte{1}) }), "32 bytes", false},
		{"oct", JWK{Kty: "oct"}, "unsupported kty", false},
		{"no kty", JWK{}, "missing kty", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := tt.jwk.PublicKey()
			if tt.wantErr == "" {
				if err != nil || pub == nil {
					t.Fatalf("PublicKey() = %v, %v; want a key", pub, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("PublicKey() error = %v; want one containing %q", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrNotSigningKey); got != tt.notSig {
				t.Errorf("errors.Is(err, ErrNotSigningKey) = %v; want %v", got, tt.notSig)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	h, p, s := enc.EncodeToString([]byte(`{"alg":"RS256"}`)), enc.EncodeToString([]byte(`{"a":1}`)), enc.EncodeToString([]byte{1, 2, 3})
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"valid", h + "." + p + "." + s, nil},
		{"empty signature", h + "." + p + ".", nil},
		{"two parts", h + "." + p, ErrParts},
		{"four parts", h + "." + p + "." + s + ".x", ErrParts},
		{"one part", h, ErrParts},
		{"empty header", "." + p + "." + s, ErrParts},
		{"empty payload", h + ".." + s, ErrParts},
		{"padding", h + "." + p + "=." + s, ErrEncoding},
		{"std alphabet", h + "." + p + "." + "ab+/", ErrEncoding},
		{"newline", h + "." + p + "\n." + s, ErrEncoding},
		{"carriage return", h + "\r." + p + "." + s, ErrEncoding},
		{"space", h + " ." + p + "." + s, ErrEncoding},
		{"non-canonical trailing bits", h + "." + p + "." + "AB", ErrEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Split(tt.raw)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Split(%q) error = %v; want %v", tt.raw, err, tt.want)
			}
			if err != nil {
				return
			}
			if string(c.Header) != `{"alg":"RS256"}` || string(c.Payload) != `{"a":1}` {
				t.Errorf("Split() parts = %q, %q", c.Header, c.Payload)
			}
			if want := h + "." + p; c.SigningInput != want {
				t.Errorf("SigningInput = %q; want %q", c.SigningInput, want)
			}
		})
	}
}

// signer signs like a JWS issuer would, for round trips through Verify.
type signer struct {
	alg  string
	key  crypto.Signer
	pub  crypto.PublicKey
	hash crypto.Hash
}

func (s signer) sign(t *testing.T, input string) []byte {
	t.Helper()
	if s.alg == "EdDSA" || s.alg == "Ed25519" {
		return ed25519.Sign(s.key.(ed25519.PrivateKey), []byte(input))
	}
	h := s.hash.New()
	h.Write([]byte(input))
	d := h.Sum(nil)
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		if strings.HasPrefix(s.alg, "PS") {
			sig, err := rsa.SignPSS(rand.Reader, k, s.hash, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, s.hash, d)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		r, ss, err := ecdsa.Sign(rand.Reader, k, d)
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		return append(r.FillBytes(make([]byte, size)), ss.FillBytes(make([]byte, size))...)
	}
	t.Fatalf("no signer for %s", s.alg)
	return nil
}

func TestVerify(t *testing.T) {
	rk, _ := rsaJWK(t, 2048)
	e256, _ := ecJWK(t, elliptic.P256(), "P-256")
	e384, _ := ecJWK(t, elliptic.P384(), "P-384")
	e521, _ := ecJWK(t, elliptic.P521(), "P-521")
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	signers := []signer{
		{"RS256", rk, &rk.PublicKey, crypto.SHA256},
		{"RS384", rk, &rk.PublicKey, crypto.SHA384},
		{"RS512", rk, &rk.PublicKey, crypto.SHA512},
		{"PS256", rk, &rk.PublicKey, crypto.SHA256},
		{"PS384", rk, &rk.PublicKey, crypto.SHA384},
		{"PS512", rk, &rk.PublicKey, crypto.SHA512},
		{"ES256", e256, &e256.PublicKey, crypto.SHA256},
		{"ES384", e384, &e384.PublicKey, crypto.SHA384},
		{"ES512", e521, &e521.PublicKey, crypto.SHA512},
		{"EdDSA", edPriv, edPub, 0},
		{"Ed25519", edPriv, edPub, 0},
	}
	const input = "eyJhbGciOiJ4In0.eyJzdWIiOiJhIn0"
	for _, s := range signers {
		t.Run(s.alg, func(t *testing.T) {
			sig := s.sign(t, input)
			if err := Verify(s.alg, s.pub, input, sig); err != nil {
				t.Fatalf("Verify(%s) = %v; want nil", s.alg, err)
			}
			if err := Verify(s.alg, s.pub, input+"x", sig); !errors.Is(err, ErrSignature) {
				t.Errorf("Verify(%s, tampered input) = %v; want ErrSignature", s.alg, err)
			}
			bad := append([]byte(nil), sig...)
			bad[len(bad)/2] ^= 0x40
			if err := Verify(s.alg, s.pub, input, bad); !errors.Is(err, ErrSignature) {
				t.Errorf("Verify(%s, flipped signature) = %v; want ErrSignature", s.alg, err)
			}
			if err := Verify(s.alg, s.pub, input, sig[:len(sig)-1]); err == nil {
				t.Errorf("Verify(%s, short signature) = nil; want an error", s.alg)
			}
		})
	}
	// Every algorithm refuses every key of another type or curve.
	for _, s := range signers {
		for _, other := range signers {
			fits := KeyFits(s.alg, other.pub)
			sameFamily := algorithms[s.alg].family == algorithms[other.alg].family ||
				(algorithms[s.alg].family == familyPSS && algorithms[other.alg].family == familyRSA) ||
				(algorithms[s.alg].family == familyRSA && algorithms[other.alg].family == familyPSS)
			want := sameFamily && algorithms[s.alg].size == algorithms[other.alg].size
			if fits != want {
				t.Errorf("KeyFits(%s, key of %s) = %v; want %v", s.alg, other.alg, fits, want)
			}
			if !fits {
				if err := Verify(s.alg, other.pub, input, []byte{1}); err == nil || errors.Is(err, ErrSignature) {
					t.Errorf("Verify(%s, key of %s) = %v; want a key mismatch error", s.alg, other.alg, err)
				}
			}
		}
	}
	for _, alg := range []string{"none", "HS256", "HS512", ""} {
		if Supported(alg) {
			t.Errorf("Supported(%q) = true; want false", alg)
		}
		if err := Verify(alg, &rk.PublicKey, input, nil); err == nil {
			t.Errorf("Verify(%q) = nil; want an error", alg)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.AQID")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := Split(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(raw, c.SigningInput+".") {
			t.Fatalf("SigningInput %q is not a prefix of %q", c.SigningInput, raw)
		}
	})
}
