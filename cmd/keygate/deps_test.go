package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReleaseBinaryDeps checks that the keygate binary does not link the
// testing package (which registers its flags and pulls in its runtime
// hooks): keygate dev embeds keycloaktest's issuer, which must not import
// testing. Nor net/http/pprof, which only the build with the tag
// keygate_pprof may serve (pprof.go).
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
	if slices.Contains(deps, "net/http/pprof") {
		t.Error("the keygate binary links net/http/pprof without the build tag keygate_pprof")
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "testing/") {
			t.Errorf("the keygate binary links %s", d)
		}
	}
}

// TestSlimBuild checks the build without ext_authz (tag
// keygate_noextauthz): it links neither gRPC nor Envoy's protobufs, which
// the default build does, and its config check refuses an ext_authz block
// with an error that names the tag, where the default build accepts it.
func TestSlimBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds keygate twice")
	}
	heavy := func(d string) bool {
		return strings.HasPrefix(d, "google.golang.org/grpc") || strings.HasPrefix(d, "github.com/envoyproxy/")
	}
	for _, tc := range []struct {
		tags  string
		heavy bool
	}{{"", true}, {"keygate_noextauthz", false}} {
		out, err := exec.Command("go", "list", "-deps", "-tags", tc.tags, ".").CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps -tags %q: %v\n%s", tc.tags, err, out)
		}
		if got := slices.ContainsFunc(strings.Fields(string(out)), heavy); got != tc.heavy {
			t.Errorf("tags %q: links gRPC or Envoy = %v, want %v", tc.tags, got, tc.heavy)
		}
	}

	dir := t.TempDir()
	conf := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(conf, []byte("issuer: https://idp.example/realms/r\naudiences: [api]\next_authz: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tags string
		ok   bool
	}{{"", true}, {"keygate_noextauthz", false}} {
		bin := filepath.Join(dir, "keygate"+tc.tags)
		if out, err := exec.Command("go", "build", "-tags", tc.tags, "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build -tags %q: %v\n%s", tc.tags, err, out)
		}
		out, err := exec.Command(bin, "config", "check", conf).CombinedOutput()
		if tc.ok && err != nil {
			t.Errorf("default build: config check with ext_authz: %v\n%s", err, out)
		}
		if !tc.ok && (err == nil || !strings.Contains(string(out), "built without ext_authz (build tag keygate_noextauthz)")) {
			t.Errorf("slim build: config check with ext_authz: err %v, output:\n%s\nwant a refusal naming the build tag", err, out)
		}
	}
}
