package authz_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
	"go.yaml.in/yaml/v3"
)

// Rules written in Go, as with Spring's authorizeHttpRequests.
func Example() {
	policy, err := authz.Compile(authz.Config{
		Rules: []authz.Rule{
			{Path: "/health", Require: authz.PermitAll()},
			{Methods: []string{"GET"}, Path: "/orders/{id}", Require: authz.Scope("orders.read")},
			{Methods: []string{"POST", "PUT", "DELETE"}, Path: "/orders/**", Require: authz.AllOf(
				authz.Scope("orders.write"),
				authz.AnyOf(authz.Role("admin"), authz.ClientRole("orders-api", "writer")),
			)},
			{Path: "/admin/**", Require: authz.Role("admin")},
		},
		Default: authz.Authenticated(),
	})
	if err != nil {
		log.Fatal(err)
	}

	// A caller, as a verified token would make it.
	caller := &keygate.Principal{
		Scopes:      []string{"orders.read", "orders.write"},
		ClientRoles: map[string][]string{"orders-api": {"writer"}},
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/health"},
		{"GET", "/orders/42"},
		{"DELETE", "/orders/42"},
		{"GET", "/admin/users"},
		{"GET", "/profile"},
	} {
		req, rule := policy.Match(r.method, r.path)
		fmt.Printf("%-6s %-12s rule %2d %-5v %s\n", r.method, r.path, rule, req.Allows(caller), req)
	}
	// Output:
	// GET    /health      rule  0 true  permitAll
	// GET    /orders/42   rule  1 true  hasScope("orders.read")
	// DELETE /orders/42   rule  2 true  allOf(hasScope("orders.write"), anyOf(hasRole("admin"), hasClientRole("orders-api", "writer")))
	// GET    /admin/users rule  3 false hasRole("admin")
	// GET    /profile     rule -1 true  authenticated
}

func ExampleParseYAML() {
	policy, err := authz.ParseYAML([]byte(`
default: deny
rules:
  - path: /public/**
    require: permit_all
  - path: /orders/{id}
    methods: [GET, HEAD]
    require: {scope: orders.read}
  - path: /staff/**
    require: {any_role: [staff, admin]}
`))
	if err != nil {
		log.Fatal(err)
	}
	for _, path := range []string{"/public/logo.png", "/orders/42", "/staff", "/orders"} {
		req, rule := policy.Match("GET", path)
		fmt.Println(path, rule, req)
	}
	// Output:
	// /public/logo.png 0 permitAll
	// /orders/42 1 hasScope("orders.read")
	// /staff 2 hasAnyRole("staff", "admin")
	// /orders -1 denyAll
}

func ExampleParseYAML_error() {
	_, err := authz.ParseYAML([]byte(`
rules:
  - path: /admin/**
    require: {roles: admin}
`))
	fmt.Println(err)
	// Output:
	// authz: line 4: unknown requirement "roles"; did you mean "role" or "any_role"?
}

// Rules is a field of a larger configuration, such as the keygate
// binary's, decoded with the strictness of KnownFields.
func ExampleConfig_UnmarshalYAML() {
	var cfg struct {
		Listen string       `yaml:"listen"`
		Rules  authz.Config `yaml:"rules"`
	}
	dec := yaml.NewDecoder(strings.NewReader(`
listen: :8080
rules:
  default: authenticated
  rules:
    - path: /health
      require: permit_all
`))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		log.Fatal(err)
	}
	policy, err := authz.Compile(cfg.Rules)
	if err != nil {
		log.Fatal(err)
	}
	req, _ := policy.Match("GET", "/health")
	fmt.Println(req, req.Public())
	req, _ = policy.Match("GET", "/orders")
	fmt.Println(req, req.Public())
	// Output:
	// permitAll true
	// authenticated false
}

func ExampleCompile_error() {
	_, err := authz.Compile(authz.Config{Rules: []authz.Rule{
		{Path: "/health", Require: authz.PermitAll()},
		{Path: "/api/*", Require: authz.Authenticated()},
	}})
	fmt.Println(err)
	// Output:
	// authz: rule 1: path "/api/*" has "*" in segment "*"; use {name} for one segment, or "**" as the last segment for everything below
}

func ExamplePolicy_Match() {
	policy, err := authz.Compile(authz.Config{Rules: []authz.Rule{
		{Path: "/api/**", Require: authz.Authenticated()},
		{Path: "/files/{path...}", Require: authz.Role("reader")},
		{Path: "/orders/{id}", Require: authz.Scope("orders.read")},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for _, path := range []string{
		"/api", "/api/", "/api/v1/x", "/apix",
		"/files", "/files/a/b",
		"/orders/42", "/orders/42/", "/orders/", "/orders/42/items",
	} {
		_, rule := policy.Match("GET", path)
		fmt.Println(path, rule)
	}
	// Output:
	// /api 0
	// /api/ 0
	// /api/v1/x 0
	// /apix -1
	// /files 1
	// /files/a/b 1
	// /orders/42 2
	// /orders/42/ 2
	// /orders/ -1
	// /orders/42/items -1
}

func ExampleRequirement_Allows() {
	req := authz.AnyOf(authz.Role("admin"), authz.Scope("reports.read"))
	fmt.Println(req.Allows(nil))
	fmt.Println(req.Allows(&keygate.Principal{Roles: []string{"admin"}}))
	fmt.Println(req.Allows(&keygate.Principal{Scopes: []string{"reports.read"}}))
	fmt.Println(req.Allows(&keygate.Principal{Roles: []string{"user"}}))
	// Output:
	// false
	// true
	// true
	// false
}

func ExampleRequirement_Scopes() {
	req := authz.AllOf(authz.Scope("orders.write"), authz.AnyOf(authz.Scope("orders.admin"), authz.Role("admin")))
	fmt.Println(req.Scopes())
	// Output:
	// [orders.write orders.admin]
}

func ExampleRequirement_String() {
	fmt.Println(authz.Requirement{})
	fmt.Println(authz.AllOf(authz.Scope("a"), authz.AnyOf(authz.Role("admin"), authz.ClaimEquals("tenant", "acme"))))
	// Output:
	// denyAll
	// allOf(hasScope("a"), anyOf(hasRole("admin"), claimEquals("tenant", "acme")))
}

// Path equivalence: a rule covers its path with a trailing slash unless
// it is strict, methods match in any case, and CaseInsensitivePaths is
// for upstreams that route /ADMIN as /admin.
func ExampleConfig_caseInsensitivePaths() {
	policy, err := authz.Compile(authz.Config{
		Rules: []authz.Rule{
			{Path: "/settings", Require: authz.Role("admin")},
			{Path: "/orders/{id}", Methods: []string{"DELETE"}, Require: authz.Role("admin")},
			{Path: "/export", StrictTrailingSlash: true, Require: authz.Role("admin")},
			{Path: "/admin/**", Require: authz.Role("admin")},
		},
		Default:              authz.Authenticated(),
		CaseInsensitivePaths: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/settings/"},
		{"delete", "/orders/7/"},
		{"GET", "/export/"},
		{"GET", "/ADMIN/users"},
	} {
		req, rule := policy.Match(r.method, r.path)
		fmt.Println(r.method, r.path, rule, req)
	}
	// Output:
	// GET /settings/ 0 hasRole("admin")
	// delete /orders/7/ 1 hasRole("admin")
	// GET /export/ -1 authenticated
	// GET /ADMIN/users 3 hasRole("admin")
}
