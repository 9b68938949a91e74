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
// its claims: Keycloak's (realm_access, resource_access, azp,
// preferred_username) and those of RFC 9068 section 2.2 (client_id, and
// the roles, groups and entitlements claims of section 2.2.3.1). Only
// tokens whose signature and claims checked out become a Principal.
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
	// JWTID is the jti claim (RFC 7519 section 4.1.7).
	JWTID string
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
	// RolesClaim is the top-level roles claim of RFC 9068 section
	// 2.2.3.1, which providers other than Keycloak use (Microsoft Entra
	// ID, Auth0 and Okta with a roles mapper). It becomes part of Roles
	// when [ClaimMapping.RFC9068Roles] is set.
	RolesClaim []string
	// Groups is the groups claim (RFC 9068 section 2.2.3.1), present in
	// Keycloak tokens when a group mapper adds it.
	Groups []string
	// Entitlements is the entitlements claim (RFC 9068 section 2.2.3.1).
	Entitlements []string
	// Roles are the roles [Principal.HasRole] checks, as
	// [ClaimMapping] derives them: by default the realm roles, plus the
	// client roles of the clients [ClaimMapping.RoleClients] names and,
	// with [ClaimMapping.RFC9068Roles], the roles claim.
	Roles []string

	scopePrefix, rolePrefix string     // zero: "SCOPE_", "ROLE_"
	claims                  *rawClaims // nil for a Principal no Verifier made
}

// ServiceAccount reports whether the token was issued to a client acting
// for itself (the client_credentials grant), with no user involved: either
// the username has the prefix Keycloak reserves for service accounts,
// "service-account-", or sub equals the client, as RFC 9068 section 2.2
// recommends for such tokens.
func (p *Principal) ServiceAccount() bool {
	return strings.HasPrefix(p.Username, "service-account-") ||
		p.Subject != "" && p.Subject == p.Client
}

// HasRole reports whether [Principal.Roles] holds role: a realm role, or
// a client role of one of the clients [ClaimMapping.RoleClients] names.
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
// verifier's [ClaimMapping]: "SCOPE_x" for each scope and "ROLE_x"
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
// json.Unmarshal would. It reports false when the token has no such claim,
// and for a Principal that no [Verifier] made (a literal, as in tests),
// which has no claims beyond its fields.
func (p *Principal) Claim(name string, v any) (bool, error) {
	c := p.claims
	if c == nil {
		return false, nil
	}
	c.once.Do(func() {
		c.err = json.Unmarshal([]byte(c.payload), &c.members)
	})
	if c.err != nil {
		return false, fmt.Errorf("keygate: decode claims: %w", c.err)
	}
	raw, ok := c.members[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("keygate: decode claim %q: %w", name, err)
	}
	return true, nil
}

// rawClaims is the payload a Principal was read from, decoded in full on
// the first [Principal.Claim]. It sits behind a pointer so that a
// Principal holds no lock and can be copied.
type rawClaims struct {
	payload string
	once    sync.Once
	members map[string]json.RawMessage
	err     error
}

// principalAlloc is a Principal and its rawClaims in one allocation.
type principalAlloc struct {
	p Principal
	c rawClaims
}

// ClaimMapping configures how a [Principal]'s roles and authorities are
// derived from its claims, like Spring Security's
// JwtGrantedAuthoritiesConverter with a Keycloak role converter. The zero
// value is Keycloak's mapping: realm roles become roles, scopes become
// "SCOPE_x" and roles "ROLE_x".
type ClaimMapping struct {
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
	// RFC9068Roles adds the top-level roles claim of RFC 9068 section
	// 2.2.3.1 ([Principal.RolesClaim]) to the roles, for providers that
	// put roles there rather than in Keycloak's realm_access.
	RFC9068Roles bool
}

func (a ClaimMapping) withDefaults() ClaimMapping {
	if a.ScopePrefix == "" {
		a.ScopePrefix = "SCOPE_"
	}
	if a.RolePrefix == "" {
		a.RolePrefix = "ROLE_"
	}
	return a
}

// derive fills p.Roles and the prefixes of p's authorities.
func (a ClaimMapping) derive(p *Principal) {
	p.scopePrefix, p.rolePrefix = a.ScopePrefix, a.RolePrefix
	if !a.NoRealmRoles {
		p.Roles = p.RealmRoles
	}
	add := func(roles []string) {
		for _, r := range roles {
			if !slices.Contains(p.Roles, r) {
				p.Roles = append(slices.Clip(p.Roles), r)
			}
		}
	}
	for _, c := range a.RoleClients {
		add(p.ClientRoles[c])
	}
	if a.RFC9068Roles {
		add(p.RolesClaim)
	}
}
