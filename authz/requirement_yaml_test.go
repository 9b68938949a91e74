package authz_test

import (
	"errors"
	"testing"

	"github.com/keygate/keygate/authz"
	"go.yaml.in/yaml/v3"
)

func TestRequirementUnmarshalYAML(t *testing.T) {
	var doc struct {
		Need authz.Requirement `yaml:"need"`
	}
	if err := yaml.Unmarshal([]byte("need: {all: [{role: admin}, {scope: x}]}"), &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Need.String(), `allOf(hasRole("admin"), hasScope("x"))`; got != want {
		t.Errorf("need = %s; want %s", got, want)
	}
	keep := authz.Role("keep")
	doc.Need = keep
	err := yaml.Unmarshal([]byte("need:\n  roles: admin\n"), &doc)
	var le *authz.LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("unknown key: err = %v; want a LineError at line 2", err)
	}
	if doc.Need.String() != keep.String() {
		t.Errorf("on error the requirement changed to %s", doc.Need)
	}
}

func TestRequirementValidate(t *testing.T) {
	for _, c := range []struct {
		req authz.Requirement
		ok  bool
	}{
		{authz.Requirement{}, true},
		{authz.Role("admin"), true},
		{authz.AnyOf(authz.Scope("a"), authz.Role("b")), true},
		{authz.Role(""), false},
		{authz.AllOf(), false},
		{authz.AnyOf(authz.Scope("a"), authz.AnyRole()), false},
		{authz.ClaimEquals("x", make(chan int)), false},
	} {
		if err := c.req.Validate(); (err == nil) != c.ok {
			t.Errorf("%s.Validate() = %v; want ok=%v", c.req, err, c.ok)
		}
	}
}
