package keycloaktest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"sync"
)

// A signingKey is a key pair with its Keycloak-style key ID and the
// algorithm it is published for.
type signingKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

// supportedAlg reports whether alg is an asymmetric signature algorithm the
// server can generate keys for.
func supportedAlg(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

// generateKey returns a fresh key for alg: RSA 2048 for RS* and PS*,
// P-256/P-384/P-521 for ES256/ES384/ES512 and Ed25519 for EdDSA.
func generateKey(alg string) (*signingKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("keycloaktest: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("keycloaktest: generating %s key: %w", alg, err)
	}
	return &signingKey{kid: newKID(), alg: alg, priv: priv}, nil
}

// keyFits reports whether priv is a key of the type and curve alg needs.
func keyFits(alg string, priv crypto.Signer) bool {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return alg[0] == 'R' || alg[0] == 'P'
	case *ecdsa.PrivateKey:
		want := map[string]string{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
		return want != "" && k.Curve.Params().Name == want
	case ed25519.PrivateKey:
		return alg == "EdDSA"
	}
	return false
}

// randomRSAPublicKey returns a 2048-bit RSA public key for the published
// encryption key. The server never decrypts, so the modulus is a random odd
// number rather than a product of two primes, which no client can tell
// and which saves a second RSA key generation per server.
func randomRSAPublicKey() *rsa.PublicKey {
	n := randomBytes(256)
	n[0] |= 0x80
	n[len(n)-1] |= 1
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
}

// newKID returns a random key ID shaped like Keycloak's: 43 characters of
// unpadded base64url.
func newKID() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return b
}

// initKeys sets up the initial signing keys: those of Config.SigningKeys,
// and freshly generated ones (concurrently) for the realm's and clients'
// algorithms without one. Then it creates the encryption key and the HMAC
// secret.
func (s *Server) initKeys() error {
	algs := []string{s.cfg.Algorithm}
	for _, c := range s.cfg.Clients {
		if c.Algorithm != "" && !slices.Contains(algs, c.Algorithm) {
			algs = append(algs, c.Algorithm)
		}
	}
	for _, alg := range slices.Sorted(maps.Keys(s.cfg.SigningKeys)) {
		if !slices.Contains(algs, alg) {
			algs = append(algs, alg)
		}
	}

	keys := make([]*signingKey, len(algs))
	errs := make([]error, len(algs))
	var wg sync.WaitGroup
	for i, alg := range algs {
		priv, ok := s.cfg.SigningKeys[alg]
		if !ok {
			wg.Go(func() { keys[i], errs[i] = generateKey(alg) })
			continue
		}
		if !supportedAlg(alg) || priv == nil || !keyFits(alg, priv) {
			errs[i] = fmt.Errorf("keycloaktest: SigningKeys[%q]: %T does not suit the algorithm", alg, priv)
			continue
		}
		keys[i] = &signingKey{kid: newKID(), alg: alg, priv: priv}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, k := range keys {
		s.keys = append(s.keys, k)
		s.active[k.alg] = k
	}
	s.encKID = newKID()
	s.encPub = randomRSAPublicKey()
	s.hmacKID = newUUID()
	s.hmacKey = randomBytes(64)
	return nil
}

// AddKey generates a key for alg, publishes it and makes it the active key
// for alg, so that the token endpoint signs with it from now on. Keys
// previously active for alg stay published as passive keys until removed.
// It returns the new key's ID.
func (s *Server) AddKey(alg string) (kid string, err error) {
	if !supportedAlg(alg) {
		return "", fmt.Errorf("keycloaktest: unsupported algorithm %q", alg)
	}
	k, err := generateKey(alg)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	s.active[alg] = k
	return k.kid, nil
}

// RemoveKey unpublishes the signing key kid; it can no longer sign. If it was
// the active key for its algorithm, the most recently added remaining key
// of that algorithm becomes active; if there is none, the token endpoint
// fails for clients using that algorithm until [Server.AddKey] is called.
// Unknown key IDs are ignored.
func (s *Server) RemoveKey(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.keys, func(k *signingKey) bool { return k.kid == kid })
	if i < 0 {
		return
	}
	k := s.keys[i]
	s.keys = slices.Delete(s.keys, i, i+1)
	if s.active[k.alg] != k {
		return
	}
	delete(s.active, k.alg)
	for _, o := range slices.Backward(s.keys) {
		if o.alg == k.alg {
			s.active[k.alg] = o
			break
		}
	}
}

// SetActiveKey makes the published key kid the active key for its
// algorithm. Together with [Server.AddKey] it allows publishing a key
// before it is used: add the new key, reactivate the old one, and later
// activate the new one.
func (s *Server) SetActiveKey(kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keyLocked(kid)
	if k == nil {
		return fmt.Errorf("keycloaktest: unknown key %q", kid)
	}
	s.active[k.alg] = k
	return nil
}

// KeyIDs returns the IDs of the published signing keys, oldest first. It
// does not include the encryption key.
func (s *Server) KeyIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.kid
	}
	return ids
}

// ActiveKeyID returns the ID of the active key for alg, or "" if there is
// none.
func (s *Server) ActiveKeyID(alg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.active[alg]; k != nil {
		return k.kid
	}
	return ""
}

// PublicKey returns the public key of the published signing key kid (an
// *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey), or nil if there is
// no such key.
func (s *Server) PublicKey(kid string) crypto.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keyLocked(kid); k != nil {
		return k.priv.Public()
	}
	return nil
}

func (s *Server) keyLocked(kid string) *signingKey {
	for _, k := range s.keys {
		if k.kid == kid {
			return k
		}
	}
	return nil
}

// jwk returns k's public key as a JWK with Keycloak's members.
func (k *signingKey) jwk() map[string]any {
	return jwk(k.kid, k.alg, "sig", k.priv.Public())
}

// jwk returns the JWK for pub with Keycloak's members.
func jwk(kid, alg, use string, pub crypto.PublicKey) map[string]any {
	m := map[string]any{"kid": kid, "alg": alg, "use": use}
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(pub.N.Bytes())
		m["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		point, _ := pub.Bytes() // uncompressed: 0x04 || X || Y
		size := (len(point) - 1) / 2
		m["kty"] = "EC"
		m["crv"] = pub.Curve.Params().Name
		m["x"] = b64(point[1 : 1+size])
		m["y"] = b64(point[1+size:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64(pub)
	}
	return m
}

// hashFor returns the hash function of a JWS algorithm, or 0 for EdDSA.
func hashFor(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "256":
		return crypto.SHA256
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return 0
}

// sign returns the JWS signature of input under alg with priv.
func sign(alg string, priv crypto.Signer, input []byte) ([]byte, error) {
	mismatch := fmt.Errorf("keycloaktest: cannot sign %s with a %T", alg, priv)
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := priv.(*rsa.PrivateKey)
		if !ok {
			return nil, mismatch
		}
		h := hashFor(alg)
		d := digest(h, input)
		if alg[0] == 'P' {
			return rsa.SignPSS(rand.Reader, k, h, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, k, h, d)
	case "ES256", "ES384", "ES512":
		k, ok := priv.(*ecdsa.PrivateKey)
		if !ok {
			return nil, mismatch
		}
		r, sv, err := ecdsa.Sign(rand.Reader, k, digest(hashFor(alg), input))
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		sv.FillBytes(sig[size:])
		return sig, nil
	case "EdDSA":
		k, ok := priv.(ed25519.PrivateKey)
		if !ok {
			return nil, mismatch
		}
		return ed25519.Sign(k, input), nil
	}
	return nil, fmt.Errorf("keycloaktest: unsupported algorithm %q", alg)
}

func digest(h crypto.Hash, input []byte) []byte {
	w := h.New()
	w.Write(input)
	return w.Sum(nil)
}

// hmacSign returns the HS256/HS384/HS512 signature of input under secret.
func hmacSign(alg string, secret, input []byte) ([]byte, error) {
	switch alg {
	case "HS256", "HS384", "HS512":
		m := hmac.New(hashFor(alg).New, secret)
		m.Write(input)
		return m.Sum(nil), nil
	}
	return nil, fmt.Errorf("keycloaktest: unsupported algorithm %q", alg)
}

// publicKeyPEM returns the PKIX "PUBLIC KEY" PEM encoding of pub, the form
// most often (mis)used as an HMAC secret in algorithm-confusion attacks.
func publicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// newUUID returns a random version 4 UUID.
func newUUID() string {
	return formatUUID(randomBytes(16))
}

// formatUUID formats the first 16 bytes of b as a version 4 UUID.
func formatUUID(b []byte) string {
	var u [16]byte
	copy(u[:], b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
