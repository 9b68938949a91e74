package keygate

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// claims is the wire form of the payload members keygate reads. Members of
// the wrong JSON type make the token malformed.
type claims struct {
	Iss               string                     `json:"iss"`
	Sub               string                     `json:"sub"`
	Aud               audience                   `json:"aud"`
	Exp               *float64                   `json:"exp"`
	Nbf               *float64                   `json:"nbf"`
	Iat               *float64                   `json:"iat"`
	Jti               string                     `json:"jti"`
	Typ               string                     `json:"typ"`
	Azp               string                     `json:"azp"`
	ClientID          string                     `json:"client_id"`
	Sid               string                     `json:"sid"`
	Scope             string                     `json:"scope"`
	PreferredUsername string                     `json:"preferred_username"`
	Email             string                     `json:"email"`
	Name              string                     `json:"name"`
	GivenName         string                     `json:"given_name"`
	FamilyName        string                     `json:"family_name"`
	RealmAccess       access                     `json:"realm_access"`
	ResourceAccess    map[string]access          `json:"resource_access"`
	Groups            []string                   `json:"groups"`
	Cnf               map[string]json.RawMessage `json:"cnf"`
}

type access struct {
	Roles []string `json:"roles"`
}

// audience is aud: a single string or an array of strings (RFC 7519
// section 4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New(`"aud" must be a string or an array of strings`)
	}
	*a = list
	return nil
}

// numericDate converts a JSON NumericDate to a time, refusing values a
// time.Time cannot hold.
func numericDate(name string, v *float64) (time.Time, error) {
	if v == nil {
		return time.Time{}, nil
	}
	f := *v
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, errors.New("claim " + name + " is not a valid NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

func (c *claims) principal(payload []byte, a Authorities) *Principal {
	p := &Principal{
		Subject:    c.Sub,
		Username:   c.PreferredUsername,
		Email:      c.Email,
		Name:       c.Name,
		GivenName:  c.GivenName,
		FamilyName: c.FamilyName,
		Client:     c.Azp,
		SessionID:  c.Sid,
		ID:         c.Jti,
		Issuer:     c.Iss,
		Audience:   c.Aud,
		RealmRoles: c.RealmAccess.Roles,
		Groups:     c.Groups,
		Scopes:     strings.Fields(c.Scope),
		payload:    payload,
	}
	if p.Client == "" {
		p.Client = c.ClientID
	}
	if len(c.ResourceAccess) > 0 {
		p.ClientRoles = make(map[string][]string, len(c.ResourceAccess))
		for client, acc := range c.ResourceAccess {
			p.ClientRoles[client] = acc.Roles
		}
	}
	// Errors were checked by the verifier before the signature.
	p.ExpiresAt, _ = numericDate("exp", c.Exp)
	p.IssuedAt, _ = numericDate("iat", c.Iat)
	p.NotBefore, _ = numericDate("nbf", c.Nbf)
	a.derive(p)
	return p
}
