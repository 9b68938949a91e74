package keygate

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/keygate/keygate/internal/jose"
)

// claims is the wire form of the payload members keygate reads.
type claims struct {
	Iss, Sub, Jti, Typ, Azp, ClientID, Sid, Scope string
	PreferredUsername, Email, Name, GivenName     string
	FamilyName                                    string
	Aud                                           []string
	Exp, Nbf, Iat                                 number
	RealmRoles                                    []string
	ResourceAccess                                map[string][]string
	// Groups, Roles and Entitlements are the top-level claims of RFC 9068
	// section 2.2.3.1 (SCIM attributes).
	Groups, Roles, Entitlements []string
	// CnfJkt and CnfX5t report a DPoP or certificate binding (RFC 9449,
	// RFC 8705).
	CnfJkt, CnfX5t bool
	// Nonce reports a nonce claim (null counts as absent).
	Nonce bool
	// LogoutEvent reports an events claim (RFC 8417) holding the member
	// [logoutEvent]; LogoutEventBad that this member's value is not an
	// object, as OpenID Connect Back-Channel Logout 1.0 section 2.4
	// requires.
	LogoutEvent, LogoutEventBad bool
	// members counts the payload's top-level members, read or skipped.
	members int
	// arena holds the lists above, and the principal's scopes, in one
	// allocation for the usual token. A claims is used where it was
	// decoded (the verifier keeps a pointer to it): a copy that carved
	// from the same arena could hand out overlapping slices.
	arena jose.StringArena
}

// decodeClaims reads a claims set in one pass (see [jose.Scanner]). A
// member keygate reads must have its JSON type (null counts as absent) and
// appear once: RFC 7519 section 4 lets parsers refuse duplicate claims,
// and a duplicate is how two parsers come to disagree about a token.
func decodeClaims(payload string) (claims, error) {
	var (
		c    claims
		seen uint32
	)
	s := jose.NewScanner(payload)
	str := func(dst *string) error {
		if s.Null() {
			return nil
		}
		v, err := s.String()
		*dst = v
		return err
	}
	num := func(dst *number) error {
		if s.Null() {
			return nil
		}
		v, err := s.Number()
		*dst = number{v, true}
		return err
	}
	err := s.Object(func(key string) error {
		c.members++
		var bit uint32
		var err error
		switch key {
		case "iss":
			bit, err = 1<<0, str(&c.Iss)
		case "sub":
			bit, err = 1<<1, str(&c.Sub)
		case "jti":
			bit, err = 1<<2, str(&c.Jti)
		case "typ":
			bit, err = 1<<3, str(&c.Typ)
		case "azp":
			bit, err = 1<<4, str(&c.Azp)
		case "client_id":
			bit, err = 1<<5, str(&c.ClientID)
		case "sid":
			bit, err = 1<<6, str(&c.Sid)
		case "scope":
			bit, err = 1<<7, str(&c.Scope)
		case "preferred_username":
			bit, err = 1<<8, str(&c.PreferredUsername)
		case "email":
			bit, err = 1<<9, str(&c.Email)
		case "name":
			bit, err = 1<<10, str(&c.Name)
		case "given_name":
			bit, err = 1<<11, str(&c.GivenName)
		case "family_name":
			bit, err = 1<<12, str(&c.FamilyName)
		case "exp":
			bit, err = 1<<13, num(&c.Exp)
		case "nbf":
			bit, err = 1<<14, num(&c.Nbf)
		case "iat":
			bit, err = 1<<15, num(&c.Iat)
		case "aud":
			bit = 1 << 16
			switch s.Peek() {
			case '"':
				var a string
				a, err = s.String()
				c.Aud = c.arena.Clone([]string{a})
			case '[', 'n':
				c.Aud, err = s.Strings(&c.arena)
			default:
				err = errors.New(`"aud" must be a string or an array of strings`)
			}
		case "groups":
			bit = 1 << 17
			c.Groups, err = s.Strings(&c.arena)
		case "realm_access":
			bit = 1 << 18
			c.RealmRoles, err = roles(s, &c.arena)
		case "resource_access":
			bit = 1 << 19
			err = resourceAccess(s, &c)
		case "cnf":
			bit = 1 << 20
			err = cnf(s, &c)
		case "roles":
			bit = 1 << 21
			c.Roles, err = s.Strings(&c.arena)
		case "entitlements":
			bit = 1 << 22
			c.Entitlements, err = s.Strings(&c.arena)
		case "nonce":
			bit = 1 << 23
			c.Nonce = !s.Null()
			if c.Nonce {
				err = s.Skip()
			}
		case "events":
			bit = 1 << 24
			err = events(s, &c)
		default:
			return s.Skip()
		}
		if seen&bit != 0 {
			return fmt.Errorf("duplicate claim %q", key)
		}
		seen |= bit
		if err != nil {
			return fmt.Errorf("claim %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return claims{}, err
	}
	return c, s.End()
}

// roles reads {"roles": [...]}, the shape of realm_access and of each
// client in resource_access.
func roles(s *jose.Scanner, a *jose.StringArena) ([]string, error) {
	if s.Null() {
		return nil, nil
	}
	var out []string
	found := false
	err := s.Object(func(key string) error {
		if key != "roles" {
			return s.Skip()
		}
		if found {
			return errors.New(`duplicate member "roles"`)
		}
		found = true
		var err error
		out, err = s.Strings(a)
		return err
	})
	return out, err
}

func resourceAccess(s *jose.Scanner, c *claims) error {
	if s.Null() {
		return nil
	}
	c.ResourceAccess = map[string][]string{}
	return s.Object(func(client string) error {
		if _, dup := c.ResourceAccess[client]; dup {
			return errors.New("duplicate client " + quote(client))
		}
		r, err := roles(s, &c.arena)
		c.ResourceAccess[client] = r
		return err
	})
}

func cnf(s *jose.Scanner, c *claims) error {
	if s.Null() {
		return nil
	}
	return s.Object(func(key string) error {
		switch key {
		case "jkt":
			c.CnfJkt = true
		case "x5t#S256":
			c.CnfX5t = true
		}
		return s.Skip()
	})
}

// logoutEvent is the member of the events claim that makes a token a
// logout token (OpenID Connect Back-Channel Logout 1.0 section 2.4).
const logoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// events reads the events claim of a Security Event Token (RFC 8417),
// looking for [logoutEvent]. An events claim that is not an object (early
// drafts of Back-Channel Logout made it an array) holds no logout event.
func events(s *jose.Scanner, c *claims) error {
	if s.Peek() != '{' {
		return s.Skip()
	}
	return s.Object(func(key string) error {
		if key != logoutEvent {
			return s.Skip()
		}
		if c.LogoutEvent {
			return errors.New("duplicate event " + quote(key))
		}
		c.LogoutEvent = true
		c.LogoutEventBad = s.Peek() != '{'
		return s.Skip()
	})
}

// number is an optional JSON number claim.
type number struct {
	v   float64
	set bool
}

// numericDate converts a JSON NumericDate to a time, refusing values a
// time.Time cannot hold. An absent claim is the zero time.
func numericDate(name string, n number) (time.Time, error) {
	if !n.set {
		return time.Time{}, nil
	}
	f := n.v
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, errors.New("claim " + name + " is not a valid NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

func (c *claims) principal(payload string, a ClaimMapping) *Principal {
	box := &principalAlloc{c: rawClaims{payload: payload}}
	p := &box.p
	*p = Principal{
		claims:       &box.c,
		Subject:      c.Sub,
		Username:     c.PreferredUsername,
		Email:        c.Email,
		Name:         c.Name,
		GivenName:    c.GivenName,
		FamilyName:   c.FamilyName,
		Client:       c.Azp,
		SessionID:    c.Sid,
		JWTID:        c.Jti,
		Issuer:       c.Iss,
		Audience:     c.Aud,
		RealmRoles:   c.RealmRoles,
		RolesClaim:   c.Roles,
		Groups:       c.Groups,
		Entitlements: c.Entitlements,
		Scopes:       c.arena.Fields(c.Scope),
	}
	if p.Client == "" {
		p.Client = c.ClientID
	}
	if len(c.ResourceAccess) > 0 {
		p.ClientRoles = c.ResourceAccess
	}
	// Errors were checked by the verifier before the signature.
	p.ExpiresAt, _ = numericDate("exp", c.Exp)
	p.IssuedAt, _ = numericDate("iat", c.Iat)
	p.NotBefore, _ = numericDate("nbf", c.Nbf)
	a.derive(p)
	return p
}
