package config

import (
	"fmt"
	"net"
	"net/netip"
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
)

// Warnings returns the settings of the file that are valid but risky,
// each with its line and what to do, as [Error] values with Warning set:
// a main listener on every interface without TLS, an admin listener on
// every interface, key fetch intervals that let keygate (or a caller)
// hammer the issuer, a leeway or token size limit far beyond need, a
// strip_headers list that leaves out default names, and a connection
// limit that is off or out of reach. It reports nothing for a file with
// errors that [File.Validate] finds; call Validate first.
func (f *File) Warnings() Errors {
	w := warner{f: f}
	c := &f.Config

	if c.TLS == nil && anyInterface(c.Listen) {
		w.add("listen", "listen %q accepts plain HTTP on every interface, so bearer tokens cross the network in clear and callers can bypass the front proxy; bind to 127.0.0.1 (or the one address the front proxy reaches), or set tls:", c.Listen)
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
