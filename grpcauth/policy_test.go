package grpcauth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/grpcauth"
)

func TestMatch(t *testing.T) {
	p, err := grpcauth.Compile(grpcauth.Access{
		Rules: []grpcauth.Rule{
			{Method: "/shop.Orders/Get", Require: authz.Scope("orders.read")},
			{Method: "/shop.Orders/*", Require: authz.Role("user")},
			{Method: "/shop.v1.Admin/*", Require: authz.Role("admin")},
			{Method: "/**", Require: authz.Authenticated()},
		},
		Default: authz.PermitAll(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		rule   int
	}{
		{"/shop.Orders/Get", 0},
		{"/shop.Orders/get", 1}, // names are case-sensitive, as gRPC's dispatch
		{"/shop.Orders/List", 1},
		{"/shop.v1.Admin/Purge", 2},
		{"/shop.OrdersX/Get", 3},
		{"/shop/Orders", 3},
		{"/a/b", 3},
		// Not /service/method: no rule, not even /**, and no default.
		{"/shop.Orders/Get/", -1},
		{"/shop.Orders/Get/x", -1},
		{"shop.Orders/Get", -1},
		{"//Get", -1},
		{"/shop.Orders/", -1},
		{"/shop.Orders", -1},
		{"/shop.Orders/G et", -1},
		{"/shop.Orders/G\x00", -1},
		{"/shop.Orders/Gé", -1},
		{"", -1},
	} {
		req, rule := p.Match(c.method)
		if rule != c.rule {
			t.Errorf("Match(%q) = rule %d; want %d", c.method, rule, c.rule)
		}
		if c.rule == -1 && req.Public() {
			t.Errorf("Match(%q) = %s; want a denial for a malformed name", c.method, req)
		}
	}
	var nilPolicy *grpcauth.Policy
	if req, rule := nilPolicy.Match("/a/b"); rule != -1 || req.Allows(nil) {
		t.Errorf("nil Policy: Match = %s, %d; want denyAll, -1", req, rule)
	}
	allocs := testing.AllocsPerRun(100, func() { p.Match("/shop.v1.Admin/Purge") })
	if allocs != 0 {
		t.Errorf("Match allocates %v times", allocs)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		method string
		want   string
	}{
		{"", "is empty; use /** for every method"},
		{"shop.Orders/Get", `must start with "/", as in "/shop.Orders/Get"`},
		{"/shop.Orders", `names no method; use "/shop.Orders/*"`},
		{"/shop.Orders/", `names no method; use "/shop.Orders/*"`},
		{"/shop.Orders/**", `use "/shop.Orders/*" for every method of the service`},
		{"/shop.Orders/Get/x", `has more than a method after the service`},
		{"/shop.Orders/Ge*", `has "*" inside a method name`},
		{"/shop.Orders/G-t", `has the method "G-t"`},
		{"/*/Get", "has a wildcard for the service"},
		{"/**/Get", "has a wildcard for the service"},
		{"/shop.*/Get", `has "*" in the service "shop.*"`},
		{"/shop..Orders/Get", `has the service "shop..Orders"`},
		{"//Get", "names no service"},
		{"/*", "names no method"},
	} {
		_, err := grpcauth.Compile(grpcauth.Access{Rules: []grpcauth.Rule{{Method: c.method, Require: authz.Authenticated()}}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(method %q) = %v; want an error with %q", c.method, err, c.want)
		}
	}
	for _, r := range []grpcauth.Access{
		{Rules: []grpcauth.Rule{{Method: "/a.B/C", Require: authz.Role("")}}},
		{Rules: []grpcauth.Rule{{Method: "/a.B/C", Require: authz.AnyOf()}}},
		{Default: authz.ClaimEquals("x", func() {})},
	} {
		if _, err := grpcauth.Compile(r); err == nil {
			t.Errorf("Compile(%+v): no error", r)
		}
	}
}

func TestParseYAML(t *testing.T) {
	p, err := grpcauth.ParseYAML([]byte(`
default: authenticated
rules:
  - method: /grpc.health.v1.Health/*
    require: permit_all
  - method: /shop.Orders/Get
    require: {scope: orders.read}
  - method: /shop.Admin/*
    require:
      any:
        - role: admin
        - client_role: {client: orders-api, role: ops}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		want   string
	}{
		{"/grpc.health.v1.Health/Check", "permitAll"},
		{"/shop.Orders/Get", `hasScope("orders.read")`},
		{"/shop.Admin/Purge", `anyOf(hasRole("admin"), hasClientRole("orders-api", "ops"))`},
		{"/shop.Orders/List", "authenticated"},
	} {
		if req, _ := p.Match(c.method); req.String() != c.want {
			t.Errorf("Match(%q) = %s; want %s", c.method, req, c.want)
		}
	}
	// A list alone denies what it does not match.
	p, err = grpcauth.ParseYAML([]byte("- method: /a.B/*\n  require: authenticated\n"))
	if err != nil {
		t.Fatal(err)
	}
	if req, rule := p.Match("/c.D/E"); rule != -1 || req.String() != "denyAll" {
		t.Errorf("list alone: Match = %s, %d; want denyAll, -1", req, rule)
	}
}

func TestParseYAMLErrors(t *testing.T) {
	for _, c := range []struct {
		doc  string
		line int
		want string
	}{
		{"rules:\n  - method: /a.B/C\n", 2, `rule has no "require"`},
		{"rules:\n  - require: deny\n", 2, `rule has no "method"`},
		{"rules:\n  - path: /x\n    require: deny\n", 2, `"path" belongs to HTTP rules`},
		{"rules:\n  - method: /a.B/C\n    methods: [GET]\n    require: deny\n", 3, `"methods" belongs to HTTP rules`},
		{"rules:\n  - method: a.B/C\n    require: deny\n", 2, `must start with "/"`},
		{"rules:\n  - method: [/a.B/C]\n    require: deny\n", 2, "method takes a pattern"},
		{"rules:\n  - method: /a.B/C\n    require: {roles: admin}\n", 3, `unknown requirement "roles"`},
		{"rules:\n  - method: /a.B/C\n    require: deny\n    require: deny\n", 4, `"require" is given twice`},
		{"default: authenticated\ndefault: deny\n", 2, `"default" is given twice`},
		{"defaults: deny\n", 1, `unknown key "defaults"`},
		{"rules: /a.B/C\n", 1, "rules must be a list"},
		{"just a string\n", 1, "want a mapping"},
		{"rules: []\n---\nrules: []\n", 2, "a second YAML document"},
	} {
		_, err := grpcauth.ParseYAML([]byte(c.doc))
		var le *authz.LineError
		if !errors.As(err, &le) || le.Line != c.line || !strings.Contains(le.Msg, c.want) {
			t.Errorf("ParseYAML(%q) = %v; want line %d with %q", c.doc, err, c.line, c.want)
		}
	}
	if _, err := grpcauth.ParseYAML(nil); err == nil {
		t.Error("ParseYAML(nil): no error")
	}
}
