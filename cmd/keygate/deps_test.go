package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestReleaseBinaryDeps checks that the keygate binary does not link the
// testing package (which registers its flags and pulls in its runtime
// hooks): keygate dev embeds keycloaktest's issuer, which must not import
// testing.
func TestReleaseBinaryDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/keygate/keygate/keycloaktest") {
		t.Errorf("go list -deps does not list keycloaktest, which keygate dev embeds; is the list complete?\n%s", out)
	}
	if slices.Contains(deps, "testing") {
		t.Error("the keygate binary links testing")
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "testing/") {
			t.Errorf("the keygate binary links %s", d)
		}
	}
}
