package keygate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Principal is the caller a verified access token speaks for, read from
// Keycloak's claims. Only tokens whose signature and claims checked out
// become a Principal.
//
// A Principal is shared by every request that presents the same token
// (see [Config.CacheSize]): it is safe for concurrent use and must be
// treated as read-only, slices and maps included.
type Principal struct {
	// Subject is the sub claim: the user's or service account's id.
	Subject string
	// Username is preferred_username. Keycloak names service accounts
	// "service-account-<client id>".
	Username string
	// Email, Name, GivenName and FamilyName are the profile claims, when
	// the token carries them.
	Email, Name, GivenName, FamilyName string
	// Client is the client the token was issued to: azp, or client_id for
	// RFC 9068 tokens without azp.
	Client string
	// SessionID is sid, the Keycloak session; empty for service accounts.
	SessionID string
	// ID is the jti claim.
	ID string
	// Issuer is iss; Audience is aud, always as a list.
	Issuer   string
	Audience []string
	// ExpiresAt, IssuedAt and NotBefore are exp, iat and nbf; the last two
	// are zero when absent.
	ExpiresAt, IssuedAt, NotBefore time.Time
	// RealmRoles are realm_access.roles.
	RealmRoles []string
	// ClientRoles are resource_access.<client>.roles, per client.
	ClientRoles map[string][]string
	// Scopes are the space-separated scope claim, split.
	Scopes []string
	// Groups is the groups claim, present when a group mapper adds it.
	Groups []string
	// Roles are the roles [Principal.HasRole] checks: the realm roles and
	// the client roles of the clients [Authorities.RoleClients] names.
	Roles []string

	scopePrefix, rolePrefix string // zero: "SCOPE_", "ROLE_"
	payload                 string
	once                    sync.Once
	claims                  map[string]json.RawMessage
	claimsErr               error
}

// ServiceAccount reports whether the token was issued to a client's
// service account (client_credentials grant). Keycloak reserves the
// username prefix "service-account-" for them.
func (p *Principal) ServiceAccount() bool {
	return strings.HasPrefix(p.Username, "service-account-")
}

// HasRole reports whether [Principal.Roles] holds role: a realm role, or
// a client role of one of the clients [Authorities.RoleClients] names.
// It is Spring's hasRole("x"), which checks the authority "ROLE_x".
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// HasAnyRole reports whether p holds at least one of roles (see HasRole).
func (p *Principal) HasAnyRole(roles ...string) bool {
	return slices.ContainsFunc(roles, p.HasRole)
}

// HasRealmRole reports whether realm_access.roles holds role.
func (p *Principal) HasRealmRole(role string) bool { return slices.Contains(p.RealmRoles, role) }

// HasClientRole reports whether resource_access.<client>.roles holds role.
func (p *Principal) HasClientRole(client, role string) bool {
	return slices.Contains(p.ClientRoles[client], role)
}

// HasScope reports whether the scope claim holds scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Authorities returns the Spring-style authorities of p, derived by the
// verifier's [Authorities] mapping: "SCOPE_x" for each scope and "ROLE_x"
// for each of [Principal.Roles]. It builds a new slice on each call.
func (p *Principal) Authorities() []string {
	sp, rp := p.prefixes()
	out := make([]string, 0, len(p.Scopes)+len(p.Roles))
	for _, s := range p.Scopes {
		out = append(out, sp+s)
	}
	for _, r := range p.Roles {
		out = append(out, rp+r)
	}
	return out
}

// HasAuthority reports whether [Principal.Authorities] holds authority,
// such as "ROLE_admin" or "SCOPE_orders.read", without building the list.
func (p *Principal) HasAuthority(authority string) bool {
	sp, rp := p.prefixes()
	if s, ok := strings.CutPrefix(authority, sp); ok && p.HasScope(s) {
		return true
	}
	r, ok := strings.CutPrefix(authority, rp)
	return ok && p.HasRole(r)
}

func (p *Principal) prefixes() (scope, role string) {
	scope, role = p.scopePrefix, p.rolePrefix
	if scope == "" {
		scope = "SCOPE_"
	}
	if role == "" {
		role = "ROLE_"
	}
	return scope, role
}

// Claim decodes the named claim into v, which must be a pointer, as
// json.Unmarshal would. It reports false when the token has no such claim.
func (p *Principal) Claim(name string, v any) (bool, error) {
	p.once.Do(func() {
		p.claimsErr = json.Unmarshal([]byte(p.payload), &p.claims)
	})
	if p.claimsErr != nil {
		return false, fmt.Errorf("keygate: decode claims: %w", p.claimsErr)
	}
	raw, ok := p.claims[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("keygate: decode claim %q: %w", name, err)
	}
	return true, nil
}

// Authorities configures how a [Principal]'s authorities are derived,
// like Spring Security's JwtGrantedAuthoritiesConverter with a Keycloak
// role converter. The zero value maps scopes to "SCOPE_x" and realm roles
// to "ROLE_x".
type Authorities struct {
	// ScopePrefix prefixes each scope. Zero means "SCOPE_".
	ScopePrefix string
	// RolePrefix prefixes each role. Zero means "ROLE_".
	RolePrefix string
	// RoleClients names clients whose client roles become role
	// authorities like realm roles, as Spring's Keycloak converters do for
	// the API's own client. Roles of other clients stay per client, in
	// [Principal.ClientRoles].
	RoleClients []string
	// NoRealmRoles leaves realm roles out of the authorities.
	NoRealmRoles bool
}

func (a Authorities) withDefaults() Authorities {
	if a.ScopePrefix == "" {
		a.ScopePrefix = "SCOPE_"
	}
	if a.RolePrefix == "" {
		a.RolePrefix = "ROLE_"
	}
	return a
}

// derive fills p.Roles and the prefixes of p's authorities.
func (a Authorities) derive(p *Principal) {
	p.scopePrefix, p.rolePrefix = a.ScopePrefix, a.RolePrefix
	if !a.NoRealmRoles {
		p.Roles = p.RealmRoles
	}
	for _, c := range a.RoleClients {
		for _, r := range p.ClientRoles[c] {
			if !slices.Contains(p.Roles, r) {
				p.Roles = append(slices.Clip(p.Roles), r)
			}
		}
	}
}
