package authz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseYAML reads [Config] from a YAML document, described in the package
// documentation, and compiles them. Errors name the line at fault.
func ParseYAML(data []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("authz: the YAML document is empty")
		}
		return nil, fmt.Errorf("authz: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("authz: %w", err)
		}
		return nil, errAt(&extra, "a second YAML document; keep the rules in one")
	}
	n := &doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if isNull(resolve(n)) {
		return nil, errAt(n, "the YAML document is empty")
	}
	var r Config
	if err := r.UnmarshalYAML(n); err != nil {
		return nil, err
	}
	return Compile(r)
}

// UnmarshalYAML implements yaml.v3's Unmarshaler, so that Rules can be a
// field of a larger configuration. n is a mapping with the keys default
// and rules (see the package documentation), or a list of rules alone,
// which then deny what they do not match.
//
// UnmarshalYAML checks what [Compile] checks, and more: unknown or
// repeated keys, missing paths or requirements, values of the wrong
// type. Its errors name the line at fault and, when it can tell, what was
// meant. On error, r is left unchanged.
func (r *Config) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	var out Config
	switch n.Kind {
	case yaml.SequenceNode:
		rules, err := decodeRules(n)
		if err != nil {
			return err
		}
		out.Rules = rules
	case yaml.MappingNode:
		fs, err := fields(n)
		if err != nil {
			return err
		}
		for _, f := range fs {
			switch f.key.Value {
			case "default":
				out.Default, err = decodeRequirement(f.val)
			case "rules":
				out.Rules, err = decodeRules(f.val)
			case "case_insensitive_paths":
				out.CaseInsensitivePaths, err = decodeBool(f.val, "case_insensitive_paths")
			case "access":
				err = errAt(f.key, "unknown key \"access\": this is the content of keygate.yaml's access: block (default, rules, case_insensitive_paths), without the access: key")
			default:
				err = unknownKey(f.key, "key", []string{"default", "rules", "case_insensitive_paths"}, rulesAliases, "a rules document holds default, rules and case_insensitive_paths")
			}
			if err != nil {
				return err
			}
		}
	default:
		return errAt(n, "want a mapping with default and rules, or a list of rules; got %s", describe(n))
	}
	*r = out
	return nil
}

func decodeRules(n *yaml.Node) ([]Rule, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(n, "rules must be a list of rules, each starting with \"- path:\"; got %s", describe(n))
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
		return Rule{}, errAt(n, "a rule must be a mapping with path, require and maybe methods; got %s", describe(n))
	}
	fs, err := fields(n)
	if err != nil {
		return Rule{}, err
	}
	var rule Rule
	var hasPath, hasRequire bool
	for _, f := range fs {
		switch f.key.Value {
		case "path":
			hasPath = true
			rule.Path, err = decodePath(f.val)
		case "methods":
			rule.Methods, err = decodeMethods(f.val)
		case "require":
			hasRequire = true
			rule.Require, err = decodeRequirement(f.val)
		case "strict_trailing_slash":
			rule.StrictTrailingSlash, err = decodeBool(f.val, "strict_trailing_slash")
		default:
			err = unknownKey(f.key, "rule key", []string{"path", "methods", "require", "strict_trailing_slash"}, ruleAliases, "a rule holds path, methods, require and strict_trailing_slash")
		}
		if err != nil {
			return Rule{}, err
		}
	}
	if !hasPath {
		return Rule{}, errAt(n, "rule has no \"path\"; use path: /** for every path")
	}
	if !hasRequire {
		return Rule{}, errAt(n, "rule has no \"require\"; use require: permit_all for an open route")
	}
	return rule, nil
}

func decodePath(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", errAt(n, "path takes a pattern such as /orders/{id}; got %s", describe(n))
	}
	if _, err := parsePattern(n.Value); err != nil {
		return "", errAt(n, "path %q %w", n.Value, err)
	}
	return n.Value, nil
}

// decodeBool reads a YAML boolean, true or false.
func decodeBool(n *yaml.Node, key string) (bool, error) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		return false, errAt(n, "%s takes true or false; got %s", key, describe(n))
	}
	return b, nil
}

func decodeMethods(n *yaml.Node) ([]string, error) {
	var items []*yaml.Node
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode:
		items = []*yaml.Node{n}
	case n.Kind == yaml.SequenceNode:
		items = n.Content
	default:
		return nil, errAt(n, "methods takes a list such as [GET, HEAD]; got %s", describe(n))
	}
	if len(items) == 0 {
		return nil, errAt(n, "methods is empty; leave it out to cover every method")
	}
	var methods []string
	for _, item := range items {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			return nil, errAt(item, "methods takes a list such as [GET, HEAD]; got %s in it", describe(item))
		}
		m, err := normalizeMethod(item.Value)
		if err != nil {
			return nil, errAt(item, "%w", err)
		}
		methods = append(methods, m)
	}
	return methods, nil
}

// requirementKeys are the keys of a requirement mapping.
func requirementKeys() []string {
	return []string{"permit_all", "authenticated", "deny", "role", "any_role", "client_role", "scope", "authority", "claim", "all", "any"}
}

const requirementHint = "use permit_all, authenticated, deny, or a mapping such as {role: admin}"

func decodeRequirement(n *yaml.Node) (Requirement, error) {
	n = resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if isNull(n) {
			return Requirement{}, errAt(n, "empty requirement; %s", requirementHint)
		}
		if n.ShortTag() != "!!str" {
			return Requirement{}, errAt(n, "%s is not a requirement; %s", describe(n), requirementHint)
		}
		switch n.Value {
		case "permit_all":
			return PermitAll(), nil
		case "authenticated":
			return Authenticated(), nil
		case "deny":
			return DenyAll(), nil
		}
		for _, k := range requirementKeys() {
			if n.Value == k {
				return Requirement{}, errAt(n, "requirement %q needs a value, as in {%s: ...}", k, k)
			}
		}
		return Requirement{}, unknownKey(n, "requirement", requirementKeys(), requirementAliases, requirementHint)
	case yaml.SequenceNode:
		return Requirement{}, errAt(n, "a requirement is not a list; use all: [...] to require each of them, or any: [...] for one of them")
	case yaml.MappingNode:
	default:
		return Requirement{}, errAt(n, "%s is not a requirement; %s", describe(n), requirementHint)
	}
	switch len(n.Content) {
	case 0:
		return Requirement{}, errAt(n, "empty requirement; %s", requirementHint)
	case 2:
	default:
		k1, k2 := n.Content[0], n.Content[2]
		return Requirement{}, errAt(k2, "requirement has two keys, %q and %q; use all: [...] to require both, or any: [...] for either", k1.Value, k2.Value)
	}
	k, v := n.Content[0], resolve(n.Content[1])
	switch key := k.Value; key {
	case "permit_all", "authenticated", "deny":
		var t bool
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&t) != nil || !t {
			return Requirement{}, errAt(v, "%s takes true, or write the string %s alone; got %s", key, key, describe(v))
		}
		switch key {
		case "permit_all":
			return PermitAll(), nil
		case "authenticated":
			return Authenticated(), nil
		}
		return DenyAll(), nil
	case "role":
		s, err := decodeName(v, key, "role: admin", "; use any_role: [...] for any of several roles, or all: [...] for each")
		return Role(s), err
	case "scope":
		s, err := decodeName(v, key, "scope: orders.read", "; use all: [{scope: a}, {scope: b}] to require each scope, or any: [...] for one of them")
		return Scope(s), err
	case "authority":
		s, err := decodeName(v, key, "authority: ROLE_admin", "; use all: [...] or any: [...] for several")
		return Authority(s), err
	case "any_role":
		if v.Kind != yaml.SequenceNode {
			return Requirement{}, errAt(v, "any_role takes a list such as any_role: [admin, staff]; got %s; use role: for one role", describe(v))
		}
		if len(v.Content) == 0 {
			return Requirement{}, errAt(v, "any_role names no role")
		}
		roles := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			s, err := decodeName(resolve(item), "any_role", "any_role: [admin, staff]", "")
			if err != nil {
				return Requirement{}, err
			}
			roles = append(roles, s)
		}
		return AnyRole(roles...), nil
	case "client_role":
		m, err := decodeStruct(v, key, "client_role: {client: orders-api, role: writer}", []string{"client", "role"}, clientRoleAliases)
		if err != nil {
			return Requirement{}, err
		}
		client, err := requiredName(v, m, key, "client", "client_role: {client: orders-api, role: writer}")
		if err != nil {
			return Requirement{}, err
		}
		role, err := requiredName(v, m, key, "role", "client_role: {client: orders-api, role: writer}")
		if err != nil {
			return Requirement{}, err
		}
		return ClientRole(client, role), nil
	case "claim":
		return decodeClaim(v)
	case "all", "any":
		if v.Kind != yaml.SequenceNode {
			return Requirement{}, errAt(v, "%s takes a list of requirements such as %s: [{scope: a}, {role: b}]; got %s", key, key, describe(v))
		}
		if len(v.Content) == 0 {
			return Requirement{}, errAt(v, "%s holds no requirement", key)
		}
		reqs := make([]Requirement, 0, len(v.Content))
		for _, item := range v.Content {
			q, err := decodeRequirement(item)
			if err != nil {
				return Requirement{}, err
			}
			reqs = append(reqs, q)
		}
		if key == "all" {
			return AllOf(reqs...), nil
		}
		return AnyOf(reqs...), nil
	}
	return Requirement{}, unknownKey(k, "requirement", requirementKeys(), requirementAliases, "use one of "+strings.Join(requirementKeys(), ", "))
}

func decodeClaim(v *yaml.Node) (Requirement, error) {
	const example = "claim: {name: tenant, equals: acme}"
	m, err := decodeStruct(v, "claim", example, []string{"name", "equals", "contains"}, claimAliases)
	if err != nil {
		return Requirement{}, err
	}
	name, err := requiredName(v, m, "claim", "name", example)
	if err != nil {
		return Requirement{}, err
	}
	eq, hasEq := m["equals"]
	ct, hasCt := m["contains"]
	switch {
	case hasEq && hasCt:
		return Requirement{}, errAt(v, "claim %q has both equals and contains; use all: [...] for both", name)
	case hasCt:
		s, err := decodeName(ct, "contains", "contains: staff", "; use any: [...] for any of several values")
		return ClaimContains(name, s), err
	case !hasEq:
		return Requirement{}, errAt(v, "claim %q has neither equals nor contains, as in %s", name, example)
	}
	var value any
	switch {
	case eq.Kind == yaml.ScalarNode && isNull(eq) && eq.Value == "":
		return Requirement{}, errAt(eq, "claim %q: equals has no value; write equals: null to match a JSON null", name)
	case eq.Kind == yaml.ScalarNode && eq.ShortTag() != "!!int" && eq.ShortTag() != "!!float" && eq.ShortTag() != "!!bool" && eq.ShortTag() != "!!null":
		value = eq.Value // strings, and timestamps and such kept as written
	default:
		if err := eq.Decode(&value); err != nil {
			return Requirement{}, errAt(eq, "claim %q: %w", name, err)
		}
	}
	r := ClaimEquals(name, value)
	if r.err != nil {
		return Requirement{}, errAt(eq, "claim %q: equals %w", name, r.err)
	}
	return r, nil
}

// decodeName reads a name: a scalar that is neither null nor empty.
// listHint follows the error when n is a list.
func decodeName(n *yaml.Node, key, example, listHint string) (string, error) {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "", errAt(n, "%s takes one name, not a list%s", key, listHint)
	case n.Kind != yaml.ScalarNode:
		return "", errAt(n, "%s takes a name, as in %s; got %s", key, example, describe(n))
	case isNull(n) || n.Value == "":
		return "", errAt(n, "%s needs a name, as in %s", key, example)
	}
	return n.Value, nil
}

// decodeStruct reads a mapping of the given keys, each given at most once.
func decodeStruct(n *yaml.Node, what, example string, keys []string, aliases func(string) []string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, "%s takes a mapping, as in %s; got %s", what, example, describe(n))
	}
	fs, err := fields(n)
	if err != nil {
		return nil, err
	}
	m := make(map[string]*yaml.Node, len(fs))
	for _, f := range fs {
		known := false
		for _, k := range keys {
			known = known || f.key.Value == k
		}
		if !known {
			return nil, unknownKey(f.key, what+" key", keys, aliases, "use "+example)
		}
		m[f.key.Value] = f.val
	}
	return m, nil
}

func requiredName(n *yaml.Node, m map[string]*yaml.Node, what, key, example string) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", errAt(n, "%s has no %q, as in %s", what, key, example)
	}
	return decodeName(v, key, example, "")
}

type field struct{ key, val *yaml.Node }

// fields returns the entries of the mapping n, refusing keys that are not
// strings or that repeat.
func fields(n *yaml.Node) ([]field, error) {
	fs := make([]field, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || isNull(k) {
			return nil, errAt(k, "%s is not a key; keys are names", describe(k))
		}
		for _, f := range fs {
			if f.key.Value == k.Value {
				return nil, errAt(k, "%q is given twice; it was first given on line %d", k.Value, f.key.Line)
			}
		}
		fs = append(fs, field{k, v})
	}
	return fs, nil
}

// unknownKey reports an unknown key, with the keys meant when they can be
// guessed, and hint otherwise.
func unknownKey(k *yaml.Node, what string, keys []string, aliases func(string) []string, hint string) error {
	if s := didYouMean(k.Value, keys, aliases); s != "" {
		return errAt(k, "unknown %s %q%s", what, k.Value, s)
	}
	return errAt(k, "unknown %s %q; %s", what, k.Value, hint)
}

// LineError is a problem in a YAML rules document, at a line. Tools that
// embed [Config] in a larger document read Line and Msg with errors.As.
type LineError struct {
	// Line is the 1-based line of the node at fault.
	Line int
	// Msg says what is wrong and what to do, without the line.
	Msg string
	// Err is the cause, if any.
	Err error
}

func (e *LineError) Error() string { return fmt.Sprintf("authz: line %d: %s", e.Line, e.Msg) }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

// errAt returns a *LineError at n's line.
func errAt(n *yaml.Node, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &LineError{Line: n.Line, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what n is, for errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "a YAML node of another kind"
}
