package authz_test

import (
	"slices"
	"testing"

	"github.com/keygate/keygate/authz"
)

// The tests in this file cover the path and method equivalences of
// issue #7: what the upstream treats as the same request, a rule must
// cover too.

func TestTrailingSlash(t *testing.T) {
	tests := []struct {
		pattern string
		strict  bool
		path    string
		want    bool
	}{
		// Issue #7 point 4.
		{"/settings", false, "/settings", true},
		{"/settings", false, "/settings/", true},
		{"/orders/{id}", false, "/orders/7", true},
		{"/orders/{id}", false, "/orders/7/", true},

		{"/settings", false, "/settings//", false},
		{"/settings", false, "/settings/x", false},
		{"/settings", false, "/settingsx/", false},
		{"/orders/{id}", false, "/orders/", false},
		{"/orders/{id}", false, "/orders//", false},
		{"/orders/{id}", false, "/orders/7/x", false},
		{"/orders/{id}/items", false, "/orders/7/items/", true},
		{"/", false, "/", true},
		{"/", false, "//", false},

		// Written with a trailing slash: the same pattern.
		{"/settings/", false, "/settings", true},
		{"/settings/", false, "/settings/", true},
		{"/settings/", false, "/settings//", false},
		{"/orders/{id}/", false, "/orders/7", true},
		{"/orders/{id}/", false, "/orders/7/", true},
		{"/api/**/", false, "/api", true},
		{"/api/**/", false, "/api/x/y/", true},

		// Strict: the slash counts, as written.
		{"/settings", true, "/settings", true},
		{"/settings", true, "/settings/", false},
		{"/settings/", true, "/settings/", true},
		{"/settings/", true, "/settings", false},
		{"/orders/{id}", true, "/orders/7", true},
		{"/orders/{id}", true, "/orders/7/", false},
		{"/orders/{id}/", true, "/orders/7/", true},
		{"/orders/{id}/", true, "/orders/7", false},
		{"/", true, "/", true},
		{"/", true, "//", false},
		// Strict means nothing to patterns that cover a subtree.
		{"/api/**", true, "/api", true},
		{"/api/**", true, "/api/", true},
		{"/files/{p...}", true, "/files/", true},
	}
	for _, tt := range tests {
		p := mustCompile(t, authz.Config{Rules: []authz.Rule{{Path: tt.pattern, StrictTrailingSlash: tt.strict, Require: authz.PermitAll()}}})
		if _, rule := p.Match("GET", tt.path); (rule == 0) != tt.want {
			t.Errorf("pattern %q (strict %v): Match(GET, %q) matched = %v; want %v", tt.pattern, tt.strict, tt.path, rule == 0, tt.want)
		}
	}
}

// TestTrailingSlashFallsThrough shows what the strict opt-out risks: /x/
// goes to the next rule that matches it.
func TestTrailingSlashFallsThrough(t *testing.T) {
	rules := func(strict bool) authz.Config {
		return authz.Config{Rules: []authz.Rule{
			{Path: "/settings", StrictTrailingSlash: strict, Require: authz.Role("admin")},
			{Path: "/**", Require: authz.Authenticated()},
		}}
	}
	if _, rule := mustCompile(t, rules(false)).Match("GET", "/settings/"); rule != 0 {
		t.Errorf("Match(GET, /settings/) rule = %d; want 0, the rule for /settings", rule)
	}
	if _, rule := mustCompile(t, rules(true)).Match("GET", "/settings/"); rule != 1 {
		t.Errorf("strict: Match(GET, /settings/) rule = %d; want 1", rule)
	}
}

// TestTrailingSlashOrder pins down that the first rule covering /x/
// decides it, now that /x covers /x/.
func TestTrailingSlashOrder(t *testing.T) {
	p := mustCompile(t, authz.Config{Rules: []authz.Rule{
		{Path: "/docs", Require: authz.PermitAll()},
		{Path: "/docs/**", Require: authz.Role("admin")},
	}})
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/docs", 0},
		{"/docs/", 0},
		{"/docs/x", 1},
	} {
		if _, rule := p.Match("GET", tt.path); rule != tt.want {
			t.Errorf("Match(GET, %q) rule = %d; want %d", tt.path, rule, tt.want)
		}
	}
}

func TestCaseInsensitivePaths(t *testing.T) {
	rules := []authz.Rule{
		{Path: "/admin/**", Require: authz.Role("admin")},
		{Path: "/orders/{id}/items", Require: authz.Scope("orders.read")},
		{Path: "/settings", Require: authz.Role("admin")},
		{Path: "/Mixed/Case", Require: authz.Role("admin")},
	}
	tests := []struct {
		path      string
		sensitive int // the rule that matches by default
		folded    int // the rule that matches with CaseInsensitivePaths
	}{
		// Issue #7 point 5.
		{"/ADMIN/x", -1, 0},
		{"/admin/x", 0, 0},
		{"/Admin", -1, 0},
		{"/aDmIn/", -1, 0},
		{"/ADMINX/x", -1, -1},
		{"/ORDERS/AbC/ITEMS", -1, 1},
		{"/orders/AbC/items/", 1, 1},
		{"/SETTINGS/", -1, 2},
		{"/settings", 2, 2},
		{"/mixed/case", -1, 3},
		{"/Mixed/Case", 3, 3},
		// The most lenient folding an upstream applies: the long s folds
		// to s (simple folding), the dotless ı to i (Java's
		// equalsIgnoreCase, .NET's OrdinalIgnoreCase upper-case the
		// letter first). Matching more is the safe side.
		{"/\u017fettings", -1, 2},
		{"/admın/x", -1, 0},
		{"/ADMİN/x", -1, 0}, // İ lower-cases to i in Go and in Java
	}
	for _, tt := range tests {
		for _, fold := range []bool{false, true} {
			p := mustCompile(t, authz.Config{Rules: rules, CaseInsensitivePaths: fold})
			want := tt.sensitive
			if fold {
				want = tt.folded
			}
			if _, rule := p.Match("GET", tt.path); rule != want {
				t.Errorf("CaseInsensitivePaths %v: Match(GET, %q) rule = %d; want %d", fold, tt.path, rule, want)
			}
		}
	}
}

func TestMatchMethodCase(t *testing.T) {
	// Issue #7 point 3: alice's delete /orders/7 must meet the admin rule.
	p := mustCompile(t, authz.Config{
		Rules: []authz.Rule{
			{Path: "/orders/{id}", Methods: []string{"DELETE"}, Require: authz.Role("admin")},
			{Path: "/orders/{id}", Methods: []string{"GET"}, Require: authz.Scope("orders.read")},
		},
		Default: authz.Authenticated(),
	})
	tests := []struct {
		method, path string
		want         int
	}{
		{"DELETE", "/orders/7", 0},
		{"delete", "/orders/7", 0},
		{"Delete", "/orders/7", 0},
		{"dElEtE", "/orders/7", 0},
		{"delete", "/orders/7/", 0},
		{"get", "/orders/7", 1},
		{"head", "/orders/7", 1},
		{"Head", "/orders/7/", 1},
		{"DELET", "/orders/7", -1},
		{"DELETEX", "/orders/7", -1},
		{"DELETE ", "/orders/7", -1},
		{" DELETE", "/orders/7", -1},
		{"POST", "/orders/7", -1},
	}
	for _, tt := range tests {
		if _, got := p.Match(tt.method, tt.path); got != tt.want {
			t.Errorf("Match(%q, %q) rule = %d; want %d", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestSeamOptionsRoundTrip(t *testing.T) {
	in := authz.Config{
		Rules: []authz.Rule{
			{Path: "/a/", StrictTrailingSlash: true, Require: authz.PermitAll()},
			{Path: "/b", Require: authz.PermitAll()},
		},
		CaseInsensitivePaths: true,
	}
	r := mustCompile(t, in).Config()
	if !r.CaseInsensitivePaths || !r.Rules[0].StrictTrailingSlash || r.Rules[1].StrictTrailingSlash || r.Rules[0].Path != "/a/" {
		t.Errorf("Rules() = %+v; want the options and the paths as given", r)
	}
}

func TestParseYAMLSeamOptions(t *testing.T) {
	p, err := authz.ParseYAML([]byte(`
case_insensitive_paths: true
rules:
  - path: /settings/
    strict_trailing_slash: true
    require: {role: admin}
  - path: /orders/{id}
    methods: [delete]
    strict_trailing_slash: false
    require: {role: admin}
  - path: /**
    require: authenticated
`))
	if err != nil {
		t.Fatal(err)
	}
	r := p.Config()
	if !r.CaseInsensitivePaths || !r.Rules[0].StrictTrailingSlash || r.Rules[1].StrictTrailingSlash {
		t.Errorf("Rules() = %+v; want case_insensitive_paths and the first rule strict", r)
	}
	if !slices.Equal(r.Rules[1].Methods, []string{"DELETE"}) {
		t.Errorf("Rules().Rules[1].Methods = %q; want [DELETE]", r.Rules[1].Methods)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/SETTINGS/", 0},
		{"GET", "/settings", 2},
		{"Delete", "/Orders/7/", 1},
	} {
		if _, got := p.Match(tt.method, tt.path); got != tt.want {
			t.Errorf("Match(%q, %q) rule = %d; want %d", tt.method, tt.path, got, tt.want)
		}
	}

	c, err := decodeConfig("rules:\n  case_insensitive_paths: true\n  rules:\n    - {path: /admin/**, require: {role: admin}}\n")
	if err != nil || !c.Rules.CaseInsensitivePaths {
		t.Errorf("Decode(embedded case_insensitive_paths) = %+v, %v; want it set", c.Rules, err)
	}
}

func TestMatchSeamDoesNotAllocate(t *testing.T) {
	r := benchRules()
	r.CaseInsensitivePaths = true
	for _, fold := range []*authz.Policy{mustCompile(t, benchRules()), mustCompile(t, r)} {
		for _, req := range []struct{ method, path string }{
			{"delete", "/orders/42/items/7"},
			{"Get", "/ORDERS/42/"},
			{"GET", "/Admin/x"},
			{"patch", "/users/9/profile/"},
		} {
			if allocs := testing.AllocsPerRun(100, func() { fold.Match(req.method, req.path) }); allocs != 0 {
				t.Errorf("Match(%q, %q) allocates %v times; want 0", req.method, req.path, allocs)
			}
		}
	}
}

func BenchmarkMatchFold(b *testing.B) {
	r := benchRules()
	r.CaseInsensitivePaths = true
	p := mustCompile(b, r)
	for _, req := range []struct{ method, path string }{
		{"get", "/orders/42"},
		{"GET", "/Users/9/Profile"},
		{"GET", "/not/matched/by/anything"},
	} {
		b.Run(req.method+" "+req.path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Match(req.method, req.path)
			}
		})
	}
}
