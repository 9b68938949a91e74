package grpcauth

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/keygate/keygate/authz"
	"go.yaml.in/yaml/v3"
)

// ParseYAML reads [Access] from a YAML document and compiles them. The
// document has the shape of package authz's HTTP rules, with method in
// place of path and methods:
//
//	default: deny              # or authenticated, or any requirement
//	rules:
//	  - method: /grpc.health.v1.Health/*
//	    require: permit_all
//	  - method: /shop.Orders/Get
//	    require: {scope: orders.read}
//	  - method: /shop.Admin/*
//	    require: {role: admin}
//
// Requirements are written as authz's package documentation describes
// (permit_all, {role: admin}, all: [...], ...). A missing default denies;
// a document that is a list of rules alone is rules with a missing
// default. Errors are [*authz.LineError]s naming the line at fault.
func ParseYAML(data []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("grpcauth: the YAML document is empty")
		}
		return nil, fmt.Errorf("grpcauth: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("grpcauth: %w", err)
		}
		return nil, errAt(&extra, "a second YAML document; keep the rules in one")
	}
	n := &doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	var r Access
	if err := r.UnmarshalYAML(n); err != nil {
		return nil, err
	}
	return Compile(r)
}

// UnmarshalYAML implements yaml.v3's Unmarshaler, so that Access can be a
// field of a larger configuration. n is a mapping with the keys default
// and rules, or a list of rules alone (see [ParseYAML]). It checks the
// method patterns as [Compile] does, and refuses unknown or repeated
// keys. Errors are [*authz.LineError]s; on error, r is left unchanged.
func (r *Access) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	var out Access
	switch n.Kind {
	case yaml.SequenceNode:
		rules, err := decodeRules(n)
		if err != nil {
			return err
		}
		out.Rules = rules
	case yaml.MappingNode:
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
			if seen[k.Value] {
				return errAt(k, "%q is given twice", k.Value)
			}
			seen[k.Value] = true
			var err error
			switch k.Value {
			case "default":
				err = out.Default.UnmarshalYAML(v)
			case "rules":
				out.Rules, err = decodeRules(v)
			default:
				err = errAt(k, "unknown key %q; gRPC rules hold default and rules", k.Value)
			}
			if err != nil {
				return err
			}
		}
	default:
		return errAt(n, "want a mapping with default and rules, or a list of rules")
	}
	*r = out
	return nil
}

func decodeRules(n *yaml.Node) ([]Rule, error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, "rules must be a list of rules, each starting with \"- method:\"")
	}
	rules := make([]Rule, 0, len(n.Content))
	for _, item := range n.Content {
		rule, err := decodeRule(resolve(item))
		if err != nil {
			return nil, err
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

func decodeRule(n *yaml.Node) (Rule, error) {
	if n.Kind != yaml.MappingNode {
		return Rule{}, errAt(n, "a rule must be a mapping with method and require")
	}
	var rule Rule
	var hasMethod, hasRequire bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		switch k.Value {
		case "method":
			if hasMethod {
				return Rule{}, errAt(k, "\"method\" is given twice")
			}
			hasMethod = true
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				return Rule{}, errAt(v, "method takes a pattern such as /pkg.Service/Method, /pkg.Service/* or /**")
			}
			if _, err := parseMethodPattern(v.Value); err != nil {
				return Rule{}, errAt(v, "method %q %w", v.Value, err)
			}
			rule.Method = v.Value
		case "require":
			if hasRequire {
				return Rule{}, errAt(k, "\"require\" is given twice")
			}
			hasRequire = true
			if err := rule.Require.UnmarshalYAML(v); err != nil {
				return Rule{}, err
			}
		case "path", "methods":
			return Rule{}, errAt(k, "%q belongs to HTTP rules; a gRPC rule has method: /pkg.Service/Method", k.Value)
		default:
			return Rule{}, errAt(k, "unknown rule key %q; a gRPC rule holds method and require", k.Value)
		}
	}
	if !hasMethod {
		return Rule{}, errAt(n, "rule has no \"method\"; use method: /** for every method")
	}
	if !hasRequire {
		return Rule{}, errAt(n, "rule has no \"require\"; use require: permit_all for an open method")
	}
	return rule, nil
}

// errAt returns an [*authz.LineError] at n's line, the error type of
// authz's YAML rules, so that tools read both the same way.
func errAt(n *yaml.Node, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &authz.LineError{Line: n.Line, Msg: err.Error(), Err: errors.Unwrap(err)}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}
