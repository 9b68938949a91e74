// Package authz decides what a verified caller may request, the way
// Spring Security's authorizeHttpRequests with requestMatchers does:
// ordered [Rules] map an HTTP method and a path pattern to a
// [Requirement], such as a role, a scope or a claim. The first rule that
// matches a request decides it; when none matches, the default does, and
// the default of the zero [Rules] denies.
//
// Rules are compiled into a [Policy], which the middleware of package
// httpauth consults for every request:
//
//	p, err := authz.Compile(authz.Rules{
//		Rules: []authz.Rule{
//			{Path: "/health", Require: authz.PermitAll()},
//			{Methods: []string{"GET"}, Path: "/orders/{id}", Require: authz.Scope("orders.read")},
//			{Path: "/admin/**", Require: authz.Role("admin")},
//		},
//		Default: authz.Authenticated(),
//	})
//	...
//	req, _ := p.Match(r.Method, r.URL.Path)
//	if !req.Allows(principal) { ... }
//
// # Path patterns
//
// A pattern is matched against the request's cleaned path, segment by
// segment, byte for byte, and case-sensitively:
//
//   - /health matches /health only: not /health/, nor /healthz.
//   - /api/** matches /api, /api/ and every path below /api/, but not
//     /apix. /** matches every path. ** is only allowed as the last
//     segment.
//   - /orders/{id} matches /orders/ followed by exactly one non-empty
//     segment: /orders/42, but not /orders/, /orders or /orders/42/items.
//   - /files/{path...} matches what /files/** does: /files, /files/ and
//     every path below. It is only allowed as the last segment.
//   - Wildcards mix with literals: /orders/{id}/items/**.
//
// Wildcards use the syntax of net/http.ServeMux patterns (names are Go
// identifiers, each segment is wholly a wildcard or wholly literal) but
// capture nothing: only whether a path matches counts. Unlike ServeMux, a
// pattern ending in "/" is not a prefix; Compile rejects such patterns,
// along with "*" inside a segment, "//", "." and "..", and {$}.
//
// A pattern without ** or {name...} does not cover the paths below it,
// nor its own path with a trailing slash: to protect a subtree, write
// /admin/**, not /admin.
//
// # YAML
//
// [ParseYAML] reads rules from a document like this one, and
// [Rules.UnmarshalYAML] reads the same document as the value of a key of
// a larger configuration:
//
//	default: deny            # or: authenticated (or any requirement)
//	rules:
//	  - path: /public/**
//	    require: permit_all          # string shorthands: permit_all | authenticated | deny
//	  - path: /orders/{id}
//	    methods: [GET, HEAD]
//	    require: {scope: orders.read}
//	  - path: /orders/**
//	    methods: [POST, PUT, DELETE]
//	    require:
//	      all:
//	        - scope: orders.write
//	        - any:
//	            - role: admin
//	            - client_role: {client: orders-api, role: writer}
//	  - path: /admin/**
//	    require: {role: admin}
//	  - path: /tenants/**
//	    require: {claim: {name: tenant, equals: acme}}
//	  - path: /groups/**
//	    require: {claim: {name: groups, contains: /staff}}
//	  - path: /staff/**
//	    require: {any_role: [staff, admin]}
//
// A missing default denies; a document that is a list of rules alone is
// rules with a missing default. Each rule has a path and a require, and
// may have methods: a list, or a single method, matched as
// [Rule.Methods] says (GET covers HEAD). A requirement is one of the
// strings permit_all, authenticated or deny, or a mapping with exactly one
// of these keys:
//
//	permit_all: true                       PermitAll()
//	authenticated: true                    Authenticated()
//	deny: true                             DenyAll()
//	role: admin                            Role("admin")
//	any_role: [staff, admin]               AnyRole("staff", "admin")
//	client_role: {client: c, role: r}      ClientRole("c", "r")
//	scope: orders.read                     Scope("orders.read")
//	authority: ROLE_admin                  Authority("ROLE_admin")
//	claim: {name: tenant, equals: acme}    ClaimEquals("tenant", "acme")
//	claim: {name: groups, contains: x}     ClaimContains("groups", "x")
//	all: [<requirement>, ...]              AllOf(...)
//	any: [<requirement>, ...]              AnyOf(...)
//
// The value of equals is compared with the claim as JSON: equals: 3
// matches the claim 3, equals: "3" the claim "3", equals: true the
// boolean true.
//
// Unknown keys, repeated keys, missing paths or requirements and values
// of the wrong type are errors that name the line and, when it can be
// guessed, what was meant:
//
//	authz: line 7: unknown requirement "roles"; did you mean "role" or "any_role"?
//	authz: line 3: rule has no "require"; use require: permit_all for an open route
package authz
