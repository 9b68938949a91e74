package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Rule is one entry of [Config.Rules]: the requests it covers, by method and
// path, and what their callers must satisfy. It is Spring's
// requestMatchers(method, pattern).access(requirement).
type Rule struct {
	// Methods are the HTTP methods the rule covers, such as "GET". Nil or
	// empty means every method. [Compile] upper-cases them and accepts
	// the methods of RFC 9110, PATCH and those of WebDAV (RFC 4918). As
	// in net/http.ServeMux, GET covers HEAD too. Request methods compare
	// without regard to case, so DELETE covers delete and Delete: many
	// frameworks upper-case the method before routing, and a rule that
	// covers more requests than the upstream tells apart errs on the
	// side of refusing.
	Methods []string

	// Path is the pattern of the request paths the rule covers. See the
	// package documentation for its syntax. A pattern that ends in "/"
	// means the same as without it, unless StrictTrailingSlash is set.
	Path string

	// Require is what a caller must satisfy. The zero Requirement denies
	// everyone.
	Require Requirement

	// StrictTrailingSlash makes a trailing slash significant for this
	// rule: /x then matches /x only, /x/ matches /x/ only, and
	// /orders/{id} no longer matches /orders/7/. By default a rule covers
	// its path with and without one trailing slash, as most frameworks
	// route them (Flask, Express, older Spring MVC). Setting it is risky
	// when the upstream serves /x/ as /x: requests for /x/ then fall to
	// later rules or the default. Patterns ending in ** or {name...}
	// ignore it.
	StrictTrailingSlash bool
}

// Config is what a [Policy] is compiled from: ordered rules, a default and
// how paths compare. The first rule that matches a request decides it;
// when none does, Default does. The zero Config denies every request.
//
// A Config can be read from YAML (see [Config.UnmarshalYAML]), on its own
// with [ParseYAML] or as a field of a larger configuration.
type Config struct {
	// Rules are tried in order.
	Rules []Rule

	// Default applies to requests no rule matches. The zero Requirement
	// denies them; [Authenticated] lets any caller with a verified token
	// through.
	Default Requirement

	// CaseInsensitivePaths makes the literal segments of every rule's
	// path pattern match without regard to case, as the most lenient
	// case-insensitive upstream compares (Unicode simple case folding, and
	// Java's upper-then-lower comparison, which pairs ı with i and ſ with
	// s), so that /admin/** covers /ADMIN/x and /admın/x. Set it when
	// the upstream routes paths case-insensitively, as Express and Koa do
	// by default, and ASP.NET, IIS or a case-insensitive Spring matcher
	// do; otherwise /ADMIN/x misses the rule for /admin/** while the
	// upstream serves it. keygate cannot tell: it is the user's to set.
	// False, the default, compares paths byte for byte.
	CaseInsensitivePaths bool
}

// Policy is a compiled [Config], ready to match requests. It is immutable
// and safe for concurrent use. A nil *Policy denies every request.
type Policy struct {
	rules []compiled
	def   Requirement
	fold  bool // Config.CaseInsensitivePaths
	src   Config
}

type compiled struct {
	methods []string // nil: every method
	path    pattern
	req     Requirement
}

// Compile checks r and compiles it into a [Policy]. Errors name the index
// of the faulty rule, counted from 0, and what is wrong with it: a path
// pattern that is not valid, a method that is not one, a requirement that
// names nothing (such as Role("") or AllOf()). Compile keeps no reference
// to r's slices.
func Compile(r Config) (*Policy, error) {
	p := &Policy{
		rules: make([]compiled, 0, len(r.Rules)),
		def:   r.Default,
		fold:  r.CaseInsensitivePaths,
		src:   Config{Rules: make([]Rule, 0, len(r.Rules)), Default: r.Default, CaseInsensitivePaths: r.CaseInsensitivePaths},
	}
	for i, rule := range r.Rules {
		pat, err := parsePattern(rule.Path)
		if err != nil {
			return nil, fmt.Errorf("authz: rule %d: path %q %w", i, rule.Path, err)
		}
		methods, err := normalizeMethods(rule.Methods)
		if err != nil {
			return nil, fmt.Errorf("authz: rule %d (%s): %w", i, rule.Path, err)
		}
		if err := rule.Require.validate(); err != nil {
			return nil, fmt.Errorf("authz: rule %d (%s): %w", i, rule.Path, err)
		}
		pat.strict = rule.StrictTrailingSlash
		c := compiled{path: pat, req: rule.Require}
		if len(methods) > 0 {
			c.methods = methods
			if slices.Contains(methods, "GET") && !slices.Contains(methods, "HEAD") {
				c.methods = append(slices.Clip(methods), "HEAD")
			}
		}
		p.rules = append(p.rules, c)
		p.src.Rules = append(p.src.Rules, Rule{Methods: methods, Path: rule.Path, Require: rule.Require, StrictTrailingSlash: rule.StrictTrailingSlash})
	}
	if err := r.Default.validate(); err != nil {
		return nil, fmt.Errorf("authz: default: %w", err)
	}
	return p, nil
}

// Match returns the requirement for a request, and the index in
// [Config.Rules] of the rule that supplied it, or -1 for the default.
// An empty method is GET, as in net/http. The method compares with the
// rules' methods without regard to case.
//
// path is the request's decoded path, such as r.URL.Path, already
// checked: it starts with "/" and holds no "//", "." or ".." segments.
// Match does no unescaping or cleaning of its own, and does not check
// method or path; [github.com/keygate/keygate/httpauth.CheckTarget]
// refuses the requests Match must not see. Segments compare byte for
// byte, or without regard to case when [Config.CaseInsensitivePaths] is
// set, and one trailing slash is ignored unless the rule has
// [Rule.StrictTrailingSlash]. A path that does not start with "/"
// matches no rule.
//
// Match does not allocate.
func (p *Policy) Match(method, path string) (req Requirement, rule int) {
	if p == nil {
		return Requirement{}, -1
	}
	if method == "" {
		method = "GET"
	}
	fold := !isUpper(method)
	for i := range p.rules {
		c := &p.rules[i]
		if c.methods != nil && !hasMethod(c.methods, method, fold) {
			continue
		}
		if c.path.match(path, p.fold) {
			return c.req, i
		}
	}
	return p.def, -1
}

// hasMethod reports whether the upper-case methods hold m, compared
// without regard to case when fold is set.
func hasMethod(methods []string, m string, fold bool) bool {
	for _, x := range methods {
		if x == m || fold && strings.EqualFold(x, m) {
			return true
		}
	}
	return false
}

// isUpper reports whether s holds no lower-case ASCII letter and no
// byte beyond ASCII, so that it equals an upper-case method only when
// it is that method, byte for byte.
func isUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'a' <= c && c <= 'z' || c >= 0x80 {
			return false
		}
	}
	return true
}

// Config returns the Config p was compiled from, with the rules' methods
// upper-cased and their paths as written. The result is a copy that the
// caller may modify. A nil *Policy returns the zero Config.
func (p *Policy) Config() Config {
	if p == nil {
		return Config{}
	}
	r := p.src
	r.Rules = slices.Clone(p.src.Rules)
	for i := range r.Rules {
		r.Rules[i].Methods = slices.Clone(r.Rules[i].Methods)
	}
	return r
}

// normalizeMethods upper-cases methods, checks them and drops duplicates.
// It returns nil for none.
func normalizeMethods(methods []string) ([]string, error) {
	var out []string
	for _, m := range methods {
		n, err := normalizeMethod(m)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func normalizeMethod(m string) (string, error) {
	switch {
	case m == "":
		return "", errors.New("empty method")
	case m == "*" || strings.EqualFold(m, "ANY") || strings.EqualFold(m, "ALL"):
		return "", fmt.Errorf("method %q is not a method; leave methods out to cover every method", m)
	case !isLetters(m):
		return "", fmt.Errorf("method %q is not a method: methods are letters only", m)
	}
	u := strings.ToUpper(m)
	known := knownMethods()
	if !slices.Contains(known, u) {
		return "", fmt.Errorf("unknown method %q%s", m, didYouMean(u, known, nil))
	}
	return u, nil
}

// knownMethods returns the methods a rule may name: RFC 9110's, PATCH
// (RFC 5789), and WebDAV's (RFC 4918).
func knownMethods() []string {
	return []string{
		"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
		"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
	}
}
