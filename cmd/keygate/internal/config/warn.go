package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Thresholds of [File.Warnings]. They are not limits: a value past one
// is valid, and keygate serves with it.
const (
	// WarnRefreshInterval: a shorter keys.refresh_interval refetches
	// the key set more often than key rotation needs.
	WarnRefreshInterval = time.Minute
	// WarnMinRefetchInterval: a shorter keys.min_refetch_interval lets
	// tokens with made-up kids make keygate fetch from the issuer that
	// often.
	WarnMinRefetchInterval = time.Second
	// WarnLeeway: a longer verify.leeway accepts expired tokens for
	// that long.
	WarnLeeway = 5 * time.Minute
	// WarnMaxTokenSize: a larger verify.max_token_size, in bytes, is
	// far beyond what Keycloak issues and lets each request cost more.
	WarnMaxTokenSize = 64 << 10
	// WarnMaxConnections: a larger limits.max_connections usually
	// exceeds the process's open-file limit, where the limit no longer
	// protects anything.
	WarnMaxConnections = 65536
	// WarnMaxStale: a longer keys.max_stale keeps verifying tokens with
	// keys the issuer has dropped (rotated out, or revoked after a leak)
	// that long while fetches fail.
	WarnMaxStale = 7 * 24 * time.Hour
	// WarnReadHeader: a longer timeouts.read_header lets each client
	// that sends nothing hold a connection slot that long.
	WarnReadHeader = time.Minute
	// WarnIdle: a longer timeouts.idle keeps idle keep-alive
	// connections, and their memory, that long.
	WarnIdle = 10 * time.Minute
	// WarnCacheBytes: a larger verify.cache_bytes, in bytes, lets the
	// token cache hold more memory than a sidecar should.
	WarnCacheBytes = 1 << 30
	// WarnCacheSize: a larger verify.cache_size, in tokens, is far
	// beyond the callers one keygate serves.
	WarnCacheSize = 1_000_000
	// WarnRevocationTTL: a shorter revocation.ttl is shorter than
	// Keycloak's default access-token lifespan of 5 minutes plus a
	// margin, so revoked tokens may pass again before they expire.
	WarnRevocationTTL = 10 * time.Minute
)

// Warnings returns the settings of the file that are valid but risky,
// each with its line and what to do, as [Error] values with Warning set:
// a main listener beyond loopback without TLS, an admin listener on
// every interface, the insecure switches (any audience, keys over plain
// HTTP, untyped tokens), key fetch intervals that let keygate (or a
// caller) hammer the issuer, a leeway, stale-key period, token size,
// cache or timeout far beyond need, a public default or a rule with
// strict_trailing_slash, a strip_headers list that leaves out default
// names, and a connection limit that is off or out of reach. It reports
// nothing for a file with errors that [File.Validate] finds; call
// Validate first.
func (f *File) Warnings() Errors {
	w := warner{f: f}
	c := &f.Config

	switch {
	case c.TLS != nil:
	case anyInterface(c.Listen):
		w.add("listen", "listen %q accepts plain HTTP on every interface, so bearer tokens cross the network in clear and callers can bypass the front proxy; bind to 127.0.0.1 (or the one address the front proxy reaches), or set tls:", c.Listen)
	case c.Listen != "" && !loopbackAddr(c.Listen):
		w.add("listen", "listen %q accepts plain HTTP on an address beyond loopback, so bearer tokens cross the network in clear and callers that reach it can bypass the front proxy; bind to 127.0.0.1 when the front proxy runs on the same host, or set tls:", c.Listen)
	}
	if c.InsecureSkipAudienceCheck {
		w.add("insecure_skip_audience_check", "insecure_skip_audience_check accepts a token issued for any client of the realm, so a token meant for another service opens this one; list this service's aud values in audiences: (a Keycloak audience mapper adds them) and remove the key")
	}
	if c.Keys.InsecureAllowHTTP {
		w.add("keys.insecure_allow_http", "keys.insecure_allow_http fetches keys over plain HTTP from hosts beyond loopback, so anyone on the path can replace them and forge tokens; use the issuer's https URL (or jwks_url) and remove the key")
	}
	if c.Verify.AllowUntypedTokens {
		w.add("verify.allow_untyped_tokens", "verify.allow_untyped_tokens accepts tokens without typ Bearer or at+jwt, such as ID tokens of some providers, as access tokens; keep it false for Keycloak, which types its access tokens, and remove the key")
	}
	if d := c.Keys.MaxStale; d > WarnMaxStale {
		w.add("keys.max_stale", "keys.max_stale %v keeps accepting tokens signed with the last keys fetched that long while the issuer cannot be reached, even keys it has since removed; use 24h (the default) or at most 7 days", d)
	}
	if d := c.Timeouts.ReadHeader; d > WarnReadHeader {
		w.add("timeouts.read_header", "timeouts.read_header %v lets a client that sends nothing hold a connection that long, so few clients fill limits.max_connections; use 10s (the default) or at most 1m", d)
	}
	if d := c.Timeouts.Idle; d > WarnIdle {
		w.add("timeouts.idle", "timeouts.idle %v keeps idle keep-alive connections that long; use 60s (the default) or at most 10m", d)
	}
	if a := c.Access; a != nil {
		if a.Default.Public() {
			w.add("access.default", "access.default lets anonymous callers reach every path no rule names (permit_all), so a route the rules forget is public; use authenticated (or deny) and give public paths rules with require: permit_all")
		}
		for i, r := range a.Rules {
			if r.StrictTrailingSlash {
				w.add(fmt.Sprintf("access.rules[%d].strict_trailing_slash", i), "access rule %d (path %s) sets strict_trailing_slash, so requests with the other trailing slash fall to later rules or the default while most frameworks serve them the same; remove it unless the upstream serves the two differently", i+1, r.Path)
			}
		}
	}
	if n := c.Verify.CacheBytes; n > WarnCacheBytes {
		w.add("verify.cache_bytes", "verify.cache_bytes %d is over 1 GiB of memory for cached tokens; use 33554432 (32 MiB, the default) or what your callers' tokens need", n)
	}
	if n := c.Verify.CacheSize; n > WarnCacheSize {
		w.add("verify.cache_size", "verify.cache_size %d is over 1,000,000 tokens, far beyond the callers one keygate serves; use 4096 (the default) or the number of callers active within a token's lifetime", n)
	}
	if a := c.Admin; a != nil && anyInterface(a.Listen) {
		w.add("admin.listen", "admin.listen %q serves /metrics and /readyz on every interface; bind it to 127.0.0.1 or an address only your monitoring reaches", a.Listen)
	}
	if ea := c.ExtAuthz; ea != nil && anyInterface(ea.Listen) {
		w.add("ext_authz.listen", "ext_authz.listen %q answers plaintext gRPC authorization checks on every interface, so anyone who reaches it can probe tokens and the rules; bind it to 127.0.0.1 or the one address Envoy reaches", ea.Listen)
	}
	if d := c.Keys.RefreshInterval; d > 0 && d < WarnRefreshInterval {
		w.add("keys.refresh_interval", "keys.refresh_interval %v refetches the key set more than once a minute; Keycloak rotates keys in days, use 5m (the default) or more", d)
	}
	if d := c.Keys.MinRefetchInterval; d > 0 && d < WarnMinRefetchInterval {
		w.add("keys.min_refetch_interval", "keys.min_refetch_interval %v lets tokens with unknown kids make keygate fetch keys more than once a second; use 10s (the default) or at least 1s", d)
	}
	if d := c.Verify.Leeway; d > WarnLeeway {
		w.add("verify.leeway", "verify.leeway %v accepts tokens that long after they expire; fix the clocks (NTP) and use 60s (the default) or less than 5m", d)
	}
	if n := c.Verify.MaxTokenSize; n > WarnMaxTokenSize {
		w.add("verify.max_token_size", "verify.max_token_size %d is over 64 KiB; Keycloak's tokens are a few KiB and larger ones only cost memory and CPU per request, use 16384 (the default) or the size your largest token needs", n)
	}
	if c.StripHeaders != nil {
		var missing []string
		for _, d := range DefaultStripHeaders() {
			if !slices.ContainsFunc(c.StripHeaders, func(s string) bool { return NormalizeHeaderName(s) == NormalizeHeaderName(d) }) {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			w.add("strip_headers", "strip_headers replaces the default list and leaves out %s; clients can then send them to the upstream, so add them unless the upstream ignores every one", strings.Join(missing, ", "))
		}
	}
	switch n := c.Limits.MaxConnections; {
	case n < 0:
		w.add("limits.max_connections", "limits.max_connections %d turns the connection limit off, so idle connections can use up file handles and memory; remove it for the default of %d", n, DefaultMaxConnections)
	case n == 0 && f.Has("limits.max_connections"):
		w.add("limits.max_connections", "limits.max_connections 0 means the default of %d, not unlimited; write the number you mean, or remove the key", DefaultMaxConnections)
	case n > WarnMaxConnections:
		w.add("limits.max_connections", "limits.max_connections %d is above %d, usually past the open-file limit (ulimit -n), where the limit protects nothing; use a number below that limit", n, WarnMaxConnections)
	}
	if r := c.Revocation; r != nil && c.Cluster == nil && r.BackchannelLogout == nil && r.AdminToken == "" {
		w.add("revocation", "revocation has neither backchannel_logout nor admin_token and no cluster: nothing can revoke a token on this instance; add backchannel_logout: {client_id: ...} (or admin_token), or remove the block")
	}
	if c.Revocation != nil && c.Cluster == nil {
		w.add("revocation", "revocation without cluster: keeps revocations on the instance that received them, so other replicas accept a logged-out session's tokens until they expire; with more than one instance add cluster: (Redis) or route every logout to each")
	}
	if cl := c.Cluster; cl != nil && strings.HasPrefix(cl.Redis.URL, "redis://") && !loopbackURLHost(cl.Redis.URL) {
		w.add("cluster.redis.url", "cluster.redis.url uses plain redis:// to a host beyond loopback, so the password and the revocations cross the network in clear; use rediss:// (TLS)")
	}
	if r := c.Revocation; r != nil && r.TTL > 0 && r.TTL < WarnRevocationTTL {
		w.add("revocation.ttl", "revocation.ttl %v forgets a revocation after that long, so the rest of a longer-lived token's life passes; set it to the longest access-token lifetime the issuer grants (default %v)", r.TTL, DefaultRevocationTTL)
	}
	if c.Timeouts.Read < 0 {
		w.add("timeouts.read", "timeouts.read %v turns the body read timeout off, so clients that send slowly hold connections (and upstream connections) open; remove it for the default of %v, or set the longest upload time you need", c.Timeouts.Read, DefaultReadTimeout)
	}
	return w.warns.sorted()
}

type warner struct {
	f     *File
	warns Errors
}

func (w *warner) add(key, format string, args ...any) {
	w.warns = append(w.warns, &Error{File: w.f.Name, Line: w.f.Line(key), Msg: fmt.Sprintf(format, args...), Warning: true})
}

// loopbackAddr reports whether the listen address binds a loopback
// address only: a loopback IP or localhost. Other host names may
// resolve anywhere and count as beyond loopback.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && LoopbackHost(host)
}

// anyInterface reports whether the listen address binds every interface:
// an empty host, 0.0.0.0 or ::.
func anyInterface(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsUnspecified()
}

// loopbackURLHost reports whether the host of raw is loopback.
func loopbackURLHost(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && LoopbackHost(u.Hostname())
}
