package authz_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate"
	"github.com/keygate/keygate/authz"
)

var (
	admin = &keygate.Principal{
		Subject:     "u-admin",
		RealmRoles:  []string{"admin", "staff"},
		Roles:       []string{"admin", "staff"},
		ClientRoles: map[string][]string{"orders-api": {"writer"}},
		Scopes:      []string{"orders.read", "orders.write"},
	}
	reader = &keygate.Principal{
		Subject:     "u-reader",
		RealmRoles:  []string{"user"},
		Roles:       []string{"user"},
		ClientRoles: map[string][]string{"billing": {"writer"}},
		Scopes:      []string{"orders.read"},
	}
	nobody = &keygate.Principal{Subject: "u-nobody"}
)

func TestRequirementAllows(t *testing.T) {
	tests := []struct {
		name string
		req  authz.Requirement
		p    *keygate.Principal
		want bool
	}{
		{"zero/anonymous", authz.Requirement{}, nil, false},
		{"zero/admin", authz.Requirement{}, admin, false},
		{"denyAll/admin", authz.DenyAll(), admin, false},
		{"permitAll/anonymous", authz.PermitAll(), nil, true},
		{"permitAll/nobody", authz.PermitAll(), nobody, true},
		{"authenticated/anonymous", authz.Authenticated(), nil, false},
		{"authenticated/nobody", authz.Authenticated(), nobody, true},

		{"role/admin", authz.Role("admin"), admin, true},
		{"role/reader", authz.Role("admin"), reader, false},
		{"role/anonymous", authz.Role("admin"), nil, false},
		{"anyRole/second", authz.AnyRole("ops", "staff"), admin, true},
		{"anyRole/none", authz.AnyRole("ops", "staff"), reader, false},
		{"anyRole/empty", authz.AnyRole(), admin, false},
		{"clientRole/held", authz.ClientRole("orders-api", "writer"), admin, true},
		{"clientRole/other client", authz.ClientRole("orders-api", "writer"), reader, false},
		{"clientRole/no map", authz.ClientRole("orders-api", "writer"), nobody, false},
		{"clientRole/anonymous", authz.ClientRole("orders-api", "writer"), nil, false},
		{"scope/held", authz.Scope("orders.write"), admin, true},
		{"scope/missing", authz.Scope("orders.write"), reader, false},
		{"scope/anonymous", authz.Scope("orders.read"), nil, false},
		{"authority/held", authz.Authority("ROLE_admin"), admin, true},
		{"authority/role name only", authz.Authority("admin"), admin, false},
		{"authority/anonymous", authz.Authority("ROLE_admin"), nil, false},

		{"allOf/both", authz.AllOf(authz.Role("admin"), authz.Scope("orders.write")), admin, true},
		{"allOf/one", authz.AllOf(authz.Role("user"), authz.Scope("orders.write")), reader, false},
		{"allOf/empty", authz.AllOf(), admin, false},
		{"allOf/empty anonymous", authz.AllOf(), nil, false},
		{"allOf/permitAll anonymous", authz.AllOf(authz.PermitAll(), authz.PermitAll()), nil, true},
		{"allOf/permitAll and role anonymous", authz.AllOf(authz.PermitAll(), authz.Role("admin")), nil, false},
		{"anyOf/first", authz.AnyOf(authz.Role("admin"), authz.Scope("nope")), admin, true},
		{"anyOf/second", authz.AnyOf(authz.Role("admin"), authz.Scope("orders.read")), reader, true},
		{"anyOf/none", authz.AnyOf(authz.Role("admin"), authz.Scope("orders.write")), reader, false},
		{"anyOf/empty", authz.AnyOf(), admin, false},
		{"anyOf/permitAll anonymous", authz.AnyOf(authz.Role("admin"), authz.PermitAll()), nil, true},
		{"anyOf/denyAll", authz.AnyOf(authz.DenyAll()), admin, false},
		{
			"nested/admin",
			authz.AllOf(authz.Scope("orders.write"), authz.AnyOf(authz.Role("admin"), authz.ClientRole("orders-api", "writer"))),
			admin, true,
		},
		{
			"nested/reader",
			authz.AllOf(authz.Scope("orders.read"), authz.AnyOf(authz.Role("admin"), authz.ClientRole("billing", "writer"))),
			reader, true,
		},
		{
			"nested/reader lacks scope",
			authz.AllOf(authz.Scope("orders.write"), authz.AnyOf(authz.Role("admin"), authz.ClientRole("billing", "writer"))),
			reader, false,
		},
		{"claim on a literal principal", authz.ClaimEquals("sub", "u-admin"), admin, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.req.Allows(tt.p); got != tt.want {
				t.Errorf("%s.Allows(%s) = %v; want %v", tt.req, who(tt.p), got, tt.want)
			}
		})
	}
}

func who(p *keygate.Principal) string {
	if p == nil {
		return "nil"
	}
	return p.Subject
}

func TestRequirementArgsAreCopied(t *testing.T) {
	roles := []string{"admin"}
	r := authz.AnyRole(roles...)
	roles[0] = "user"
	if !r.Allows(admin) {
		t.Errorf("AnyRole(admin).Allows(admin) = false after the caller's slice changed; want true")
	}
	reqs := []authz.Requirement{authz.Role("admin")}
	all := authz.AllOf(reqs...)
	reqs[0] = authz.DenyAll()
	if !all.Allows(admin) {
		t.Errorf("AllOf(hasRole(admin)).Allows(admin) = false after the caller's slice changed; want true")
	}
}

func TestClaimRequirements(t *testing.T) {
	p := verified(t, map[string]any{
		"tenant":   "acme",
		"level":    3,
		"ratio":    0.5,
		"verified": true,
		"groups":   []string{"/staff", "/dev"},
		"scope":    "orders.read orders.write",
		"nested":   map[string]any{"a": []int{1, 2}},
		"nothing":  nil,
		"mixed":    []any{1, "x", true},
	})
	type point struct {
		A []int `json:"a"`
	}
	tests := []struct {
		req  authz.Requirement
		p    *keygate.Principal
		want bool
	}{
		{authz.ClaimEquals("tenant", "acme"), p, true},
		{authz.ClaimEquals("tenant", "ACME"), p, false},
		{authz.ClaimEquals("tenant", "acme"), nil, false},
		{authz.ClaimEquals("level", 3), p, true},
		{authz.ClaimEquals("level", 3.0), p, true},
		{authz.ClaimEquals("level", int64(3)), p, true},
		{authz.ClaimEquals("level", uint8(3)), p, true},
		{authz.ClaimEquals("level", float32(3)), p, true},
		{authz.ClaimEquals("level", 4), p, false},
		{authz.ClaimEquals("level", "3"), p, false},
		{authz.ClaimEquals("ratio", float32(0.5)), p, true},
		{authz.ClaimEquals("verified", true), p, true},
		{authz.ClaimEquals("verified", false), p, false},
		{authz.ClaimEquals("verified", "true"), p, false},
		{authz.ClaimEquals("missing", nil), p, false},
		{authz.ClaimEquals("missing", ""), p, false},
		{authz.ClaimEquals("nothing", nil), p, true},
		{authz.ClaimEquals("tenant", nil), p, false},
		{authz.ClaimEquals("groups", []string{"/staff", "/dev"}), p, true},
		{authz.ClaimEquals("groups", []string{"/dev", "/staff"}), p, false},
		{authz.ClaimEquals("groups", "/staff"), p, false},
		{authz.ClaimEquals("nested", map[string]any{"a": []int{1, 2}}), p, true},
		{authz.ClaimEquals("nested", point{A: []int{1, 2}}), p, true},
		{authz.ClaimEquals("nested", point{A: []int{1}}), p, false},
		{authz.ClaimEquals("tenant", func() {}), p, false},

		{authz.ClaimContains("groups", "/staff"), p, true},
		{authz.ClaimContains("groups", "/dev"), p, true},
		{authz.ClaimContains("groups", "/ops"), p, false},
		{authz.ClaimContains("groups", "/staff"), nil, false},
		{authz.ClaimContains("scope", "orders.write"), p, true},
		{authz.ClaimContains("scope", "orders"), p, false},
		{authz.ClaimContains("scope", "orders.read orders.write"), p, true},
		{authz.ClaimContains("tenant", "acme"), p, true},
		{authz.ClaimContains("tenant", "acm"), p, false},
		{authz.ClaimContains("level", "3"), p, false},
		{authz.ClaimContains("mixed", "x"), p, true},
		{authz.ClaimContains("mixed", "true"), p, false},
		{authz.ClaimContains("nested", "a"), p, false},
		{authz.ClaimContains("missing", "x"), p, false},

		{authz.AllOf(authz.ClaimEquals("tenant", "acme"), authz.ClaimContains("groups", "/staff")), p, true},
		{authz.AnyOf(authz.ClaimEquals("tenant", "other"), authz.ClaimContains("groups", "/dev")), p, true},
	}
	for _, tt := range tests {
		t.Run(tt.req.String(), func(t *testing.T) {
			if got := tt.req.Allows(tt.p); got != tt.want {
				t.Errorf("%s.Allows(%s) = %v; want %v", tt.req, who(tt.p), got, tt.want)
			}
		})
	}
}

func TestRequirementPublic(t *testing.T) {
	tests := []struct {
		req  authz.Requirement
		want bool
	}{
		{authz.Requirement{}, false},
		{authz.PermitAll(), true},
		{authz.Authenticated(), false},
		{authz.DenyAll(), false},
		{authz.Role("admin"), false},
		{authz.ClaimEquals("tenant", "acme"), false},
		{authz.AnyOf(authz.Role("admin"), authz.PermitAll()), true},
		{authz.AnyOf(authz.Role("admin"), authz.Authenticated()), false},
		{authz.AnyOf(), false},
		{authz.AllOf(authz.PermitAll()), true},
		{authz.AllOf(authz.PermitAll(), authz.Authenticated()), false},
		{authz.AllOf(), false},
		{authz.AllOf(authz.AnyOf(authz.Scope("x"), authz.PermitAll())), true},
	}
	for _, tt := range tests {
		t.Run(tt.req.String(), func(t *testing.T) {
			if got := tt.req.Public(); got != tt.want {
				t.Errorf("%s.Public() = %v; want %v", tt.req, got, tt.want)
			}
		})
	}
}

func TestRequirementScopes(t *testing.T) {
	tests := []struct {
		req  authz.Requirement
		want []string
	}{
		{authz.Requirement{}, nil},
		{authz.PermitAll(), nil},
		{authz.Role("admin"), nil},
		{authz.Authority("SCOPE_orders.read"), nil},
		{authz.Scope("orders.read"), []string{"orders.read"}},
		{
			authz.AllOf(authz.Scope("b"), authz.AnyOf(authz.Scope("a"), authz.Role("admin"), authz.Scope("b")), authz.Scope("c")),
			[]string{"b", "a", "c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.req.String(), func(t *testing.T) {
			if got := tt.req.Scopes(); !slices.Equal(got, tt.want) {
				t.Errorf("%s.Scopes() = %q; want %q", tt.req, got, tt.want)
			}
		})
	}
}

func TestRequirementString(t *testing.T) {
	tests := []struct {
		req  authz.Requirement
		want string
	}{
		{authz.Requirement{}, "denyAll"},
		{authz.DenyAll(), "denyAll"},
		{authz.PermitAll(), "permitAll"},
		{authz.Authenticated(), "authenticated"},
		{authz.Role("admin"), `hasRole("admin")`},
		{authz.AnyRole("staff", "admin"), `hasAnyRole("staff", "admin")`},
		{authz.AnyRole(), `hasAnyRole()`},
		{authz.ClientRole("orders-api", "writer"), `hasClientRole("orders-api", "writer")`},
		{authz.Scope("orders.read"), `hasScope("orders.read")`},
		{authz.Authority("ROLE_admin"), `hasAuthority("ROLE_admin")`},
		{authz.ClaimEquals("tenant", "acme"), `claimEquals("tenant", "acme")`},
		{authz.ClaimEquals("level", 3), `claimEquals("level", 3)`},
		{authz.ClaimEquals("ratio", 0.5), `claimEquals("ratio", 0.5)`},
		{authz.ClaimEquals("ok", true), `claimEquals("ok", true)`},
		{authz.ClaimEquals("gone", nil), `claimEquals("gone", null)`},
		{authz.ClaimEquals("groups", []string{"<a>", "b"}), `claimEquals("groups", ["<a>","b"])`},
		{authz.ClaimEquals("f", func() {}), `claimEquals("f", <invalid>)`},
		{authz.ClaimContains("groups", "/staff"), `claimContains("groups", "/staff")`},
		{authz.Role(`a"b`), `hasRole("a\"b")`},
		{authz.AllOf(), `allOf()`},
		{
			authz.AllOf(authz.Scope("orders.write"), authz.AnyOf(authz.Role("admin"), authz.ClientRole("orders-api", "writer"))),
			`allOf(hasScope("orders.write"), anyOf(hasRole("admin"), hasClientRole("orders-api", "writer")))`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.req.String(); got != tt.want {
				t.Errorf("String() = %s; want %s", got, tt.want)
			}
		})
	}
}

func TestCompileRequirementErrors(t *testing.T) {
	tests := []struct {
		req  authz.Requirement
		want string
	}{
		{authz.Role(""), `hasRole("") names no role`},
		{authz.AnyRole(), `hasAnyRole() names no role`},
		{authz.AnyRole("a", ""), `names an empty role`},
		{authz.ClientRole("", "r"), `names no client`},
		{authz.ClientRole("c", ""), `names no role`},
		{authz.Scope(""), `names no scope`},
		{authz.Authority(""), `names no authority`},
		{authz.ClaimEquals("", "x"), `names no claim`},
		{authz.ClaimEquals("c", func() {}), `claimEquals("c"): value has no JSON form`},
		{authz.ClaimContains("", "x"), `names no claim`},
		{authz.ClaimContains("c", ""), `looks for an empty value`},
		{authz.AllOf(), `allOf() holds no requirement`},
		{authz.AnyOf(authz.Role("a"), authz.AllOf()), `allOf() holds no requirement`},
	}
	for _, tt := range tests {
		t.Run(tt.req.String(), func(t *testing.T) {
			_, err := authz.Compile(authz.Config{Rules: []authz.Rule{
				{Path: "/ok", Require: authz.PermitAll()},
				{Path: "/x", Require: tt.req},
			}})
			if err == nil || !strings.Contains(err.Error(), "authz: rule 1 (/x): ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile(rule 1 requiring %s) = %v; want an error about rule 1 containing %q", tt.req, err, tt.want)
			}
			_, err = authz.Compile(authz.Config{Default: tt.req})
			if err == nil || !strings.HasPrefix(err.Error(), "authz: default: ") {
				t.Errorf("Compile(default %s) = %v; want an error about the default", tt.req, err)
			}
		})
	}
}
