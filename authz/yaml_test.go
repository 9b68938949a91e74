package authz_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/authz"
	"go.yaml.in/yaml/v3"
)

const fullDoc = `
default: authenticated
rules:
  - path: /public/**
    require: permit_all
  - path: /orders/{id}
    methods: [GET, HEAD]
    require: {scope: orders.read}
  - path: /orders/**
    methods: [post, PUT, DELETE]
    require:
      all:
        - scope: orders.write
        - any:
            - role: admin
            - client_role: {client: orders-api, role: writer}
  - path: /admin/**
    require: {role: admin}
  - path: /tenants/**
    require: {claim: {name: tenant, equals: acme}}
  - path: /levels/**
    require: {claim: {name: level, equals: 3}}
  - path: /flags/**
    require: {claim: {name: verified, equals: true}}
  - path: /quoted/**
    require: {claim: {name: level, equals: "3"}}
  - path: /groups/**
    require: {claim: {name: groups, contains: /staff}}
  - path: /staff/**
    require: {any_role: [staff, admin]}
  - path: /auth/**
    methods: GET
    require: authenticated
  - path: /closed
    require: deny
  - path: /long/**
    require: {permit_all: true}
  - path: /long2/**
    require: {authenticated: true}
  - path: /long3/**
    require: {deny: true}
  - path: /authority
    require: {authority: ROLE_admin}
  - path: /anchored
    require: &admins {any_role: [admin]}
  - path: /aliased
    require: *admins
`

func TestParseYAML(t *testing.T) {
	p, err := authz.ParseYAML([]byte(fullDoc))
	if err != nil {
		t.Fatalf("ParseYAML(full document) = %v", err)
	}
	want := []struct {
		methods []string
		path    string
		req     authz.Requirement
	}{
		{nil, "/public/**", authz.PermitAll()},
		{[]string{"GET", "HEAD"}, "/orders/{id}", authz.Scope("orders.read")},
		{[]string{"POST", "PUT", "DELETE"}, "/orders/**", authz.AllOf(
			authz.Scope("orders.write"),
			authz.AnyOf(authz.Role("admin"), authz.ClientRole("orders-api", "writer")),
		)},
		{nil, "/admin/**", authz.Role("admin")},
		{nil, "/tenants/**", authz.ClaimEquals("tenant", "acme")},
		{nil, "/levels/**", authz.ClaimEquals("level", 3)},
		{nil, "/flags/**", authz.ClaimEquals("verified", true)},
		{nil, "/quoted/**", authz.ClaimEquals("level", "3")},
		{nil, "/groups/**", authz.ClaimContains("groups", "/staff")},
		{nil, "/staff/**", authz.AnyRole("staff", "admin")},
		{[]string{"GET"}, "/auth/**", authz.Authenticated()},
		{nil, "/closed", authz.DenyAll()},
		{nil, "/long/**", authz.PermitAll()},
		{nil, "/long2/**", authz.Authenticated()},
		{nil, "/long3/**", authz.DenyAll()},
		{nil, "/authority", authz.Authority("ROLE_admin")},
		{nil, "/anchored", authz.AnyRole("admin")},
		{nil, "/aliased", authz.AnyRole("admin")},
	}
	r := p.Config()
	if len(r.Rules) != len(want) {
		t.Fatalf("ParseYAML(full document) has %d rules; want %d", len(r.Rules), len(want))
	}
	for i, w := range want {
		got := r.Rules[i]
		if !slices.Equal(got.Methods, w.methods) || got.Path != w.path || got.Require.String() != w.req.String() {
			t.Errorf("rule %d = %q %s %s; want %q %s %s", i, got.Methods, got.Path, got.Require, w.methods, w.path, w.req)
		}
	}
	if got := r.Default.String(); got != "authenticated" {
		t.Errorf("default = %s; want authenticated", got)
	}

	// Numbers and strings keep their JSON types.
	pr := verified(t, map[string]any{"level": 3, "verified": true})
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"/levels/x", true},
		{"/quoted/x", false},
		{"/flags/x", true},
	} {
		req, _ := p.Match("GET", tt.path)
		if got := req.Allows(pr); got != tt.want {
			t.Errorf("Match(GET, %s) = %s; Allows(level 3, verified true) = %v; want %v", tt.path, req, got, tt.want)
		}
	}
}

func TestParseYAMLForms(t *testing.T) {
	tests := []struct {
		name, doc   string
		wantRules   int
		wantDefault string
	}{
		{"no default", "rules:\n  - path: /a\n    require: permit_all\n", 1, "denyAll"},
		{"default only", "default: authenticated\n", 0, "authenticated"},
		{"default requirement", "default: {scope: api}\n", 0, `hasScope("api")`},
		{"default deny", "default: deny\nrules: []\n", 0, "denyAll"},
		{"null rules", "default: deny\nrules:\n", 0, "denyAll"},
		{"bare list", "- path: /a\n  require: permit_all\n- path: /b\n  require: deny\n", 2, "denyAll"},
		{"flow style", `{default: authenticated, rules: [{path: /a, methods: [get], require: {role: x}}]}`, 1, "authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := authz.ParseYAML([]byte(tt.doc))
			if err != nil {
				t.Fatalf("ParseYAML(%q) = %v", tt.doc, err)
			}
			r := p.Config()
			if len(r.Rules) != tt.wantRules || r.Default.String() != tt.wantDefault {
				t.Errorf("ParseYAML(%q) = %d rules, default %s; want %d rules, default %s", tt.doc, len(r.Rules), r.Default, tt.wantRules, tt.wantDefault)
			}
		})
	}
}

func TestParseYAMLErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int // 0: no line in the message
		want string
	}{
		{"empty", "", 0, "the YAML document is empty"},
		{"comment only", "# nothing\n", 0, "the YAML document is empty"},
		{"null", "~\n", 1, "the YAML document is empty"},
		{"syntax", "rules: [\n", 0, "authz: yaml: "},
		{"two documents", "default: deny\n---\ndefault: deny\n", 2, "a second YAML document"},
		{"scalar document", "deny\n", 1, "want a mapping with default and rules, or a list of rules"},
		{"unknown top key", "default: deny\nrule:\n  - path: /a\n", 2, `unknown key "rule"; did you mean "rules"?`},
		{"unknown top key no guess", "frobnicate: 1\n", 1, `unknown key "frobnicate"; a rules document holds default, rules and case_insensitive_paths`},
		{"repeated top key", "default: deny\ndefault: authenticated\n", 2, `"default" is given twice; it was first given on line 1`},
		{"rules not a list", "rules:\n  path: /a\n", 2, "rules must be a list of rules"},
		{"rule not a mapping", "rules:\n  - /a\n", 2, `a rule must be a mapping with path, require and maybe methods; got "/a"`},
		{
			"unknown requirement",
			"rules:\n  - path: /a\n    require: permit_all\n  - path: /b\n    methods: [GET]\n    require:\n      roles: admin\n",
			7, `unknown requirement "roles"; did you mean "role" or "any_role"?`,
		},
		{"no require", "rules:\n  - path: /ok\n    require: deny\n  - path: /a\n", 4, `rule has no "require"; use require: permit_all for an open route`},
		{"no path", "rules:\n  - methods: [GET]\n    require: deny\n", 2, `rule has no "path"`},
		{"method key", "rules:\n  - path: /a\n    method: GET\n    require: deny\n", 3, `unknown rule key "method"; did you mean "methods"?`},
		{"requires key", "rules:\n  - path: /a\n    requires: deny\n", 3, `unknown rule key "requires"; did you mean "require"?`},
		{"paths key", "rules:\n  - paths: [/a]\n    require: deny\n", 2, `unknown rule key "paths"; did you mean "path"?`},
		{"unknown rule key", "rules:\n  - path: /a\n    require: deny\n    colour: red\n", 4, `unknown rule key "colour"; a rule holds path, methods, require and strict_trailing_slash`},
		{"repeated rule key", "rules:\n  - path: /a\n    path: /b\n    require: deny\n", 3, `"path" is given twice`},
		{"bad path", "rules:\n  - path: /a/{id\n    require: deny\n", 2, `path "/a/{id" has an unclosed "{"`},
		{"two trailing slashes", "rules:\n  - path: /api//\n    require: deny\n", 2, `path "/api//" has an empty segment`},
		{"strict not a bool", "rules:\n  - path: /a\n    require: deny\n    strict_trailing_slash: yes please\n", 4, `strict_trailing_slash takes true or false; got "yes please"`},
		{"strict null", "rules:\n  - path: /a\n    require: deny\n    strict_trailing_slash:\n", 4, `strict_trailing_slash takes true or false; got nothing`},
		{"strict misspelled", "rules:\n  - path: /a\n    require: deny\n    strict_slashes: true\n", 4, `unknown rule key "strict_slashes"; did you mean "strict_trailing_slash"?`},
		{"case not a bool", "case_insensitive_paths: 1\nrules: []\n", 1, `case_insensitive_paths takes true or false; got the number 1`},
		{"case misspelled", "ignore_case: true\n", 1, `unknown key "ignore_case"; did you mean "case_insensitive_paths"?`},
		{"case in a rule", "rules:\n  - path: /a\n    require: deny\n    case_insensitive_paths: true\n", 4, `unknown rule key "case_insensitive_paths"`},
		{"path not a string", "rules:\n  - path: [/a]\n    require: deny\n", 2, "path takes a pattern such as /orders/{id}; got a list"},
		{"null path", "rules:\n  - path:\n    require: deny\n", 2, "path takes a pattern such as /orders/{id}; got nothing"},
		{"bad method", "rules:\n  - path: /a\n    methods: [GET, PSOT]\n    require: deny\n", 3, `unknown method "PSOT"`},
		{"method not a name", "rules:\n  - path: /a\n    methods: [[GET]]\n    require: deny\n", 3, "methods takes a list such as [GET, HEAD]; got a list in it"},
		{"methods mapping", "rules:\n  - path: /a\n    methods: {GET: true}\n    require: deny\n", 3, "methods takes a list such as [GET, HEAD]; got a mapping"},
		{"methods empty", "rules:\n  - path: /a\n    methods: []\n    require: deny\n", 3, "methods is empty; leave it out to cover every method"},
		{"methods null", "rules:\n  - path: /a\n    methods:\n    require: deny\n", 3, "methods is empty"},
		{"require null", "rules:\n  - path: /a\n    require:\n", 3, "empty requirement; use permit_all, authenticated, deny"},
		{"require camel", "rules:\n  - path: /a\n    require: permitAll\n", 3, `unknown requirement "permitAll"; did you mean "permit_all"?`},
		{"require deny_all", "rules:\n  - path: /a\n    require: deny_all\n", 3, `unknown requirement "deny_all"; did you mean "deny"?`},
		{"require unknown string", "rules:\n  - path: /a\n    require: whatever\n", 3, `unknown requirement "whatever"; use permit_all, authenticated, deny, or a mapping such as {role: admin}`},
		{"require key as string", "rules:\n  - path: /a\n    require: role\n", 3, `requirement "role" needs a value, as in {role: ...}`},
		{"require bool", "rules:\n  - path: /a\n    require: true\n", 3, "the boolean true is not a requirement"},
		{"require list", "rules:\n  - path: /a\n    require: [role: a]\n", 3, "a requirement is not a list; use all: [...]"},
		{"require empty mapping", "rules:\n  - path: /a\n    require: {}\n", 3, "empty requirement"},
		{"two keys", "rules:\n  - path: /a\n    require:\n      role: admin\n      scope: x\n", 5, `requirement has two keys, "role" and "scope"; use all: [...] to require both`},
		{"permit_all false", "rules:\n  - path: /a\n    require: {permit_all: false}\n", 3, "permit_all takes true, or write the string permit_all alone; got the boolean false"},
		{"deny string", "rules:\n  - path: /a\n    require: {deny: \"yes\"}\n", 3, `deny takes true`},
		{"role list", "rules:\n  - path: /a\n    require: {role: [a, b]}\n", 3, "role takes one name, not a list; use any_role: [...]"},
		{"role empty", "rules:\n  - path: /a\n    require: {role: \"\"}\n", 3, "role needs a name, as in role: admin"},
		{"role null", "rules:\n  - path: /a\n    require: {role: }\n", 3, "role needs a name"},
		{"role mapping", "rules:\n  - path: /a\n    require: {role: {name: a}}\n", 3, "role takes a name, as in role: admin; got a mapping"},
		{"scope list", "rules:\n  - path: /a\n    require: {scope: [a, b]}\n", 3, "scope takes one name, not a list; use all: [{scope: a}, {scope: b}]"},
		{"authority empty", "rules:\n  - path: /a\n    require: {authority: ''}\n", 3, "authority needs a name"},
		{"any_role scalar", "rules:\n  - path: /a\n    require: {any_role: admin}\n", 3, `any_role takes a list such as any_role: [admin, staff]; got "admin"; use role: for one role`},
		{"any_role empty", "rules:\n  - path: /a\n    require: {any_role: []}\n", 3, "any_role names no role"},
		{"any_role empty item", "rules:\n  - path: /a\n    require:\n      any_role:\n        - admin\n        - ''\n", 6, "any_role needs a name"},
		{"anyRole", "rules:\n  - path: /a\n    require: {anyRole: [a]}\n", 3, `unknown requirement "anyRole"; did you mean "any_role"?`},
		{"hasRole", "rules:\n  - path: /a\n    require: {hasRole: a}\n", 3, `unknown requirement "hasRole"; did you mean "role"?`},
		{"scopes", "rules:\n  - path: /a\n    require: {scopes: a}\n", 3, `unknown requirement "scopes"; did you mean "scope"?`},
		{"typo", "rules:\n  - path: /a\n    require: {scpoe: a}\n", 3, `unknown requirement "scpoe"; did you mean "scope"?`},
		{"unknown key", "rules:\n  - path: /a\n    require: {banana: a}\n", 3, `unknown requirement "banana"; use one of permit_all, authenticated, deny, role, any_role`},
		{"client_role scalar", "rules:\n  - path: /a\n    require: {client_role: writer}\n", 3, "client_role takes a mapping, as in client_role: {client: orders-api, role: writer}"},
		{"keygate.yaml's access block", "access:\n  default: deny\n", 1, `unknown key "access": this is the content of keygate.yaml's access: block`},
		{"client_role no client", "rules:\n  - path: /a\n    require: {client_role: {role: writer}}\n", 3, `client_role has no "client"`},
		{"client_role no role", "rules:\n  - path: /a\n    require:\n      client_role:\n        client: c\n", 5, `client_role has no "role"`},
		{"client_role unknown key", "rules:\n  - path: /a\n    require: {client_role: {client_id: c, role: r}}\n", 3, `unknown client_role key "client_id"; did you mean "client"?`},
		{"client_role roles", "rules:\n  - path: /a\n    require: {client_role: {client: c, roles: [r]}}\n", 3, `unknown client_role key "roles"; did you mean "role"?`},
		{"claim scalar", "rules:\n  - path: /a\n    require: {claim: tenant}\n", 3, "claim takes a mapping, as in claim: {name: tenant, equals: acme}"},
		{"claim no name", "rules:\n  - path: /a\n    require: {claim: {equals: acme}}\n", 3, `claim has no "name"`},
		{"claim value key", "rules:\n  - path: /a\n    require: {claim: {name: t, value: acme}}\n", 3, `unknown claim key "value"; did you mean "equals"?`},
		{"claim unknown key", "rules:\n  - path: /a\n    require: {claim: {name: t, zzz: acme}}\n", 3, `unknown claim key "zzz"; use claim: {name: tenant, equals: acme}`},
		{"claim neither", "rules:\n  - path: /a\n    require: {claim: {name: t}}\n", 3, `claim "t" has neither equals nor contains`},
		{"claim both", "rules:\n  - path: /a\n    require: {claim: {name: t, equals: a, contains: b}}\n", 3, `claim "t" has both equals and contains`},
		{"claim equals nothing", "rules:\n  - path: /a\n    require:\n      claim:\n        name: t\n        equals:\n", 6, `claim "t": equals has no value; write equals: null`},
		{"claim contains list", "rules:\n  - path: /a\n    require: {claim: {name: t, contains: [a]}}\n", 3, "contains takes one name, not a list; use any: [...]"},
		{"claim equals non-string keys", "rules:\n  - path: /a\n    require: {claim: {name: t, equals: {1: a}}}\n", 3, `claim "t": equals value has no JSON form`},
		{"all scalar", "rules:\n  - path: /a\n    require: {all: admin}\n", 3, "all takes a list of requirements"},
		{"any empty", "rules:\n  - path: /a\n    require: {any: []}\n", 3, "any holds no requirement"},
		{
			"nested error",
			"rules:\n  - path: /a\n    require:\n      all:\n        - scope: a\n        - any:\n            - role: admin\n            - rol: staff\n",
			8, `unknown requirement "rol"; did you mean "role"?`,
		},
		{"allOf", "rules:\n  - path: /a\n    require: {allOf: [{role: a}]}\n", 3, `unknown requirement "allOf"; did you mean "all"?`},
		{"default bad", "default: authenticatd\n", 1, `unknown requirement "authenticatd"; did you mean "authenticated"?`},
		{"default null", "default:\nrules: []\n", 1, "empty requirement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := authz.ParseYAML([]byte(tt.doc))
			if err == nil {
				t.Fatalf("ParseYAML(%q) = %v, nil; want an error containing %q", tt.doc, p.Config(), tt.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "authz: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("ParseYAML(%q) = %q; want an error containing %q", tt.doc, msg, tt.want)
			}
			if tt.line > 0 {
				if prefix := fmt.Sprintf("authz: line %d: ", tt.line); !strings.HasPrefix(msg, prefix) {
					t.Errorf("ParseYAML(%q) = %q; want it to start with %q", tt.doc, msg, prefix)
				}
			}
		})
	}
}

// config is a larger configuration holding rules, as the keygate binary's.
type config struct {
	Listen string       `yaml:"listen"`
	Rules  authz.Config `yaml:"rules"`
}

func decodeConfig(doc string) (config, error) {
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var c config
	err := dec.Decode(&c)
	return c, err
}

func TestRulesEmbedded(t *testing.T) {
	c, err := decodeConfig(`
listen: :8080
rules:
  default: authenticated
  rules:
    - path: /health
      require: permit_all
    - path: /admin/**
      require: {role: admin}
`)
	if err != nil {
		t.Fatalf("Decode(config) = %v", err)
	}
	p, err := authz.Compile(c.Rules)
	if err != nil {
		t.Fatalf("Compile(config.Rules) = %v", err)
	}
	for _, tt := range []struct {
		path string
		want string
	}{
		{"/health", "permitAll"},
		{"/admin/users", `hasRole("admin")`},
		{"/other", "authenticated"},
	} {
		if req, _ := p.Match("GET", tt.path); req.String() != tt.want {
			t.Errorf("Match(GET, %s) = %s; want %s", tt.path, req, tt.want)
		}
	}
	if c.Listen != ":8080" {
		t.Errorf("Listen = %q; want :8080", c.Listen)
	}
}

func TestRulesEmbeddedErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{
			"error keeps the document's line",
			"listen: :8080\nrules:\n  rules:\n    - path: /a\n      require: {roles: admin}\n",
			`authz: line 5: unknown requirement "roles"; did you mean "role" or "any_role"?`,
		},
		{
			"unknown key in rules",
			"listen: :8080\nrules:\n  defaults: deny\n",
			`authz: line 3: unknown key "defaults"; did you mean "default"?`,
		},
		{
			"missing require",
			"rules:\n  rules:\n    - path: /a\n      methods: [GET]\n",
			`authz: line 3: rule has no "require"; use require: permit_all for an open route`,
		},
		{
			"known fields still checked outside",
			"listen: :8080\nlisten_addr: x\nrules:\n  default: deny\n",
			"field listen_addr not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeConfig(tt.doc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Decode(%q) = %v; want an error containing %q", tt.doc, err, tt.want)
			}
		})
	}
}

func TestRulesUnmarshalYAMLLeavesRulesOnError(t *testing.T) {
	r := authz.Config{Default: authz.Authenticated()}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("default: nope\n"), &n); err != nil {
		t.Fatal(err)
	}
	if err := r.UnmarshalYAML(n.Content[0]); err == nil {
		t.Fatalf("UnmarshalYAML(default: nope) = nil; want an error")
	}
	if r.Default.String() != "authenticated" {
		t.Errorf("Default = %s after a failed UnmarshalYAML; want authenticated, unchanged", r.Default)
	}
}

func TestParseYAMLMatchesCompile(t *testing.T) {
	// The same policy, from YAML and from Go, decides alike.
	fromYAML, err := authz.ParseYAML([]byte(fullDoc))
	if err != nil {
		t.Fatal(err)
	}
	fromGo := mustCompile(t, fromYAML.Config())
	var b bytes.Buffer
	for _, path := range []string{"/public/x", "/orders/1", "/orders/1/x", "/admin", "/staff/x", "/nowhere", "/auth/x"} {
		for _, m := range []string{"GET", "HEAD", "POST", "DELETE"} {
			r1, i1 := fromYAML.Match(m, path)
			r2, i2 := fromGo.Match(m, path)
			if i1 != i2 || r1.String() != r2.String() {
				fmt.Fprintf(&b, "Match(%s, %s) = %s, %d from YAML; %s, %d from Go\n", m, path, r1, i1, r2, i2)
			}
		}
	}
	if b.Len() > 0 {
		t.Error(b.String())
	}
}
