package authz

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate"
)

// op is the kind of a [Requirement]. Its zero value denies.
type op uint8

const (
	opDeny op = iota
	opPermitAll
	opAuthenticated
	opRole
	opAnyRole
	opClientRole
	opScope
	opAuthority
	opClaimEquals
	opClaimContains
	opAllOf
	opAnyOf
)

// Requirement is what a caller must satisfy to be let through, like the
// argument of Spring's access(...): a role, a scope, a claim, or a
// combination of them. Build one with the functions of this package or
// read one from YAML (see the package documentation).
//
// The zero Requirement denies everyone, as [DenyAll] does. A Requirement
// is immutable once built and safe for concurrent use.
type Requirement struct {
	op    op
	args  []string      // the names the op checks, see the constructors
	value any           // ClaimEquals: the value, normalised as JSON decodes it
	subs  []Requirement // AllOf, AnyOf
	err   error         // ClaimEquals: why value cannot be compared
}

// PermitAll lets everyone through, anonymous callers included: the
// route needs no token. It is Spring's permitAll().
func PermitAll() Requirement { return Requirement{op: opPermitAll} }

// Authenticated lets through any caller with a verified token. It is
// Spring's authenticated().
func Authenticated() Requirement { return Requirement{op: opAuthenticated} }

// DenyAll lets no one through. It is the zero Requirement.
func DenyAll() Requirement { return Requirement{} }

// Role requires [keygate.Principal.HasRole]: a realm role, or a client
// role of a client named in [keygate.ClaimMapping.RoleClients]. It is
// Spring's hasRole("role").
func Role(role string) Requirement { return Requirement{op: opRole, args: []string{role}} }

// AnyRole requires at least one of roles, as [keygate.Principal.HasAnyRole]
// checks. With no roles it denies everyone.
func AnyRole(roles ...string) Requirement {
	return Requirement{op: opAnyRole, args: slices.Clone(roles)}
}

// ClientRole requires role among resource_access.<client>.roles, as
// [keygate.Principal.HasClientRole] checks.
func ClientRole(client, role string) Requirement {
	return Requirement{op: opClientRole, args: []string{client, role}}
}

// Scope requires scope in the token's scope claim, as
// [keygate.Principal.HasScope] checks. Policies report the scopes of a
// refused requirement (see [Requirement.Scopes]) so that the caller can be
// told which scope to ask for.
func Scope(scope string) Requirement { return Requirement{op: opScope, args: []string{scope}} }

// Authority requires one of the principal's Spring-style authorities,
// such as "ROLE_admin" or "SCOPE_orders.read", as
// [keygate.Principal.HasAuthority] checks.
func Authority(authority string) Requirement {
	return Requirement{op: opAuthority, args: []string{authority}}
}

// ClaimEquals requires the token's claim name to equal value, compared as
// JSON values: the claim is decoded as encoding/json decodes into an any,
// and value is normalised the same way, so that every Go number compares
// as a float64 (3 equals the claim 3.0), strings and booleans compare as
// themselves, nil equals a JSON null, and slices, maps and structs
// compare with the arrays and objects they marshal to. A missing claim is
// never equal.
//
// A value that encoding/json cannot marshal, such as a func or NaN, makes
// a requirement that denies everyone and that [Compile] rejects.
func ClaimEquals(name string, value any) Requirement {
	v, err := normalize(value)
	return Requirement{op: opClaimEquals, args: []string{name}, value: v, err: err}
}

// ClaimContains requires the token's claim name to hold value: as an
// element of a JSON array, or as a JSON string equal to value or listing
// it among space-separated words (as the scope claim does). Other JSON
// types, and a missing claim, never hold it.
func ClaimContains(name, value string) Requirement {
	return Requirement{op: opClaimContains, args: []string{name, value}}
}

// AllOf requires every one of reqs. With no requirements it denies
// everyone, rather than being vacuously true, and [Compile] rejects it.
func AllOf(reqs ...Requirement) Requirement {
	return Requirement{op: opAllOf, subs: slices.Clone(reqs)}
}

// AnyOf requires at least one of reqs. With no requirements it denies
// everyone, and [Compile] rejects it.
func AnyOf(reqs ...Requirement) Requirement {
	return Requirement{op: opAnyOf, subs: slices.Clone(reqs)}
}

// Allows reports whether p satisfies r. A nil p is an anonymous caller,
// with no token: only [PermitAll] allows it, alone or as an alternative
// that [AnyOf] offers.
//
// Allows does not allocate, except for claim requirements, which decode
// their claim on every call.
func (r Requirement) Allows(p *keygate.Principal) bool {
	switch r.op {
	case opPermitAll:
		return true
	case opAllOf:
		if len(r.subs) == 0 {
			return false
		}
		for _, s := range r.subs {
			if !s.Allows(p) {
				return false
			}
		}
		return true
	case opAnyOf:
		for _, s := range r.subs {
			if s.Allows(p) {
				return true
			}
		}
		return false
	}
	if p == nil {
		return false
	}
	switch r.op {
	case opAuthenticated:
		return true
	case opRole:
		return p.HasRole(r.args[0])
	case opAnyRole:
		return p.HasAnyRole(r.args...)
	case opClientRole:
		return p.HasClientRole(r.args[0], r.args[1])
	case opScope:
		return p.HasScope(r.args[0])
	case opAuthority:
		return p.HasAuthority(r.args[0])
	case opClaimEquals:
		return r.err == nil && claimEquals(p, r.args[0], r.value)
	case opClaimContains:
		return claimContains(p, r.args[0], r.args[1])
	}
	return false
}

// Public reports whether r lets anonymous callers through, so that a
// request needs no token: r is [PermitAll], an [AnyOf] holding one, or an
// [AllOf] of nothing else. It is r.Allows(nil).
func (r Requirement) Public() bool { return r.Allows(nil) }

// Scopes returns the scopes r names, in order and without duplicates, or
// nil when it names none. A refused caller can be told them, as the
// scope attribute of an RFC 6750 insufficient_scope error.
func (r Requirement) Scopes() []string {
	var scopes []string
	r.walk(func(q Requirement) {
		if q.op == opScope && !slices.Contains(scopes, q.args[0]) {
			scopes = append(scopes, q.args[0])
		}
	})
	return scopes
}

// walk calls f for r and every requirement r holds, depth first.
func (r Requirement) walk(f func(Requirement)) {
	f(r)
	for _, s := range r.subs {
		s.walk(f)
	}
}

// String returns r in the notation of Spring's access expressions, such
// as `permitAll`, `hasRole("admin")` or
// `allOf(hasScope("orders.write"), anyOf(hasRole("admin"), hasClientRole("orders-api", "writer")))`.
func (r Requirement) String() string {
	var b strings.Builder
	r.format(&b)
	return b.String()
}

func (r Requirement) format(b *strings.Builder) {
	name, list := "", false
	switch r.op {
	case opDeny:
		b.WriteString("denyAll")
		return
	case opPermitAll:
		b.WriteString("permitAll")
		return
	case opAuthenticated:
		b.WriteString("authenticated")
		return
	case opRole:
		name = "hasRole"
	case opAnyRole:
		name = "hasAnyRole"
	case opClientRole:
		name = "hasClientRole"
	case opScope:
		name = "hasScope"
	case opAuthority:
		name = "hasAuthority"
	case opClaimEquals:
		name = "claimEquals"
	case opClaimContains:
		name = "claimContains"
	case opAllOf:
		name, list = "allOf", true
	case opAnyOf:
		name, list = "anyOf", true
	default:
		fmt.Fprintf(b, "requirement(%d)", r.op)
		return
	}
	b.WriteString(name)
	b.WriteByte('(')
	if list {
		for i, s := range r.subs {
			if i > 0 {
				b.WriteString(", ")
			}
			s.format(b)
		}
	} else {
		for i, a := range r.args {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(a))
		}
	}
	if r.op == opClaimEquals {
		b.WriteString(", ")
		b.WriteString(formatValue(r.value, r.err))
	}
	b.WriteByte(')')
}

// formatValue writes a ClaimEquals value: strings Go-quoted like the
// names, anything else as JSON.
func formatValue(v any, err error) string {
	if err != nil {
		return "<invalid>"
	}
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return "<invalid>"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// validate reports what makes r unusable in a policy: a name left empty,
// an empty AllOf, AnyOf or AnyRole, a ClaimEquals value that is not JSON.
func (r Requirement) validate() error {
	var err error
	r.walk(func(q Requirement) {
		if err == nil {
			err = q.check()
		}
	})
	return err
}

func (r Requirement) check() error {
	switch r.op {
	case opDeny, opPermitAll, opAuthenticated:
		return nil
	case opRole, opAnyRole:
		if len(r.args) == 0 || r.op == opRole && r.args[0] == "" {
			return fmt.Errorf("%s names no role", r)
		}
		if slices.Contains(r.args, "") {
			return fmt.Errorf("%s names an empty role", r)
		}
	case opClientRole:
		if r.args[0] == "" {
			return fmt.Errorf("%s names no client", r)
		}
		if r.args[1] == "" {
			return fmt.Errorf("%s names no role", r)
		}
	case opScope:
		if r.args[0] == "" {
			return fmt.Errorf("%s names no scope", r)
		}
	case opAuthority:
		if r.args[0] == "" {
			return fmt.Errorf("%s names no authority", r)
		}
	case opClaimEquals:
		if r.args[0] == "" {
			return fmt.Errorf("%s names no claim", r)
		}
		if r.err != nil {
			return fmt.Errorf("claimEquals(%q): %w", r.args[0], r.err)
		}
	case opClaimContains:
		if r.args[0] == "" {
			return fmt.Errorf("%s names no claim", r)
		}
		if r.args[1] == "" {
			return fmt.Errorf("%s looks for an empty value", r)
		}
	case opAllOf, opAnyOf:
		if len(r.subs) == 0 {
			return fmt.Errorf("%s holds no requirement", r)
		}
	default:
		return fmt.Errorf("unknown requirement kind %d", r.op)
	}
	return nil
}

// normalize returns v as encoding/json would decode its JSON form into an
// any: numbers become float64, slices []any, maps and structs
// map[string]any.
func normalize(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool:
		return v, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("value has no JSON form: %w", err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("value has no JSON form: %w", err)
	}
	return out, nil
}

func claimEquals(p *keygate.Principal, name string, want any) bool {
	var got any
	if ok, err := p.Claim(name, &got); !ok || err != nil {
		return false
	}
	switch want.(type) {
	case nil, string, bool, float64:
		return got == want
	}
	return reflect.DeepEqual(got, want)
}

func claimContains(p *keygate.Principal, name, want string) bool {
	var got any
	if ok, err := p.Claim(name, &got); !ok || err != nil {
		return false
	}
	switch got := got.(type) {
	case []any:
		for _, e := range got {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	case string:
		if got == want {
			return true
		}
		for f := range strings.FieldsSeq(got) {
			if f == want {
				return true
			}
		}
	}
	return false
}
