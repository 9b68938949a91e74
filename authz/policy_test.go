package authz_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/authz"
)

// mustCompile compiles r or fails the test.
func mustCompile(t testing.TB, r authz.Config) *authz.Policy {
	t.Helper()
	p, err := authz.Compile(r)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		want    bool
	}{
		{"/", "/", true},
		{"/", "/a", false},
		{"/", "//", false},
		{"/health", "/health", true},
		{"/health", "/health/", true}, // a trailing slash is ignored
		{"/health", "/health//", false},
		{"/health", "/healthz", false},
		{"/health", "/health/x", false},
		{"/health", "/Health", false},
		{"/health", "/", false},
		{"/health", "health", false},
		{"/health", "", false},
		{"/a/b/c", "/a/b/c", true},
		{"/a/b/c", "/a/b", false},
		{"/a/b/c", "/a/b/c/d", false},
		{"/a/b/c", "/a/x/c", false},

		{"/api/**", "/api", true},
		{"/api/**", "/api/", true},
		{"/api/**", "/api/v1", true},
		{"/api/**", "/api/v1/orders/42", true},
		{"/api/**", "/api/v1/", true},
		{"/api/**", "/apix", false},
		{"/api/**", "/apix/y", false},
		{"/api/**", "/ap", false},
		{"/api/**", "/", false},
		{"/api/**", "/v1/api", false},
		{"/**", "/", true},
		{"/**", "/anything/at/all", true},
		{"/**", "/trailing/", true},
		{"/**", "", false},
		{"/**", "*", false},

		{"/orders/{id}", "/orders/42", true},
		{"/orders/{id}", "/orders/a.b-c", true},
		{"/orders/{id}", "/orders/", false},
		{"/orders/{id}", "/orders", false},
		{"/orders/{id}", "/orders/42/", true},
		{"/orders/{id}", "/orders/42//", false},
		{"/orders/{id}", "/orders/42/items", false},
		{"/orders/{id}", "/ordersx/42", false},
		{"/{a}/{b}", "/x/y", true},
		{"/{a}/{b}", "/x", false},
		{"/{a}/{b}", "/x/", false},

		{"/files/{path...}", "/files", true},
		{"/files/{path...}", "/files/", true},
		{"/files/{path...}", "/files/a", true},
		{"/files/{path...}", "/files/a/b/c.txt", true},
		{"/files/{path...}", "/filesx", false},
		{"/files/{path...}", "/file", false},
		{"/{rest...}", "/", true},
		{"/{rest...}", "/a/b", true},

		{"/orders/{id}/items/**", "/orders/42/items", true},
		{"/orders/{id}/items/**", "/orders/42/items/", true},
		{"/orders/{id}/items/**", "/orders/42/items/7", true},
		{"/orders/{id}/items/**", "/orders/42/itemsx", false},
		{"/orders/{id}/items/**", "/orders//items", false},
		{"/orders/{id}/items/**", "/orders/42", false},
		{"/orders/{id}/items/{item}", "/orders/42/items/7", true},
		{"/orders/{id}/items/{item}", "/orders/42/items/", false},
		{"/users/{id}/{rest...}", "/users/9", true},
		{"/users/{id}/{rest...}", "/users/", false},
		{"/é/{x}", "/é/1", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.path, func(t *testing.T) {
			p := mustCompile(t, authz.Config{Rules: []authz.Rule{{Path: tt.pattern, Require: authz.PermitAll()}}})
			_, rule := p.Match("GET", tt.path)
			if got := rule == 0; got != tt.want {
				t.Errorf("pattern %q: Match(GET, %q) matched = %v; want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestMatchMethods(t *testing.T) {
	p := mustCompile(t, authz.Config{Rules: []authz.Rule{
		{Methods: []string{"get"}, Path: "/r", Require: authz.Scope("read")},
		{Methods: []string{"POST", "put", "POST"}, Path: "/r", Require: authz.Scope("write")},
		{Methods: []string{"HEAD"}, Path: "/h", Require: authz.Scope("head")},
		{Methods: []string{"GET"}, Path: "/h", Require: authz.Scope("get")},
		{Path: "/r", Require: authz.Role("admin")},
	}})
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/r", 0},
		{"HEAD", "/r", 0},
		{"", "/r", 0},
		{"POST", "/r", 1},
		{"PUT", "/r", 1},
		{"DELETE", "/r", 4},
		{"PATCH", "/r", 4},
		{"OPTIONS", "/r", 4},
		{"get", "/r", 0},
		{"Head", "/r", 0},
		{"put", "/r", 1},
		{"pUt", "/r", 1},
		{"GET ", "/r", 4},
		{"GETS", "/r", 4},
		{"BREW", "/r", 4},
		{"HEAD", "/h", 2},
		{"GET", "/h", 3},
		{"POST", "/h", -1},
		{"GET", "/x", -1},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			if _, got := p.Match(tt.method, tt.path); got != tt.want {
				t.Errorf("Match(%q, %q) rule = %d; want %d", tt.method, tt.path, got, tt.want)
			}
		})
	}
	if got := p.Config().Rules[1].Methods; !slices.Equal(got, []string{"POST", "PUT"}) {
		t.Errorf("Rules().Rules[1].Methods = %q; want [POST PUT]", got)
	}
	if got := p.Config().Rules[0].Methods; !slices.Equal(got, []string{"GET"}) {
		t.Errorf("Rules().Rules[0].Methods = %q; want [GET] (HEAD is implied, not added)", got)
	}
}

func TestMatchFirstWins(t *testing.T) {
	p := mustCompile(t, authz.Config{Rules: []authz.Rule{
		{Path: "/admin/public", Require: authz.PermitAll()},
		{Path: "/admin/**", Require: authz.Role("admin")},
		{Path: "/admin/reports", Require: authz.Role("reporter")}, // shadowed
		{Path: "/**", Require: authz.Authenticated()},
		{Path: "/never", Require: authz.PermitAll()}, // shadowed
	}})
	tests := []struct {
		path     string
		wantRule int
		wantReq  string
	}{
		{"/admin/public", 0, "permitAll"},
		{"/admin/public/x", 1, `hasRole("admin")`},
		{"/admin", 1, `hasRole("admin")`},
		{"/admin/reports", 1, `hasRole("admin")`},
		{"/never", 3, "authenticated"},
		{"/", 3, "authenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req, rule := p.Match("GET", tt.path)
			if rule != tt.wantRule || req.String() != tt.wantReq {
				t.Errorf("Match(GET, %q) = %s, %d; want %s, %d", tt.path, req, rule, tt.wantReq, tt.wantRule)
			}
		})
	}
}

func TestMatchDefault(t *testing.T) {
	rules := []authz.Rule{{Path: "/public/**", Require: authz.PermitAll()}}
	tests := []struct {
		name string
		r    authz.Config
		want string
	}{
		{"zero", authz.Config{Rules: rules}, "denyAll"},
		{"deny", authz.Config{Rules: rules, Default: authz.DenyAll()}, "denyAll"},
		{"authenticated", authz.Config{Rules: rules, Default: authz.Authenticated()}, "authenticated"},
		{"scope", authz.Config{Rules: rules, Default: authz.Scope("api")}, `hasScope("api")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustCompile(t, tt.r)
			req, rule := p.Match("GET", "/private")
			if rule != -1 || req.String() != tt.want {
				t.Errorf("Match(GET, /private) = %s, %d; want %s, -1", req, rule, tt.want)
			}
			if req, rule := p.Match("GET", "/public/x"); rule != 0 || !req.Public() {
				t.Errorf("Match(GET, /public/x) = %s, %d; want permitAll, 0", req, rule)
			}
		})
	}
}

func TestNilPolicy(t *testing.T) {
	var p *authz.Policy
	req, rule := p.Match("GET", "/")
	if rule != -1 || req.Allows(admin) {
		t.Errorf("(*Policy)(nil).Match(GET, /) = %s, %d; want denyAll, -1", req, rule)
	}
	if r := p.Config(); len(r.Rules) != 0 {
		t.Errorf("(*Policy)(nil).Rules() = %v; want none", r)
	}
}

func TestPolicyRulesIsACopy(t *testing.T) {
	methods := []string{"get"}
	in := authz.Config{Rules: []authz.Rule{{Methods: methods, Path: "/a", Require: authz.Role("admin")}}, Default: authz.Authenticated()}
	p := mustCompile(t, in)
	methods[0] = "DELETE"
	in.Rules[0].Path = "/b"

	r := p.Config()
	if got := r.Rules[0]; got.Path != "/a" || !slices.Equal(got.Methods, []string{"GET"}) || got.Require.String() != `hasRole("admin")` {
		t.Errorf("Rules().Rules[0] = %+v; want GET /a hasRole(admin)", got)
	}
	if r.Default.String() != "authenticated" {
		t.Errorf("Rules().Default = %s; want authenticated", r.Default)
	}
	r.Rules[0].Methods[0] = "PUT"
	r.Rules[0].Path = "/c"
	if got := p.Config().Rules[0]; got.Path != "/a" || got.Methods[0] != "GET" {
		t.Errorf("Rules().Rules[0] = %+v after changing an earlier result; want GET /a", got)
	}
	if _, rule := p.Match("GET", "/a"); rule != 0 {
		t.Errorf("Match(GET, /a) rule = %d after changing the source rules; want 0", rule)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		rule authz.Rule
		want string
	}{
		{"empty path", authz.Rule{Path: ""}, `path "" is empty`},
		{"relative", authz.Rule{Path: "api/**"}, `path "api/**" must start with "/"`},
		{"method in path", authz.Rule{Path: "GET /api"}, `put the method "GET" in the rule's methods`},
		{"host in path", authz.Rule{Path: "example.com/api"}, `must start with "/"`},
		{"two trailing slashes", authz.Rule{Path: "/api//"}, `empty segment`},
		{"only slashes", authz.Rule{Path: "//"}, `empty segment`},
		{"double slash", authz.Rule{Path: "/a//b"}, `empty segment`},
		{"dot", authz.Rule{Path: "/a/./b"}, `"." segment`},
		{"dotdot", authz.Rule{Path: "/a/../b"}, `".." segment`},
		{"star", authz.Rule{Path: "/api/*"}, `"*" in segment "*"`},
		{"star in segment", authz.Rule{Path: "/api/v*"}, `"*" in segment "v*"`},
		{"triple star", authz.Rule{Path: "/api/***"}, `"*" in segment "***"`},
		{"doublestar not last", authz.Rule{Path: "/api/**/x"}, `"**" before its last segment`},
		{"doublestar glued", authz.Rule{Path: "/api**"}, `"*" in segment "api**"`},
		{"empty wildcard", authz.Rule{Path: "/a/{}"}, `wildcard with no name, "{}"`},
		{"empty rest", authz.Rule{Path: "/a/{...}"}, `wildcard with no name, "{...}"`},
		{"unclosed", authz.Rule{Path: "/a/{id"}, `unclosed "{" in segment "{id"`},
		{"unopened", authz.Rule{Path: "/a/id}"}, `segment "id}"; a wildcard must be the whole segment`},
		{"partial wildcard", authz.Rule{Path: "/a/x{id}"}, `segment "x{id}"; a wildcard must be the whole segment`},
		{"suffix after wildcard", authz.Rule{Path: "/a/{id}x"}, `segment "{id}x"; a wildcard must be the whole segment`},
		{"rest not last", authz.Rule{Path: "/a/{p...}/b"}, `"{p...}" before its last segment`},
		{"bad name", authz.Rule{Path: "/a/{my-id}"}, `wildcard named "my-id"`},
		{"digit name", authz.Rule{Path: "/a/{1}"}, `wildcard named "1"`},
		{"dollar", authz.Rule{Path: "/a/{$}"}, `{$}, which is not needed`},
		{"duplicate name", authz.Rule{Path: "/{id}/x/{id}"}, `names the wildcard "id" twice`},
		{"empty method", authz.Rule{Path: "/a", Methods: []string{""}}, `empty method`},
		{"star method", authz.Rule{Path: "/a", Methods: []string{"*"}}, `leave methods out to cover every method`},
		{"any method", authz.Rule{Path: "/a", Methods: []string{"ANY"}}, `leave methods out`},
		{"method with space", authz.Rule{Path: "/a", Methods: []string{"GET "}}, `method "GET " is not a method: methods are letters only`},
		{"method with digit", authz.Rule{Path: "/a", Methods: []string{"GET2"}}, `letters only`},
		{"unknown method", authz.Rule{Path: "/a", Methods: []string{"GETT"}}, `unknown method "GETT"; did you mean "GET"?`},
		{"unknown method lower", authz.Rule{Path: "/a", Methods: []string{"delet"}}, `unknown method "delet"; did you mean "DELETE"?`},
		{"unknown method two guesses", authz.Rule{Path: "/a", Methods: []string{"pots"}}, `unknown method "pots"; did you mean "POST" or "PUT"?`},
		{"unknown method no guess", authz.Rule{Path: "/a", Methods: []string{"BREW"}}, `unknown method "BREW"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.Compile(authz.Config{Rules: []authz.Rule{
				{Path: "/ok", Require: authz.PermitAll()},
				{Path: "/ok", Require: authz.PermitAll()}, // duplicates are fine
				tt.rule,
			}})
			if err == nil || !strings.HasPrefix(err.Error(), "authz: rule 2") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile(%q %q) = %v; want an error about rule 2 containing %q", tt.rule.Methods, tt.rule.Path, err, tt.want)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	for _, r := range []authz.Rule{
		{Path: "/"},
		{Path: "/**"},
		{Path: "/{all...}"},
		{Path: "/a.b/c-d/e_f/~g/%41"},
		{Path: "/orders/{id}/items/**"},
		{Path: "/orders/{order_id}/items/{itemID2}"},
		{Path: "/a", Methods: []string{"get", "Head", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}},
		{Path: "/dav/**", Methods: []string{"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK"}},
		{Path: "/a", Methods: []string{}},
		{Path: "/api/"},
		{Path: "/api/", StrictTrailingSlash: true},
		{Path: "/orders/{id}/"},
		{Path: "/api/**/"},
		{Path: "/files/{p...}/"},
	} {
		if _, err := authz.Compile(authz.Config{Rules: []authz.Rule{r}}); err != nil {
			t.Errorf("Compile(%q %q) = %v; want nil", r.Methods, r.Path, err)
		}
	}
}

// benchRules is a realistic rule set, ending in a catch-all.
func benchRules() authz.Config {
	return authz.Config{
		Rules: []authz.Rule{
			{Path: "/health", Require: authz.PermitAll()},
			{Path: "/public/**", Require: authz.PermitAll()},
			{Methods: []string{"GET"}, Path: "/orders/{id}", Require: authz.Scope("orders.read")},
			{Methods: []string{"POST", "PUT", "DELETE"}, Path: "/orders/**", Require: authz.AllOf(authz.Scope("orders.write"), authz.Role("admin"))},
			{Path: "/orders/{id}/items/{item}", Require: authz.Scope("orders.read")},
			{Path: "/admin/**", Require: authz.Role("admin")},
			{Path: "/files/{path...}", Require: authz.Authenticated()},
			{Path: "/users/{id}/profile", Require: authz.AnyRole("staff", "admin")},
		},
		Default: authz.DenyAll(),
	}
}

// benchRequests are requests for benchRules, the last matched by none.
func benchRequests() []struct{ method, path string } {
	return []struct{ method, path string }{
		{"GET", "/health"},
		{"GET", "/orders/42"},
		{"DELETE", "/orders/42/items/7"},
		{"GET", "/orders/42/items/7"},
		{"GET", "/files/a/b/c.txt"},
		{"PATCH", "/users/9/profile"},
		{"GET", "/not/matched/by/anything"},
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	p := mustCompile(t, benchRules())
	for _, r := range benchRequests() {
		allocs := testing.AllocsPerRun(100, func() { p.Match(r.method, r.path) })
		if allocs != 0 {
			t.Errorf("Match(%q, %q) allocates %v times; want 0", r.method, r.path, allocs)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	p := mustCompile(b, benchRules())
	for _, r := range benchRequests() {
		b.Run(fmt.Sprintf("%s %s", r.method, r.path), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Match(r.method, r.path)
			}
		})
	}
}
