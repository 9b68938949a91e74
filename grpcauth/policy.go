package grpcauth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keygate/keygate/authz"
)

// Rule is one entry of [Access.Rules]: the methods it covers and what their
// callers must satisfy.
type Rule struct {
	// Method is the pattern of the full method names the rule covers:
	//
	//	/pkg.Service/Method   that method only
	//	/pkg.Service/*        every method of the service pkg.Service
	//	/**                   every method
	//
	// Names compare byte for byte, as gRPC dispatches them: /shop.Orders/get
	// is not /shop.Orders/Get.
	Method string

	// Require is what a caller must satisfy, in the terms of package
	// authz. The zero Requirement denies everyone.
	Require authz.Requirement
}

// Access is what a [Policy] is compiled from: ordered method rules and a
// default. The first rule that matches a call decides it; when none does,
// Default does. The zero Access denies every call.
type Access struct {
	// Rules are tried in order.
	Rules []Rule

	// Default applies to calls no rule matches. The zero Requirement
	// denies them.
	Default authz.Requirement
}

// Policy is compiled [Access]. It is immutable and safe for concurrent
// use. A nil *Policy denies every call.
type Policy struct {
	rules []methodRule
	def   authz.Requirement
}

type methodRule struct {
	pat methodPattern
	req authz.Requirement
}

// methodPattern is a compiled Rule.Method: service "" matches every
// method; method "" every method of the service.
type methodPattern struct {
	service, method string
}

func (p methodPattern) match(service, method string) bool {
	return p.service == "" || p.service == service && (p.method == "" || p.method == method)
}

// Compile checks r and compiles it into a [Policy]. Errors name the
// index of the faulty rule, counted from 0: a method pattern that is not
// one of the three forms of [Rule.Method], or a requirement that names
// nothing (see [authz.Requirement.Validate]).
func Compile(r Access) (*Policy, error) {
	p := &Policy{rules: make([]methodRule, 0, len(r.Rules)), def: r.Default}
	for i, rule := range r.Rules {
		pat, err := parseMethodPattern(rule.Method)
		if err != nil {
			return nil, fmt.Errorf("grpcauth: rule %d: method %q %w", i, rule.Method, err)
		}
		if err := rule.Require.Validate(); err != nil {
			return nil, fmt.Errorf("grpcauth: rule %d (%s): %w", i, rule.Method, err)
		}
		p.rules = append(p.rules, methodRule{pat: pat, req: rule.Require})
	}
	if err := r.Default.Validate(); err != nil {
		return nil, fmt.Errorf("grpcauth: default: %w", err)
	}
	return p, nil
}

// Match returns the requirement for a call of fullMethod, such as
// "/shop.Orders/Get" (what grpc.UnaryServerInfo.FullMethod holds), and
// the index in [Access.Rules] of the rule that supplied it, or -1 for the
// default. A name that is not of the form /service/method matches no
// rule, not even /**, and gets the zero Requirement, which denies.
//
// Match does not allocate.
func (p *Policy) Match(fullMethod string) (req authz.Requirement, rule int) {
	if p == nil {
		return authz.Requirement{}, -1
	}
	service, method, ok := splitMethod(fullMethod)
	if !ok {
		return authz.Requirement{}, -1
	}
	for i := range p.rules {
		if p.rules[i].pat.match(service, method) {
			return p.rules[i].req, i
		}
	}
	return p.def, -1
}

// splitMethod splits a full method name "/service/method" into its two
// names. It reports false unless both are non-empty, the name holds
// exactly two slashes and every byte is printable ASCII.
func splitMethod(full string) (service, method string, ok bool) {
	if len(full) < 4 || full[0] != '/' {
		return "", "", false
	}
	for i := 1; i < len(full); i++ {
		if c := full[i]; c <= 0x20 || c >= 0x7f {
			return "", "", false
		}
	}
	service, method, ok = strings.Cut(full[1:], "/")
	if !ok || service == "" || method == "" || strings.IndexByte(method, '/') >= 0 {
		return "", "", false
	}
	return service, method, true
}

// parseMethodPattern compiles a Rule.Method. Its errors do not name the
// pattern; the caller does.
func parseMethodPattern(s string) (methodPattern, error) {
	switch {
	case s == "":
		return methodPattern{}, errors.New("is empty; use /** for every method")
	case s == "/**":
		return methodPattern{}, nil
	case s[0] != '/':
		return methodPattern{}, fmt.Errorf("must start with \"/\", as in %q", "/"+s)
	}
	service, method, ok := strings.Cut(s[1:], "/")
	if !ok {
		return methodPattern{}, fmt.Errorf("names no method; use %q for every method of the service", s+"/*")
	}
	if err := checkServiceName(service); err != nil {
		return methodPattern{}, err
	}
	switch {
	case method == "*":
		return methodPattern{service: service}, nil
	case method == "**" || strings.Contains(method, "/"):
		return methodPattern{}, fmt.Errorf("has more than a method after the service; use %q for every method of the service", "/"+service+"/*")
	case method == "":
		return methodPattern{}, fmt.Errorf("names no method; use %q for every method of the service", "/"+service+"/*")
	case strings.Contains(method, "*"):
		return methodPattern{}, fmt.Errorf("has %q inside a method name; use %q for every method of the service", "*", "/"+service+"/*")
	case !isIdent(method):
		return methodPattern{}, fmt.Errorf("has the method %q; a method name is letters, digits and _", method)
	}
	return methodPattern{service: service, method: method}, nil
}

// checkServiceName checks a fully qualified protobuf service name, such
// as grpc.health.v1.Health: identifiers separated by dots.
func checkServiceName(s string) error {
	if s == "" {
		return errors.New("names no service; write /pkg.Service/Method, /pkg.Service/* or /**")
	}
	if s == "**" || s == "*" {
		return errors.New("has a wildcard for the service; use /** for every method")
	}
	if strings.Contains(s, "*") {
		return fmt.Errorf("has %q in the service %q; name the service in full", "*", s)
	}
	if slices.ContainsFunc(strings.Split(s, "."), func(id string) bool { return !isIdent(id) }) {
		return fmt.Errorf("has the service %q; a service name is identifiers separated by dots, such as pkg.Service", s)
	}
	return nil
}

// isIdent reports whether s is a protobuf identifier: an ASCII letter or
// _, then letters, digits and _.
func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}
