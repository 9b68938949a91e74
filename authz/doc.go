// Package authz decides what a verified caller may request, the way
// Spring Security's authorizeHttpRequests with requestMatchers does: the
// ordered rules of a [Config] map an HTTP method and a path pattern to a
// [Requirement], such as a role, a scope or a claim. The first rule that
// matches a request decides it; when none matches, the default does, and
// the default of the zero [Config] denies.
//
// Rules are compiled into a [Policy], which the middleware of package
// httpauth consults for every request:
//
//	p, err := authz.Compile(authz.Config{
//		Rules: []authz.Rule{
//			{Path: "/health", Require: authz.PermitAll()},
//			{Methods: []string{"GET"}, Path: "/orders/{id}", Require: authz.Scope("orders.read")},
//			{Path: "/admin/**", Require: authz.Role("admin")},
//		},
//		Default: authz.Authenticated(),
//	})
//	...
//	req, _ := p.Match(r.Method, r.URL.Path) // after httpauth.CheckTarget(r.Method, r.URL)
//	if !req.Allows(principal) { ... }
//
// # Path patterns
//
// A pattern is matched against the request's decoded, checked path (see
// [github.com/keygate/keygate/httpauth.CheckTarget]), segment by
// segment, byte for byte, and case-sensitively:
//
//   - /health matches /health and /health/: not /health//, nor /healthz,
//     nor /health/x.
//   - /api/** matches /api, /api/ and every path below /api/, but not
//     /apix. /** matches every path. ** is only allowed as the last
//     segment.
//   - /orders/{id} matches /orders/ followed by exactly one non-empty
//     segment, with or without a trailing slash: /orders/42 and
//     /orders/42/, but not /orders/, /orders or /orders/42/items.
//   - /files/{path...} matches what /files/** does: /files, /files/ and
//     every path below. It is only allowed as the last segment.
//   - Wildcards mix with literals: /orders/{id}/items/**.
//
// Wildcards use the syntax of net/http.ServeMux patterns (names are Go
// identifiers, each segment is wholly a wildcard or wholly literal) but
// capture nothing: only whether a path matches counts. Unlike ServeMux, a
// pattern ending in "/" is not a prefix. Compile rejects "*" inside a
// segment, "//", "." and "..", and {$}.
//
// A pattern without ** or {name...} does not cover the paths below it:
// to protect a subtree, write /admin/**, not /admin.
//
// # Path equivalence
//
// A rule must cover every spelling of a path that the upstream serves as
// the same resource, or a caller reaches the resource under a spelling no
// rule names. Two equivalences are built in, and one is opt-in:
//
//   - Trailing slash: a rule covers its path with and without one
//     trailing slash, because Flask (strict_slashes=False), Express and
//     older Spring MVC route /x/ as /x. A pattern written with a trailing
//     slash, /x/, means the same as /x. [Rule.StrictTrailingSlash]
//     (strict_trailing_slash: true in YAML) turns this off for one rule:
//     /x then matches /x only and /x/ only /x/, so /x/ falls to later
//     rules; set it only when the upstream serves /x and /x/ as
//     different resources. Mind the order of rules: with /docs
//     permit_all before /docs/** role admin, /docs/ now goes to the
//     first rule; if /docs/ is the admin subtree's index upstream, put
//     the /docs/** rule first or make the /docs rule strict.
//   - Method case: methods match without regard to case, so a rule for
//     DELETE covers delete and Delete, which many frameworks upper-case
//     and route as DELETE.
//   - Path case, opt-in: [Config.CaseInsensitivePaths]
//     (case_insensitive_paths: true in YAML) makes literal segments
//     compare as strings.EqualFold does, so that /admin/** covers
//     /ADMIN/x. Set it when the upstream routes paths case-insensitively:
//     Express and Koa (@koa/router) do BY DEFAULT, and so do ASP.NET,
//     IIS and Spring with a case-insensitive matcher. This package
//     cannot detect it: in front of such an upstream without the
//     option, /ADMIN/x misses the rule for /admin/** and the upstream
//     serves it as /admin/x. Set the option, or make the upstream
//     case-sensitive (Express: the "case sensitive routing" setting).
//
// Other spellings (dot segments, "//", encoded slashes and backslashes,
// double encoding, "#", ";" and control characters) are not matched at
// all: package httpauth refuses such requests with 400 before any rule
// is consulted.
//
// # YAML
//
// [ParseYAML] reads rules from a document like this one, and
// [Config.UnmarshalYAML] reads the same document as the value of a key of
// a larger configuration:
//
//	default: deny            # or: authenticated (or any requirement)
//	case_insensitive_paths: false    # true: /admin/** also covers /ADMIN/x
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
//	  - path: /settings              # also covers /settings/
//	    require: {role: admin}
//	  - path: /files/                # only /files/; /files falls through
//	    strict_trailing_slash: true
//	    require: authenticated
//
// A missing default denies; a document that is a list of rules alone is
// rules with a missing default, and case_insensitive_paths, when given,
// is true or false. Each rule has a path and a require, and may have
// methods: a list, or a single method, matched as [Rule.Methods] says
// (GET covers HEAD, and case does not count), and strict_trailing_slash,
// true or false (see [Rule.StrictTrailingSlash]). A requirement is one of the
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
