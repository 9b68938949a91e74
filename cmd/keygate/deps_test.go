package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestReleaseBinaryDeps checks that the keygate binary links neither the
// testing package nor the test issuer's public face: keygate dev embeds
// the issuer through internal/devissuer, which imports neither.
func TestReleaseBinaryDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/keygate/keygate/internal/devissuer") {
		t.Errorf("go list -deps does not list internal/devissuer; is the list complete?\n%s", out)
	}
	for _, banned := range []string{"testing", "github.com/keygate/keygate/keycloaktest"} {
		if slices.Contains(deps, banned) {
			t.Errorf("the keygate binary links %s", banned)
		}
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "testing/") {
			t.Errorf("the keygate binary links %s", d)
		}
	}
}
