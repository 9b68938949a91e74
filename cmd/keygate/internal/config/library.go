package config

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/httpauth"
	"github.com/keygate/keygate/jwks"
)

// The library configurations a Config describes. keygate serve builds
// its key source, verifier and middleware from them, and [File.Validate]
// hands them to the same constructors, so that every setting the
// libraries own is checked once, by the library, and config only adds
// the line.

// SourceConfig returns the [jwks.Config] of c, with what a file cannot
// hold: the HTTP client (nil: one with keys.timeout) and the logger. In
// cluster mode, shared is the store of the shared key cache (nil: each
// instance fetches on its own, as keygate token verify does).
func (c Config) SourceConfig(client *http.Client, log *slog.Logger, shared jwks.SharedCache) jwks.Config {
	if client == nil && c.Keys.Timeout > 0 {
		client = &http.Client{Timeout: c.Keys.Timeout}
	}
	sc := c.sourceConfig(client, log)
	if shared != nil && c.Cluster != nil {
		sc.Shared = shared
		sc.SharedSecret = []byte(c.Cluster.Secret)
		sc.SharedTimeout = c.Cluster.Redis.Timeout
	}
	return sc
}

func (c Config) sourceConfig(client *http.Client, log *slog.Logger) jwks.Config {
	return jwks.Config{
		Issuer:             c.Issuer,
		URL:                c.JWKSURL,
		HTTPClient:         client,
		RefreshInterval:    c.Keys.RefreshInterval,
		MinRefetchInterval: c.Keys.MinRefetchInterval,
		MaxStale:           c.Keys.MaxStale,
		InsecureAllowHTTP:  c.Keys.InsecureAllowHTTP,
		Logger:             log,
	}
}

// VerifierConfig returns the [keygate.Config] of c, verifying with keys.
func (c Config) VerifierConfig(keys keygate.KeySet, log *slog.Logger) keygate.Config {
	return keygate.Config{
		Issuer:                    c.Issuer,
		Audiences:                 c.Audiences,
		InsecureSkipAudienceCheck: c.InsecureSkipAudienceCheck,
		AuthorizedParties:         c.AuthorizedParties,
		Keys:                      keys,
		Algorithms:                c.Verify.Algorithms,
		Leeway:                    c.Verify.Leeway,
		MaxTokenSize:              c.Verify.MaxTokenSize,
		AllowUntypedTokens:        c.Verify.AllowUntypedTokens,
		CacheSize:                 c.Verify.CacheSize,
		CacheBytes:                c.Verify.CacheBytes,
		Mapping: keygate.ClaimMapping{
			RoleClients:  c.Verify.RoleClients,
			NoRealmRoles: c.Verify.NoRealmRoles,
			RFC9068Roles: c.Verify.RFC9068Roles,
		},
		Logger: log,
	}
}

// MiddlewareConfig returns the [httpauth.Config] of c. The server logs
// refusals itself, so the middleware gets no logger.
func (c Config) MiddlewareConfig(v httpauth.Verifier, p *authz.Policy) httpauth.Config {
	return httpauth.Config{Verifier: v, Policy: p, Realm: c.Realm, ExtraMethods: c.ExtraMethods}
}

// libraryKeys maps the fields of the libraries' configurations to the
// keys of the file.
var libraryKeys = map[string]string{
	"jwks.Issuer": "issuer", "jwks.URL": "jwks_url",
	"jwks.RefreshInterval": "keys.refresh_interval", "jwks.MinRefetchInterval": "keys.min_refetch_interval",
	"jwks.MaxStale":     "keys.max_stale",
	"jwks.SharedSecret": "cluster.secret", "jwks.SharedTimeout": "cluster.redis.timeout",
	"keygate.Issuer": "issuer", "keygate.Audiences": "audiences", "keygate.Algorithms": "verify.algorithms",
	"keygate.AuthorizedParties": "authorized_parties",
	"httpauth.Realm":            "realm", "httpauth.ExtraMethods": "extra_methods",
}

// yamlNames rewrites the Go names that the libraries' problems mention as
// the file's keys.
var yamlNames = strings.NewReplacer(
	"InsecureSkipAudienceCheck", "insecure_skip_audience_check: true",
	"InsecureAllowHTTP", "keys.insecure_allow_http: true",
	"Shared needs", "cluster mode needs",
)

// libraryChecks runs the constructors of the libraries on c and reports
// what they refuse, on the line of the key at fault.
func (v *validator) libraryChecks(c Config) {
	reported := map[string]bool{} // a key two libraries refuse is reported once
	report := func(pkg string, err error) {
		var field, problem string
		var je *jwks.ConfigError
		var ke *keygate.ConfigError
		var he *httpauth.ConfigError
		switch {
		case err == nil:
			return
		case errors.As(err, &je):
			field, problem = je.Field, je.Problem
		case errors.As(err, &ke):
			field, problem = ke.Field, ke.Problem
		case errors.As(err, &he):
			field, problem = he.Field, he.Problem
		default:
			v.add("", "%v", err)
			return
		}
		key := libraryKeys[pkg+"."+field]
		if reported[key] {
			return
		}
		reported[key] = true
		name := key
		if key == "" {
			name = pkg + " " + field
		}
		v.add(key, "%s %s", name, yamlNames.Replace(problem))
	}
	// The verifier first: its problems with a field both check are
	// phrased for the file's reader (the exact iss, not "or a URL").
	_, err := keygate.NewVerifier(c.VerifierConfig(jwks.StaticSet(), nil))
	report("keygate", err)
	var shared jwks.SharedCache
	if c.Cluster != nil {
		shared = noShared{} // so that jwks checks the cluster secret
	}
	src, err := jwks.NewSource(c.SourceConfig(nil, nil, shared))
	report("jwks", err)
	if src != nil {
		src.Close() // never started: nothing runs
	}
	_, err = httpauth.New(c.MiddlewareConfig(noVerifier{}, nil))
	report("httpauth", err)
}

// noShared stands for the Redis store when Validate hands the source
// configuration to jwks.NewSource, which does no I/O.
type noShared struct{}

func (noShared) Get(context.Context, string) ([]byte, error)                   { return nil, nil }
func (noShared) Set(context.Context, string, []byte, time.Duration) error      { return nil }
func (noShared) TryLease(context.Context, string, time.Duration) (bool, error) { return false, nil }
func (noShared) Publish(context.Context, string) error                         { return nil }
func (noShared) Subscribe(context.Context, func(string)) error                 { return nil }
