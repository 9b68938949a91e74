package authz

import "go.yaml.in/yaml/v3"

// UnmarshalYAML implements yaml.v3's Unmarshaler: n is one requirement in
// the notation of the package documentation, such as permit_all or
// {role: admin}, checked as a requirement of [Config] is. It lets other
// rule sets, such as the gRPC method rules of package grpcauth, take
// their requirements in the same notation. Errors are [*LineError]s; on
// error, r is left unchanged.
func (r *Requirement) UnmarshalYAML(n *yaml.Node) error {
	q, err := decodeRequirement(n)
	if err != nil {
		return err
	}
	*r = q
	return nil
}

// Validate reports what makes r unusable in a policy, as [Compile] does
// for the requirements of its rules: a name left empty (Role("")), an
// empty AllOf, AnyOf or AnyRole, a ClaimEquals value that has no JSON
// form. It returns nil for a usable requirement, the zero Requirement
// included.
func (r Requirement) Validate() error { return r.validate() }
