package keycloaktest_test

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
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/keycloaktest"
)

// testJWK is a JWK as published by the certs endpoint.
type testJWK struct {
	Kid string `json:"kid"`
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// publicKey decodes the key material of k.
func (k testJWK) publicKey() (crypto.PublicKey, error) {
	dec := base64.RawURLEncoding.DecodeString
	switch k.Kty {
	case "RSA":
		n, err := dec(k.N)
		if err != nil {
			return nil, err
		}
		e, err := dec(k.E)
		if err != nil {
			return nil, err
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		curve, ok := curves[k.Crv]
		if !ok {
			return nil, fmt.Errorf("unknown curve %q", k.Crv)
		}
		x, err := dec(k.X)
		if err != nil {
			return nil, err
		}
		y, err := dec(k.Y)
		if err != nil {
			return nil, err
		}
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("unknown curve %q", k.Crv)
		}
		x, err := dec(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("bad Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unknown kty %q", k.Kty)
}

// verifySignature checks a JWS signature with the standard library.
func verifySignature(alg string, pub crypto.PublicKey, input, sig []byte) error {
	hashes := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}
	h := hashes[alg[len(alg)-3:]]
	var digest []byte
	if h != 0 {
		w := h.New()
		w.Write(input)
		digest = w.Sum(nil)
	}
	switch {
	case strings.HasPrefix(alg, "RS"):
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("not an RSA key")
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig)
	case strings.HasPrefix(alg, "PS"):
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("not an RSA key")
		}
		return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case strings.HasPrefix(alg, "ES"):
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("not an EC key")
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("signature length %d, want %d", len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			return errors.New("ecdsa: verification error")
		}
		return nil
	case alg == "EdDSA":
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return errors.New("not an Ed25519 key")
		}
		if !ed25519.Verify(k, input, sig) {
			return errors.New("ed25519: verification error")
		}
		return nil
	}
	return fmt.Errorf("unsupported alg %q", alg)
}

// verifyJWT verifies tok against the published keys: the kid must name a
// signing key published for the token's alg.
func verifyJWT(tok string, keys []testJWK) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d parts", len(parts))
	}
	var hdr struct{ Alg, Kid string }
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return err
	}
	for _, k := range keys {
		if k.Kid != hdr.Kid {
			continue
		}
		if k.Use != "sig" || k.Alg != hdr.Alg {
			return fmt.Errorf("key %s is %s/%s, token alg %s", k.Kid, k.Use, k.Alg, hdr.Alg)
		}
		pub, err := k.publicKey()
		if err != nil {
			return err
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			return err
		}
		return verifySignature(hdr.Alg, pub, []byte(parts[0]+"."+parts[1]), sig)
	}
	return fmt.Errorf("no key %q", hdr.Kid)
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// decodeJWT returns the header and payload of tok without verifying it.
func decodeJWT(t testing.TB, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		t.Fatalf("header: %v", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return header, claims
}

// fetchJWKS returns the server's published keys.
func fetchJWKS(t testing.TB, s *keycloaktest.Server) []testJWK {
	t.Helper()
	resp, err := s.Client().Get(s.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("certs: %s", resp.Status)
	}
	var set struct{ Keys []testJWK }
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return set.Keys
}

// getJSON fetches url and decodes a JSON object body.
func getJSON(t testing.TB, s *keycloaktest.Server, url string) (int, map[string]any) {
	t.Helper()
	resp, err := s.Client().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decodeBody(t, resp.Body)
}

func decodeBody(t testing.TB, r io.Reader) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatalf("decoding body: %v", err)
	}
	return m
}

// tokenRequest posts form to the token endpoint, with HTTP Basic client
// authentication if basic is non-nil ([id, secret]).
func tokenRequest(t testing.TB, s *keycloaktest.Server, form url.Values, basic []string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token endpoint Cache-Control = %q, want no-store", cc)
	}
	return resp.StatusCode, decodeBody(t, resp.Body)
}

// mustToken performs a token request that must succeed.
func mustToken(t testing.TB, s *keycloaktest.Server, form url.Values, basic []string) map[string]any {
	t.Helper()
	status, body := tokenRequest(t, s, form, basic)
	if status != http.StatusOK {
		t.Fatalf("token request: status %d, body %v", status, body)
	}
	return body
}

// strs converts a decoded JSON array to strings.
func strs(v any) []string {
	a, _ := v.([]any)
	out := make([]string, 0, len(a))
	for _, e := range a {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// roles returns claims.realm_access.roles, or resource_access[client].roles
// if client is non-empty.
func roles(claims map[string]any, client string) []string {
	if client == "" {
		ra, _ := claims["realm_access"].(map[string]any)
		return strs(ra["roles"])
	}
	res, _ := claims["resource_access"].(map[string]any)
	c, _ := res[client].(map[string]any)
	return strs(c["roles"])
}
