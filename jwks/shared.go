package jwks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// SharedCache is a store that the sources of a cluster share, so that one
// instance fetches the key set from the provider and the others read it
// (Config.Shared). Package redisstore implements it on Redis.
//
// A SharedCache is transport only: the [Source] seals every entry with
// HMAC-SHA256 under Config.SharedSecret and checks it on every read, so a
// store, or anyone who can write to it, cannot plant keys. Entries are
// opaque byte strings; names are short ASCII strings chosen by the Source.
//
// Every method must honour ctx: the Source bounds each call by
// Config.SharedTimeout and falls back to fetching on its own when a call
// fails or times out. Methods are called from several goroutines at once.
type SharedCache interface {
	// Get returns the entry stored under name, or (nil, nil) when there is
	// none.
	Get(ctx context.Context, name string) ([]byte, error)

	// Set stores entry under name for ttl, replacing what was there. The
	// store may drop the entry sooner.
	Set(ctx context.Context, name string, entry []byte, ttl time.Duration) error

	// TryLease takes the lease called name for ttl if nobody holds it
	// (Redis: SET NX PX), and reports whether it was taken. A lease is
	// never released early: it ends when ttl has passed.
	TryLease(ctx context.Context, name string, ttl time.Duration) (bool, error)

	// Publish tells every subscriber of the store, this instance's
	// included, that the entry called name changed.
	Publish(ctx context.Context, name string) error

	// Subscribe calls changed with the name given to each Publish, by any
	// instance, until ctx ends, and then returns ctx's error. It calls
	// changed("") each time the subscription is established or
	// re-established, since changes may have been missed meanwhile. While
	// the store is unreachable it keeps retrying on its own; it may also
	// return an error, and the Source calls it again after a pause.
	// changed is called from one goroutine at a time and does not block.
	Subscribe(ctx context.Context, changed func(name string)) error
}

// DefaultSharedTimeout bounds each call to Config.Shared when
// Config.SharedTimeout is zero.
const DefaultSharedTimeout = time.Second

// MinSharedSecret is the least length of Config.SharedSecret, in bytes.
const MinSharedSecret = 32

// sharedEntry is what the store holds, sealed: the raw document as the
// provider served it and what it was fetched under.
type sharedEntry struct {
	Version      int    `json:"v"`
	Issuer       string `json:"iss"`     // Config.Issuer
	ConfigURL    string `json:"cfg_url"` // Config.URL
	URL          string `json:"url"`     // the JWKS URL fetched, discovered or configured
	FetchedAt    int64  `json:"at"`      // unix nanoseconds, the fetching instance's clock
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Doc          []byte `json:"doc"`
}

// sealMagic starts every sealed entry; the version is in it.
const sealMagic = "kgjwks1."

// sealDomain separates this MAC from any other use of the secret.
const sealDomain = "keygate jwks shared entry v1\x00"

// errSharedAuth reports an entry that fails the check.
var errSharedAuth = errors.New("jwks: shared entry failed authentication")

// sharedNameFor names the entry of a source: sources with the same issuer
// and URL share it; others, in the same store, do not.
func sharedNameFor(issuer, u string) string {
	h := sha256.Sum256([]byte(issuer + "\x00" + u))
	return "jwks:" + hex.EncodeToString(h[:16])
}

func (s *Source) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.cfg.SharedSecret)
	m.Write([]byte(sealDomain))
	m.Write([]byte(s.sharedName))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

// seal encodes e with its MAC: sealMagic, 32 bytes of HMAC-SHA256 over the
// domain, the entry name and the JSON payload, then the payload.
func (s *Source) seal(e *sharedEntry) ([]byte, error) {
	payload, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(sealMagic)+sha256.Size+len(payload))
	b = append(b, sealMagic...)
	b = append(b, s.mac(payload)...)
	return append(b, payload...), nil
}

// open checks and decodes a sealed entry. Nothing in b is trusted before
// the MAC is checked, and then only if it is bound to this source's
// issuer and URL.
func (s *Source) open(b []byte) (*sharedEntry, error) {
	// base64 of the document, the other members, the MAC and some slack
	maxLen := int64(len(sealMagic)+sha256.Size+4096) + (s.cfg.MaxResponseSize*4+2)/3
	switch {
	case int64(len(b)) > maxLen:
		return nil, fmt.Errorf("%w: %d bytes, more than %d", errSharedAuth, len(b), maxLen)
	case len(b) < len(sealMagic)+sha256.Size || !bytes.HasPrefix(b, []byte(sealMagic)):
		return nil, fmt.Errorf("%w: not a sealed entry (%d bytes)", errSharedAuth, len(b))
	}
	sum, payload := b[len(sealMagic):len(sealMagic)+sha256.Size], b[len(sealMagic)+sha256.Size:]
	if !hmac.Equal(sum, s.mac(payload)) {
		return nil, fmt.Errorf("%w: HMAC mismatch (%d bytes): another secret, or written by someone else", errSharedAuth, len(b))
	}
	var e sharedEntry
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, fmt.Errorf("%w: %w", errSharedAuth, err)
	}
	if e.Version != 1 || e.Issuer != s.cfg.Issuer || e.ConfigURL != s.cfg.URL || e.FetchedAt <= 0 {
		return nil, fmt.Errorf("%w: sealed for another issuer or URL", errSharedAuth)
	}
	return &e, nil
}

// sharedCall bounds one call to the store by SharedTimeout and counts its
// failure.
func (s *Source) sharedCall(ctx context.Context, op string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SharedTimeout)
	defer cancel()
	err := call(ctx)
	s.mu.Lock()
	if err != nil {
		s.sharedErrors++
		s.sharedErr = fmt.Errorf("jwks: shared cache %s: %w", op, err)
		err = s.sharedErr
	} else {
		s.sharedErr = nil
	}
	s.mu.Unlock()
	return err
}

// readShared returns the entry in the store, or nil when there is none or
// it fails the check; an error only when the store failed.
func (s *Source) readShared(ctx context.Context) (*sharedEntry, error) {
	var b []byte
	err := s.sharedCall(ctx, "get", func(ctx context.Context) (err error) {
		b, err = s.cfg.Shared.Get(ctx, s.sharedName)
		return err
	})
	if err != nil || b == nil {
		return nil, err
	}
	e, err := s.open(b)
	if err != nil {
		s.mu.Lock()
		s.sharedAuthFailures++
		s.mu.Unlock()
		if s.life.Err() == nil {
			s.cfg.Logger.Warn("jwks shared key set ignored", "name", s.sharedName, "error", err)
		}
		return nil, nil
	}
	return e, nil
}

// storeShared seals a key set this source fetched, stores it for MaxStale
// and announces it. A failure is counted and logged: the keys are in use
// here all the same.
func (s *Source) storeShared(ctx context.Context, e *sharedEntry) {
	e.Version, e.Issuer, e.ConfigURL = 1, s.cfg.Issuer, s.cfg.URL
	b, err := s.seal(e)
	if err == nil {
		err = s.sharedCall(ctx, "set", func(ctx context.Context) error {
			return s.cfg.Shared.Set(ctx, s.sharedName, b, s.cfg.MaxStale)
		})
	}
	if err == nil {
		err = s.sharedCall(ctx, "publish", func(ctx context.Context) error {
			return s.cfg.Shared.Publish(ctx, s.sharedName)
		})
	}
	if err != nil && s.life.Err() == nil {
		s.cfg.Logger.Warn("jwks shared cache not updated", "name", s.sharedName, "error", err)
	}
}

// installShared installs e if it is newer than the held key set and not
// older than MaxStale, parsing it as a provider's answer is parsed, and
// reports whether it did. An entry stamped in the future (clock skew
// between instances) counts as fetched now.
func (s *Source) installShared(e *sharedEntry) bool {
	if e == nil {
		return false
	}
	now := s.cfg.Now()
	at := time.Unix(0, e.FetchedAt)
	if at.After(now) {
		at = now
	}
	if now.Sub(at) > s.cfg.MaxStale {
		return false
	}
	if last := s.lastSuccess.Load(); last != 0 && !at.After(time.Unix(0, last)) {
		return false
	}
	if s.jwksURL.Load() == nil && e.URL != "" && checkURL(e.URL, s.cfg.InsecureAllowHTTP) == nil {
		u := e.URL
		s.jwksURL.Store(&u)
	}
	prev := s.set.Load()
	next, err := parse(e.Doc, prev, s.cfg.MaxKeys)
	if err != nil {
		s.cfg.Logger.Warn("jwks shared key set not usable", "name", s.sharedName, "error", err)
		return false
	}
	next.etag, next.lastMod, next.doc = e.ETag, e.LastModified, e.Doc
	s.mu.Lock()
	s.sharedHits++ // before the install, which makes the source ready
	s.mu.Unlock()
	s.installAt(prev, next, at, "shared")
	return true
}

// sharedFresh reports whether e was fetched less than RefreshInterval ago.
func (s *Source) sharedFresh(e *sharedEntry) bool {
	return e != nil && s.cfg.Now().Sub(time.Unix(0, e.FetchedAt)) < s.cfg.RefreshInterval
}

// maxKidWait caps the wait of a source that lost the lease for an unknown
// kid for the winner's broadcast.
const maxKidWait = 2 * time.Second

// leaseWait is how long a lease lasts and a loser waits for the winner's
// broadcast: the winner's fetch and store, capped by limit.
func (s *Source) leaseWait(limit time.Duration) time.Duration {
	return min(s.client.Timeout+2*s.cfg.SharedTimeout, limit)
}

// syncShared brings the key set up to date through the store, for flight
// f. It fetches from the provider only when the store holds no fresh copy
// (or, for an unknown kid, no copy with it) and this source wins the lease
// for it, or when the store fails or the lease's holder delivers nothing
// in time: then it fetches on its own as a source without Shared does.
func (s *Source) syncShared(ctx context.Context, f *flight) error {
	changed := s.changeSignal() // before the read, so a change after it is seen
	e, err := s.readShared(ctx)
	if err != nil {
		if f.mode == modeShared {
			return nil
		}
		return s.fetch(ctx)
	}
	s.installShared(e)
	var lease string
	var ttl time.Duration
	switch f.mode {
	case modeShared:
		return nil
	case modeKid:
		if _, ok := s.set.Load().Lookup(f.kid); ok {
			return nil
		}
		lease, ttl = s.sharedName+":kid", s.cfg.MinRefetchInterval
	default:
		if s.sharedFresh(e) {
			return nil
		}
		lease, ttl = s.sharedName+":refresh", s.leaseWait(s.cfg.RefreshInterval)
	}
	var won bool
	err = s.sharedCall(ctx, "lease", func(ctx context.Context) (err error) {
		won, err = s.cfg.Shared.TryLease(ctx, lease, ttl)
		return err
	})
	if err != nil {
		return s.fetch(ctx)
	}
	if won {
		s.mu.Lock()
		s.leaseWins++
		s.mu.Unlock()
		return s.fetch(ctx)
	}
	// Another instance fetches, or for a kid fetched within
	// MinRefetchInterval: read what it stored, and wait for its broadcast
	// if it is not there yet. For a kid the wait is short, as the lease
	// may be a while old and no fetch under way.
	lost := s.cfg.Now().UnixNano()
	bound := s.leaseWait(ttl)
	if f.mode == modeKid {
		bound = min(bound, maxKidWait)
	}
	wait := time.NewTimer(bound)
	defer wait.Stop()
	var lastEntry *sharedEntry
	for last := false; ; {
		e, err := s.readShared(ctx)
		if err != nil {
			return s.fetch(ctx)
		}
		lastEntry = e
		s.installShared(e)
		var done bool
		if f.mode == modeKid {
			// A fetch that ended after the lease was lost answered for
			// the kid, whether it holds it or not.
			_, done = s.set.Load().Lookup(f.kid)
			done = done || e != nil && e.FetchedAt >= lost
		} else {
			done = s.sharedFresh(e)
		}
		if done {
			return nil
		}
		if last {
			break
		}
		// Other announcements (a subscription made again, another
		// source's entry) wake the wait too: read again and wait on.
		select {
		case <-changed:
			changed = s.changeSignal()
		case <-wait.C:
			last = true
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Nothing came. For a kid, a fetch the store shows within
	// MinRefetchInterval before the lease was lost is the lease winner's,
	// or as recent: the kid is unknown for the cluster until the lease
	// ends. Otherwise the winner failed, or the lease is held by someone
	// who does not fetch (a writer to the store can hold it for ever):
	// fetch on our own, as without a store.
	if f.mode == modeKid && lastEntry != nil && lost-lastEntry.FetchedAt < int64(s.cfg.MinRefetchInterval) {
		return nil
	}
	return s.fetch(ctx)
}

// changeSignal returns a channel closed at the next change announced by
// the store.
func (s *Source) changeSignal() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changeC
}

// onChange is the callback given to Shared.Subscribe.
func (s *Source) onChange(name string) {
	if name != "" && name != s.sharedName {
		return
	}
	s.mu.Lock()
	close(s.changeC)
	s.changeC = make(chan struct{})
	s.mu.Unlock()
}

// subscribe keeps a subscription to the store's announcements for the
// life of the source.
func (s *Source) subscribe() {
	defer s.wg.Done()
	for n := 0; ; n++ {
		err := s.cfg.Shared.Subscribe(s.life, s.onChange)
		if s.life.Err() != nil {
			return
		}
		s.mu.Lock()
		s.sharedErrors++
		s.sharedErr = fmt.Errorf("jwks: shared cache subscribe: %w", err)
		s.mu.Unlock()
		s.cfg.Logger.Warn("jwks shared cache subscription ended", "error", err)
		d := min(time.Second<<min(n, 5), maxBackoff)
		t := time.NewTimer(d/2 + rand.N(d/2+1))
		select {
		case <-s.life.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// watch installs the key sets other instances announce.
func (s *Source) watch() {
	defer s.wg.Done()
	c := s.changeSignal()
	for {
		select {
		case <-s.life.Done():
			return
		case <-c:
		}
		c = s.changeSignal()
		// A flight under way may have read the store before the change:
		// after joining one, read again in a flight of our own.
		for s.life.Err() == nil {
			if _, joined := s.refreshMode(s.life, modeShared, ""); !joined {
				break
			}
		}
	}
}
