package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"
)

// floorProxy is the verify-each-request floor: the bare proxy behind one
// standard-library RS256 check per request, with no cache and the
// minimal claim checks (exp, iss, aud). It is what a proxy that does the
// least costs; keygate should not be slower than it.
func floorProxy(upstream, issuer, audience string) (http.Handler, error) {
	keys, err := fetchRSAKeys(issuer + "/protocol/openid-connect/certs")
	if err != nil {
		return nil, err
	}
	proxy := bareProxy(upstream)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := floorVerify(r.Header.Get("Authorization"), keys, issuer, audience); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}), nil
}

// floorVerify checks a Bearer RS256 token with crypto/rsa, then its
// exp, iss and aud.
func floorVerify(authz string, keys map[string]*rsa.PublicKey, issuer, audience string) error {
	raw, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return fmt.Errorf("no bearer token")
	}
	dot2 := strings.LastIndexByte(raw, '.')
	dot1 := strings.IndexByte(raw, '.')
	if dot1 < 0 || dot2 <= dot1 {
		return fmt.Errorf("not a JWS")
	}
	var hdr struct{ Alg, Kid string }
	if err := decodeJSON(raw[:dot1], &hdr); err != nil {
		return err
	}
	key := keys[hdr.Kid]
	if hdr.Alg != "RS256" || key == nil {
		return fmt.Errorf("unknown key or algorithm")
	}
	sig, err := base64.RawURLEncoding.DecodeString(raw[dot2+1:])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(raw[:dot2]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return err
	}
	var claims struct {
		Exp int64           `json:"exp"`
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
	}
	if err := decodeJSON(raw[dot1+1:dot2], &claims); err != nil {
		return err
	}
	if time.Now().Unix() >= claims.Exp || claims.Iss != issuer {
		return fmt.Errorf("expired or wrong issuer")
	}
	var auds []string
	if json.Unmarshal(claims.Aud, &auds) != nil {
		var one string
		if err := json.Unmarshal(claims.Aud, &one); err != nil {
			return err
		}
		auds = []string{one}
	}
	if !slices.Contains(auds, audience) {
		return fmt.Errorf("wrong audience")
	}
	return nil
}

func decodeJSON(b64 string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// fetchRSAKeys reads the RSA signature keys of a JWK set, by kid.
func fetchRSAKeys(url string) (map[string]*rsa.PublicKey, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kid, Kty, Use, N, E string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, err
	}
	keys := make(map[string]*rsa.PublicKey)
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Use == "enc" {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("key %s: bad n or e", k.Kid)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no RSA signature key at %s", url)
	}
	return keys, nil
}
