package server

import (
	"net/http"
	"strings"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
)

// forwardAuthInputs returns the headers of the forward-auth protocol, in
// their canonical spelling: the only spelling forward-auth accepts for
// them (see [spoofed]). The proxy removes every spelling, and sets its
// own X-Forwarded-For, -Host and -Proto after that.
func forwardAuthInputs() []string {
	return []string{
		"X-Original-Uri", "X-Original-Method",
		"X-Forwarded-Uri", "X-Forwarded-Method",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-For",
	}
}

// spoofedHeader is the fixed error_description of a forward-auth request
// that carries a header keygate sets, or a '_' spelling of one it strips
// (see [spoofed]).
const spoofedHeader = "the request carries a header that keygate sets"

// headerSet is a set of header names compared by normalized name:
// ASCII lower case with every '_' replaced by '-' (see
// [config.NormalizeHeaderName]), the way CGI and WSGI servers fold them.
// Lookups do not allocate. The zero headerSet is empty.
type headerSet struct {
	names  map[string]struct{} // normalized
	maxLen int                 // length of the longest name
}

func newHeaderSet(lists ...[]string) headerSet {
	s := headerSet{names: make(map[string]struct{})}
	for _, l := range lists {
		for _, n := range l {
			if n == "" || n == config.Off {
				continue
			}
			s.names[config.NormalizeHeaderName(n)] = struct{}{}
			s.maxLen = max(s.maxLen, len(n))
		}
	}
	return s
}

// has reports whether name normalizes to a name of s. Normalizing keeps
// the length, so longer names are not looked up at all; shorter ones are
// normalized into a stack buffer, and the map lookup on string(buf)
// does not allocate.
func (s headerSet) has(name string) bool {
	if len(name) > s.maxLen || len(name) == 0 {
		return false
	}
	var buf [config.MaxHeaderNameLength]byte
	if len(name) > len(buf) {
		// Only a name longer than the validated maximum gets here.
		_, ok := s.names[config.NormalizeHeaderName(name)]
		return ok
	}
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		b[i] = c
	}
	_, ok := s.names[string(b)]
	return ok
}

// strip deletes from h every header whose name is in s: one pass over
// h, whatever its size, and no allocation.
func (s headerSet) strip(h http.Header) {
	for k := range h {
		if s.has(k) {
			delete(h, k)
		}
	}
}

// spoofed returns the name of a header of h that a forward-auth request
// may not carry, or "" when there is none: a name that normalizes to one
// of owned (the identity headers keygate sets), however it is spelled,
// or one of strip (the strip list and the forward-auth inputs) spelled
// with '_'. A strip-list name in its plain spelling passes: clearing it
// for the application is the front proxy's job, and front proxies set
// some on their subrequest (NGINX's X-Real-IP, Traefik's
// X-Forwarded-Prefix, the forward-auth inputs themselves). The '_'
// spellings are what a front proxy's exact-name rules miss, and what
// CGI and WSGI servers read as the plain name. The map keys of h are
// the names as the server read them, canonicalized by net/textproto,
// which keeps '_'.
func spoofed(h http.Header, owned, strip headerSet) string {
	for k := range h {
		if owned.has(k) || strings.IndexByte(k, '_') >= 0 && strip.has(k) {
			return k
		}
	}
	return ""
}
