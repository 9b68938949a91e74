package jwks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// fetch discovers the JWKS URL if it is not known yet, then fetches the
// key set and installs it. The client's Timeout bounds each request.
func (s *Source) fetch(ctx context.Context) error {
	u := s.jwksURL.Load()
	if u == nil {
		discovered, err := s.discover(ctx)
		if err != nil {
			return err
		}
		u = &discovered
		s.jwksURL.Store(u)
	}
	prev := s.set.Load()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
	if err != nil {
		return &FetchError{URL: redactString(*u), Err: redactError(err)}
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if prev != nil {
		if prev.etag != "" {
			req.Header.Set("If-None-Match", prev.etag)
		}
		if prev.lastMod != "" {
			req.Header.Set("If-Modified-Since", prev.lastMod)
		}
	}
	s.mu.Lock()
	s.providerFetches++
	s.mu.Unlock()
	body, resp, err := s.get(req)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotModified && prev != nil {
		now := s.cfg.Now()
		s.lastSuccess.Store(now.UnixNano())
		if s.cfg.Shared != nil {
			s.storeShared(ctx, &sharedEntry{URL: *u, FetchedAt: now.UnixNano(), ETag: prev.etag, LastModified: prev.lastMod, Doc: prev.doc})
		}
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return &FetchError{URL: redact(req.URL), StatusCode: resp.StatusCode, Err: errors.New("unexpected status")}
	}
	next, err := parse(body, prev, s.cfg.MaxKeys)
	if err != nil {
		return &FetchError{URL: redact(req.URL), StatusCode: resp.StatusCode, Err: err}
	}
	next.etag = resp.Header.Get("ETag")
	next.lastMod = resp.Header.Get("Last-Modified")
	next.doc = body
	now := s.cfg.Now()
	s.installAt(prev, next, now, "provider")
	if s.cfg.Shared != nil {
		s.storeShared(ctx, &sharedEntry{URL: *u, FetchedAt: now.UnixNano(), ETag: next.etag, LastModified: next.lastMod, Doc: body})
	}
	return nil
}

// get sends req and reads at most MaxResponseSize bytes of the answer.
func (s *Source) get(req *http.Request) ([]byte, *http.Response, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, &FetchError{URL: redact(req.URL), Err: redactError(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxResponseSize+1))
	if err != nil {
		return nil, nil, &FetchError{URL: redact(req.URL), StatusCode: resp.StatusCode, Err: redactError(err)}
	}
	if int64(len(body)) > s.cfg.MaxResponseSize {
		return nil, nil, &FetchError{URL: redact(req.URL), StatusCode: resp.StatusCode,
			Err: fmt.Errorf("response larger than %d bytes", s.cfg.MaxResponseSize)}
	}
	return body, resp, nil
}

// redactError returns err with the URL of a *url.Error redacted: net/http
// puts the Location of a refused redirect there as sent, credentials
// included. The copy keeps the Op and the cause, so Timeout and errors.As
// still work.
func redactError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) || ue != err {
		return err
	}
	return &url.Error{Op: ue.Op, URL: redactString(ue.URL), Err: ue.Err}
}

// discover reads the OpenID Provider metadata of the issuer and returns
// its jwks_uri (OpenID Connect Discovery 1.0, section 4).
func (s *Source) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(s.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", &FetchError{URL: redactString(u), Err: redactError(err)}
	}
	ru := redact(req.URL)
	req.Header.Set("Accept", "application/json")
	body, resp, err := s.get(req)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &FetchError{URL: ru, StatusCode: resp.StatusCode, Err: errors.New("unexpected status")}
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return "", &FetchError{URL: ru, StatusCode: resp.StatusCode, Err: fmt.Errorf("not a JSON discovery document: %w", err)}
	}
	if meta.Issuer != s.cfg.Issuer {
		return "", &FetchError{URL: ru, StatusCode: resp.StatusCode,
			Err: fmt.Errorf("discovery issuer %q does not equal the configured issuer %q", capText(meta.Issuer), redactString(s.cfg.Issuer))}
	}
	if meta.JWKSURI == "" {
		return "", &FetchError{URL: ru, StatusCode: resp.StatusCode, Err: errors.New("discovery document has no jwks_uri")}
	}
	if err := checkURL(meta.JWKSURI, s.cfg.InsecureAllowHTTP); err != nil {
		return "", &FetchError{URL: ru, StatusCode: resp.StatusCode, Err: err}
	}
	return meta.JWKSURI, nil
}

// installAt publishes next, fetched at the given time from the given
// origin ("provider" or "shared"), retires the keys it dropped and logs
// the change. The time of success is stored before the set, so that
// expire never judges next by prev's age.
func (s *Source) installAt(prev, next *Set, at time.Time, from string) {
	s.lastSuccess.Store(at.UnixNano())
	s.set.Store(next)
	retireMissing(prev, next)
	s.readyOne.Do(func() { close(s.readyC) })
	if prev == nil || !slices.Equal(keyIDs(prev), keyIDs(next)) {
		s.cfg.Logger.Info("jwks key set updated", "url", s.currentURL(), "from", from, "kids", keyIDs(next), "skipped", len(next.skipped))
		for _, sk := range next.skipped {
			level := slog.LevelWarn
			if sk.NotForSignatures {
				level = slog.LevelDebug
			}
			s.cfg.Logger.Log(context.Background(), level, "jwks key skipped", "kid", quoteKid(sk.ID), "reason", sk.Reason)
		}
	}
}

// capText cuts a provider-sent value to a length fit for an error message.
func capText(v string) string {
	const max = 256
	if len(v) > max {
		return v[:max] + "..."
	}
	return v
}

func keyIDs(set *Set) []string {
	ids := make([]string, len(set.keys))
	for i, k := range set.keys {
		ids[i] = k.ID
	}
	return ids
}
