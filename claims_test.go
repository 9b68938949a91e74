package keygate

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/jose"
)

func TestDecodeClaims(t *testing.T) {
	exp := number{1700000000, true}
	tests := []struct {
		name string
		in   string
		want claims
		err  string // substring; "" means success
	}{
		{"keycloak shape", `{"exp":1700000000,"iss":"https://kc/realms/a","aud":["orders-api","account"],"sub":"u1","typ":"Bearer",` +
			`"azp":"cli","sid":"s1","realm_access":{"roles":["user"]},"resource_access":{"orders-api":{"roles":["reader"]},"account":{"roles":[]}},` +
			`"scope":"openid email","preferred_username":"alice","email":"a@x","groups":["/staff"],"allowed-origins":["*"],"acr":"1"}`,
			claims{Exp: exp, Iss: "https://kc/realms/a", Aud: []string{"orders-api", "account"}, Sub: "u1", Typ: "Bearer", Azp: "cli", Sid: "s1",
				RealmRoles: []string{"user"}, ResourceAccess: map[string][]string{"orders-api": {"reader"}, "account": {}},
				Scope: "openid email", PreferredUsername: "alice", Email: "a@x", Groups: []string{"/staff"}}, ""},
		{"aud string", `{"aud":"api"}`, claims{Aud: []string{"api"}}, ""},
		{"nulls are absent", `{"aud":null,"exp":null,"iss":null,"realm_access":null,"resource_access":null,"groups":null,"cnf":null}`, claims{}, ""},
		{"escaped strings", `{"sub":"a\"b\u00e9\ud83d\ude00"}`, claims{Sub: "a\"bé😀"}, ""},
		{"cnf binding", `{"cnf":{"jkt":"x","x5t#S256":"y"}}`, claims{CnfJkt: true, CnfX5t: true}, ""},
		{"keys match exactly", `{"ISS":"evil","Exp":5}`, claims{}, ""},
		{"logout event", `{"events":{"urn:other":1,"http://schemas.openid.net/event/backchannel-logout":{}}}`, claims{LogoutEvent: true}, ""},
		{"logout event not an object", `{"events":{"http://schemas.openid.net/event/backchannel-logout":[]}}`, claims{LogoutEvent: true, LogoutEventBad: true}, ""},
		{"events as an array (early drafts)", `{"events":["http://schemas.openid.net/event/backchannel-logout"]}`, claims{}, ""},
		{"events of another kind", `{"events":{"http://schemas.openid.net/event/backchannel-logoutx":{}}}`, claims{}, ""},
		{"null events", `{"events":null}`, claims{}, ""},
		{"nonce", `{"nonce":"n"}`, claims{Nonce: true}, ""},
		{"null nonce", `{"nonce":null}`, claims{}, ""},
		{"duplicate logout event", `{"events":{"http://schemas.openid.net/event/backchannel-logout":{},"http://schemas.openid.net/event/backchannel-logout":{}}}`, claims{}, "duplicate event"},
		{"duplicate events", `{"events":{},"events":{}}`, claims{}, `duplicate claim "events"`},
		{"duplicate nonce", `{"nonce":"a","nonce":null}`, claims{}, `duplicate claim "nonce"`},
		{"duplicate iss", `{"iss":"a","iss":"b"}`, claims{}, `duplicate claim "iss"`},
		{"duplicate exp", `{"exp":1,"exp":2}`, claims{}, `duplicate claim "exp"`},
		{"duplicate client in resource_access", `{"resource_access":{"a":{"roles":[]},"a":{"roles":["x"]}}}`, claims{}, "duplicate client"},
		{"duplicate roles", `{"realm_access":{"roles":[],"roles":["admin"]}}`, claims{}, "duplicate member"},
		{"exp string", `{"exp":"1"}`, claims{}, `claim "exp"`},
		{"sub number", `{"sub":1}`, claims{}, `claim "sub"`},
		{"aud number", `{"aud":1}`, claims{}, "string or an array"},
		{"aud list of numbers", `{"aud":[1]}`, claims{}, `claim "aud"`},
		{"roles not list", `{"realm_access":{"roles":"admin"}}`, claims{}, `claim "realm_access"`},
		{"not an object", `["iss"]`, claims{}, "want an object"},
		{"trailing data", `{}{}`, claims{}, "data after"},
		{"huge exponent", `{"exp":1e400}`, claims{}, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeClaims(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("decodeClaims() error = %v; want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeClaims() = %v", err)
			}
			got.members = 0                // for the cache's cost estimate: see TestCacheCostEstimate
			got.arena = jose.StringArena{} // where the lists live
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decodeClaims() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// FuzzDecodeClaims checks decodeClaims against encoding/json: whatever it
// accepts is valid JSON, and each claim it reads has the value
// encoding/json finds under the exact same name.
func FuzzDecodeClaims(f *testing.F) {
	f.Add([]byte(`{"exp":1700000000,"aud":["a","b"],"iss":"i","realm_access":{"roles":["r"]},"resource_access":{"c":{"roles":["x"]}}}`))
	f.Add([]byte(`{"aud":"a","sub":"\u00e9","cnf":{"jkt":"k"},"groups":[],"nbf":1.5,"iat":-0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeClaims(string(data))
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var ref map[string]json.RawMessage
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json cannot read as an object: %v", data, err)
		}
		same := func(name string, got any) {
			raw, ok := ref[name]
			if !ok || string(raw) == "null" {
				if !reflect.ValueOf(got).IsZero() {
					t.Fatalf("%s = %v; absent in %q", name, got, data)
				}
				return
			}
			want := reflect.New(reflect.TypeOf(got))
			if err := json.Unmarshal(raw, want.Interface()); err != nil {
				t.Fatalf("%s accepted as %v, but encoding/json says %v", name, got, err)
			}
			if !reflect.DeepEqual(want.Elem().Interface(), got) {
				t.Fatalf("%s = %#v; encoding/json says %#v", name, got, want.Elem().Interface())
			}
		}
		same("iss", c.Iss)
		same("sub", c.Sub)
		same("typ", c.Typ)
		same("azp", c.Azp)
		same("scope", c.Scope)
		same("exp", c.Exp.ptr())
		same("nbf", c.Nbf.ptr())
		same("groups", c.Groups)
		same("roles", c.Roles)
		same("entitlements", c.Entitlements)
		if raw, ok := ref["aud"]; ok && len(raw) > 0 && raw[0] == '"' {
			var a string
			json.Unmarshal(raw, &a)
			if len(c.Aud) != 1 || c.Aud[0] != a {
				t.Fatalf("aud = %q; encoding/json says %q", c.Aud, a)
			}
		} else {
			same("aud", c.Aud)
		}
	})
}

// ptr returns n as encoding/json would decode it into a *float64.
func (n number) ptr() *float64 {
	if !n.set {
		return nil
	}
	return &n.v
}

func TestClaimMapping(t *testing.T) {
	realm := []string{"user"}
	tests := []struct {
		name  string
		a     ClaimMapping
		roles []string
		auths []string
	}{
		{"defaults", ClaimMapping{}, []string{"user"}, []string{"SCOPE_read", "ROLE_user"}},
		{"client roles merged", ClaimMapping{RoleClients: []string{"api"}}, []string{"user", "writer"}, []string{"SCOPE_read", "ROLE_user", "ROLE_writer"}},
		{"custom prefixes", ClaimMapping{ScopePrefix: "scope:", RolePrefix: "role:"}, []string{"user"}, []string{"scope:read", "role:user"}},
		{"no realm roles", ClaimMapping{NoRealmRoles: true, RoleClients: []string{"other"}}, []string{"root"}, []string{"SCOPE_read", "ROLE_root"}},
		{"RFC 9068 roles added", ClaimMapping{RFC9068Roles: true}, []string{"user", "auditor"}, []string{"SCOPE_read", "ROLE_user", "ROLE_auditor"}},
		{"RFC 9068 roles only", ClaimMapping{RFC9068Roles: true, NoRealmRoles: true}, []string{"user", "auditor"}, []string{"SCOPE_read", "ROLE_user", "ROLE_auditor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &Principal{
				RealmRoles:  realm,
				RolesClaim:  []string{"user", "auditor"},
				ClientRoles: map[string][]string{"api": {"writer", "user"}, "other": {"root"}},
				Scopes:      []string{"read"},
			}
			tt.a.withDefaults().derive(q)
			if !reflect.DeepEqual(q.Roles, tt.roles) || !reflect.DeepEqual(q.Authorities(), tt.auths) {
				t.Errorf("Roles = %v, Authorities() = %v; want %v, %v", q.Roles, q.Authorities(), tt.roles, tt.auths)
			}
			for _, a := range tt.auths {
				if !q.HasAuthority(a) {
					t.Errorf("HasAuthority(%q) = false", a)
				}
			}
			if q.HasAuthority("ROLE_nope") || q.HasAuthority("read") {
				t.Error("HasAuthority of an authority not held = true")
			}
		})
	}
	if realm[0] != "user" || len(realm) != 1 || cap(realm) != 1 {
		t.Error("derive modified the realm roles slice")
	}
}

// jsonClaims is the encoding/json form of the claims keygate reads, kept
// to measure the decoder against (ARCHITECTURE.md).
type jsonClaims struct {
	// Every name is tagged: encoding/json/v2 matches names exactly.
	Iss               string                              `json:"iss"`
	Sub               string                              `json:"sub"`
	Jti               string                              `json:"jti"`
	Typ               string                              `json:"typ"`
	Azp               string                              `json:"azp"`
	Sid               string                              `json:"sid"`
	Scope             string                              `json:"scope"`
	ClientID          string                              `json:"client_id"`
	PreferredUsername string                              `json:"preferred_username"`
	Email             string                              `json:"email"`
	Name              string                              `json:"name"`
	GivenName         string                              `json:"given_name"`
	FamilyName        string                              `json:"family_name"`
	Aud               json.RawMessage                     `json:"aud"`
	Exp               *float64                            `json:"exp"`
	Nbf               *float64                            `json:"nbf"`
	Iat               *float64                            `json:"iat"`
	RealmAccess       struct{ Roles []string }            `json:"realm_access"`
	ResourceAccess    map[string]struct{ Roles []string } `json:"resource_access"`
	Groups            []string                            `json:"groups"`
	Roles             []string                            `json:"roles"`
	Entitlements      []string                            `json:"entitlements"`
	Cnf               map[string]json.RawMessage          `json:"cnf"`
}

// BenchmarkDecodeClaims compares keygate's claims decoder with
// encoding/json on the payload of a Keycloak 26 password-grant token.
func BenchmarkDecodeClaims(b *testing.B) {
	payload := []byte(`{"exp":1763850000,"iat":1763849700,"jti":"onrtac:5d8e3f6a-9a55-4a8e-bb0a-7c0f4c3c1e11",` +
		`"iss":"http://127.0.0.1:18080/realms/keygate","aud":["orders-api","account"],"sub":"0b9a4a52-6f1e-4b8b-9f44-3e2d1f0c7a10",` +
		`"typ":"Bearer","azp":"orders-cli","sid":"2f6d1c0e-8b7a-4c55-a1f2-9e3d4c5b6a70","acr":"1",` +
		`"allowed-origins":["/*"],"realm_access":{"roles":["default-roles-keygate","offline_access","uma_authorization","user"]},` +
		`"resource_access":{"orders-api":{"roles":["reader"]},"account":{"roles":["manage-account","manage-account-links","view-profile"]}},` +
		`"scope":"openid email profile","email_verified":true,"name":"Alice Liddell","preferred_username":"alice",` +
		`"given_name":"Alice","family_name":"Liddell","email":"alice@example.com"}`)
	b.Run("keygate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeClaims(string(payload)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c jsonClaims
			if err := json.Unmarshal(payload, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	// With GOEXPERIMENT=jsonv2, encoding/json above runs on the v2
	// implementation, and v2's own API is measured here.
	if unmarshal := unmarshalV2(); unmarshal != nil {
		b.Run("encoding-json-v2", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var c jsonClaims
				if err := unmarshal(payload, &c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestServiceAccount(t *testing.T) {
	tests := []struct {
		name string
		p    *Principal
		want bool
	}{
		{"Keycloak service account", &Principal{Subject: "6c1d", Username: "service-account-worker", Client: "worker"}, true},
		{"RFC 9068: sub is the client", &Principal{Subject: "worker", Client: "worker"}, true},
		{"user", &Principal{Subject: "6c1d", Username: "alice", Client: "web"}, false},
		{"user named like the client", &Principal{Subject: "6c1d", Username: "worker", Client: "worker"}, false},
		{"empty", &Principal{}, false},
	}
	for _, tt := range tests {
		if got := tt.p.ServiceAccount(); got != tt.want {
			t.Errorf("%s: ServiceAccount() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

// A Principal built as a literal (in a handler's tests) has no claims
// beyond its fields: Claim reports absence instead of a decoding error.
func TestClaimOfLiteralPrincipal(t *testing.T) {
	var v string
	ok, err := (&Principal{Subject: "alice"}).Claim("tenant", &v)
	if ok || err != nil {
		t.Errorf("Claim on a literal Principal = %v, %v; want false, nil", ok, err)
	}
}

// A Principal can be copied, as tests that tweak one do: it holds no lock
// (go vet's copylocks would flag this function otherwise).
func TestPrincipalCopy(t *testing.T) {
	p := Principal{Subject: "alice", Roles: []string{"user"}}
	q := p
	q.Roles = []string{"admin"}
	if ok, err := q.Claim("tenant", new(string)); ok || err != nil || p.Roles[0] != "user" {
		t.Errorf("Claim on a copied literal = %v, %v", ok, err)
	}
}

// TestPrincipalListsDisjoint checks that the lists of a Principal, which
// share backing arrays (see jose.StringArena), behave as separate
// slices: a caller that appends to one or writes to its elements, against
// the Principal's documentation, changes no other list.
func TestPrincipalListsDisjoint(t *testing.T) {
	payload := `{"aud":["a1","a2"],"realm_access":{"roles":["r1","r2"]},"resource_access":{"api":{"roles":["c1"]},"web":{"roles":["w1","w2"]}},` +
		`"groups":["g1"],"roles":["x1","x2"],"entitlements":["e1"],"scope":"s1 s2 s3"}`
	c, err := decodeClaims(payload)
	if err != nil {
		t.Fatal(err)
	}
	p := c.principal(payload, ClaimMapping{RoleClients: []string{"api"}, RFC9068Roles: true}.withDefaults())
	lists := []*[]string{&p.Audience, &p.RealmRoles, &p.Scopes, &p.RolesClaim, &p.Groups, &p.Entitlements, &p.Roles}
	for _, c := range []string{"api", "web"} {
		l := p.ClientRoles[c]
		lists = append(lists, &l)
	}
	want := [][]string{{"a1", "a2"}, {"r1", "r2"}, {"s1", "s2", "s3"}, {"x1", "x2"}, {"g1"}, {"e1"}, {"r1", "r2", "c1", "x1", "x2"}, {"c1"}, {"w1", "w2"}}
	for i, l := range lists {
		// Roles (6) is built by append, in an array of its own.
		if !slices.Equal(*l, want[i]) || i != 6 && cap(*l) != len(*l) {
			t.Fatalf("list %d = %q (cap %d); want %q with cap = len", i, *l, cap(*l), want[i])
		}
	}
	for i, l := range lists {
		saved, first := *l, (*l)[0]
		*l = append(*l, "appended")
		(*l)[0] = "written"
		saved[0] = "written"
		for j, m := range lists {
			if j != i && !slices.Equal(*m, want[j]) {
				t.Fatalf("after changing list %d, list %d = %q; want %q", i, j, *m, want[j])
			}
		}
		saved[0] = first
		*l = saved
	}
}
