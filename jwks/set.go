package jwks

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/keygate/keygate/internal/jose"
)

// Key is one signature key from a key set. Keys are immutable except for
// their retirement, which the [Source] marks when a refresh no longer
// publishes them; a Key is safe for concurrent use.
type Key struct {
	// ID is the key's kid; it may be empty when the set has a single key.
	ID string
	// Algorithm is the key's alg member, or empty. When set, only tokens
	// signed with exactly this algorithm verify with the key.
	Algorithm string
	// Type is the key's kty: "RSA", "EC" or "OKP".
	Type string
	// Public is an *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	// Like the standard library's keys, it must not be modified once the
	// Key is in use: verification keeps state computed from it.
	Public crypto.PublicKey

	raw     []byte // the JWK as published, to recognise it across refreshes
	retired atomic.Bool
	// prepared holds the precomputation that makes verification faster
	// (an RSA modulus in Montgomery form). Parse fills it when the key
	// enters a set; a Key built as a literal fills it on first use. It is
	// embedded under an unexported alias so that the verifier reaches it
	// through jose.Holder, with no exported field or method.
	prepared
}

// prepared is embedded in Key; see there.
type prepared = jose.Prepared

var _ jose.Holder = (*Key)(nil)

// Retired reports whether the key has left its key set. Verifiers that
// cache results per key use it to drop entries signed by removed keys.
func (k *Key) Retired() bool { return k.retired.Load() }

// SkippedKey describes a published key that could not be used.
type SkippedKey struct {
	// ID is the key's kid, if it had one.
	ID string
	// Reason says why the key was skipped.
	Reason string
	// NotForSignatures is set for a key published for another use
	// (use "enc", key_ops without "verify", an encryption alg), such as
	// the RSA-OAEP key Keycloak publishes in every realm's set. Such keys
	// are expected: a Source logs them at Debug, not as a warning.
	NotForSignatures bool
}

// Set is an immutable snapshot of usable signature keys.
type Set struct {
	keys    []*Key
	byID    map[string]*Key
	skipped []SkippedKey
	etag    string
	lastMod string
	doc     []byte // the document as fetched, for Config.Shared
}

// Keys returns the usable keys in the order they were published. The
// caller must not modify the slice.
func (s *Set) Keys() []*Key { return s.keys }

// Skipped returns the published keys that were not usable and why.
func (s *Set) Skipped() []SkippedKey { return s.skipped }

// Lookup returns the key with the given kid. An empty kid finds the only
// key of a single-key set.
func (s *Set) Lookup(kid string) (*Key, bool) {
	if s == nil {
		return nil, false
	}
	if kid == "" {
		if len(s.keys) == 1 {
			return s.keys[0], true
		}
		return nil, false
	}
	k, ok := s.byID[kid]
	return k, ok
}

// Key returns the key with the given kid, or an error matching
// [ErrUnknownKey]. It lets a fixed Set stand where a [Source] would.
func (s *Set) Key(_ context.Context, kid string) (*Key, error) {
	if k, ok := s.Lookup(kid); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %s", ErrUnknownKey, quoteKid(kid))
}

// ErrNoUsableKeys reports a key set document that holds no usable
// signature key. The previous set is kept.
var ErrNoUsableKeys = errors.New("jwks: no usable signature key in the set")

// Parse decodes a JWKS document (RFC 7517 section 5), for keys configured
// out of band: a Set is a [keygate.KeySet] by itself. Unusable keys
// (encryption keys, unknown types or curves, RSA keys under 2048 bits, bad
// encodings, duplicate kids, keys past [DefaultMaxKeys]) are skipped and
// reported by [Set.Skipped] rather than failing the set. Parse fails when
// the document is not a JWKS or holds no usable key.
func Parse(doc []byte) (*Set, error) { return parse(doc, nil, DefaultMaxKeys) }

// parse is Parse for a refresh: keys whose JWK is byte-for-byte unchanged
// from prev are reused, so that pointers stay stable across refreshes.
func parse(doc []byte, prev *Set, maxKeys int) (*Set, error) {
	var raw jose.Set
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("jwks: not a JSON key set: %w", err)
	}
	if raw.Keys == nil {
		return nil, errors.New(`jwks: not a JSON key set: no "keys" array`)
	}
	s := &Set{byID: make(map[string]*Key, len(raw.Keys))}
	for i, msg := range raw.Keys {
		var jwk jose.JWK
		if err := json.Unmarshal(msg, &jwk); err != nil {
			s.skipped = append(s.skipped, SkippedKey{Reason: fmt.Sprintf("key %d is not a JSON object: %v", i, err)})
			continue
		}
		if maxKeys > 0 && len(s.keys) >= maxKeys {
			s.skipped = append(s.skipped, SkippedKey{ID: jwk.Kid, Reason: fmt.Sprintf("over the limit of %d keys", maxKeys)})
			continue
		}
		if _, dup := s.byID[jwk.Kid]; dup {
			s.skipped = append(s.skipped, SkippedKey{ID: jwk.Kid, Reason: "duplicate kid"})
			continue
		}
		if old := prev.reusable(jwk.Kid, msg); old != nil {
			s.add(old)
			continue
		}
		pub, err := jwk.PublicKey()
		if errors.Is(err, jose.ErrNotSigningKey) {
			// Keycloak publishes its RSA-OAEP key in the same set.
			s.skipped = append(s.skipped, SkippedKey{ID: jwk.Kid, Reason: err.Error(), NotForSignatures: true})
			continue
		}
		if err != nil {
			s.skipped = append(s.skipped, SkippedKey{ID: jwk.Kid, Reason: err.Error()})
			continue
		}
		k := &Key{ID: jwk.Kid, Algorithm: jwk.Alg, Type: jwk.Kty, Public: pub, raw: bytes.Clone(msg)}
		// The modulus is prepared here, off the request path.
		jose.Prepare(&k.prepared, pub)
		s.add(k)
	}
	if len(s.keys) == 0 {
		for _, sk := range s.skipped {
			if !sk.NotForSignatures {
				return nil, fmt.Errorf("%w (skipped: %s: %s)", ErrNoUsableKeys, quoteKid(sk.ID), sk.Reason)
			}
		}
		return nil, ErrNoUsableKeys
	}
	return s, nil
}

func (s *Set) add(k *Key) {
	s.keys = append(s.keys, k)
	s.byID[k.ID] = k
}

func (s *Set) reusable(kid string, msg []byte) *Key {
	if s == nil {
		return nil
	}
	if k, ok := s.byID[kid]; ok && !k.Retired() && bytes.Equal(k.raw, msg) {
		return k
	}
	return nil
}

// retireMissing marks every key of old that next no longer holds.
func retireMissing(old, next *Set) {
	if old == nil {
		return
	}
	for _, k := range old.keys {
		if n, ok := next.byID[k.ID]; !ok || n != k {
			k.retired.Store(true)
		}
	}
}

// StaticSet returns a key set that holds the given keys, for tests and for
// keys configured out of band. A key with the ID of an earlier one
// replaces it, in its place; nil keys are left out.
func StaticSet(keys ...*Key) *Set {
	s := &Set{byID: make(map[string]*Key, len(keys))}
	for _, k := range keys {
		if k == nil {
			continue
		}
		jose.Prepare(&k.prepared, k.Public)
		if old, dup := s.byID[k.ID]; dup {
			s.keys[slices.Index(s.keys, old)] = k
			s.byID[k.ID] = k
			continue
		}
		s.add(k)
	}
	return s
}
