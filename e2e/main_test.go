//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kc is the Keycloak under test, read from what scripts/keycloak.sh env
// prints for this run's state dir. KEYCLOAK_* variables of the caller's
// environment are ignored: the tests trust only the Keycloak this run
// launched.
var kc struct {
	URL, Realm, Issuer, TokenURL, JWKSURL string
	OtherIssuer                           string
	AdminUser, AdminPassword, Version     string
}

// script is the absolute path of scripts/keycloak.sh.
var script string

// stateEnv names the run's state dir for scripts/keycloak.sh: the pid,
// ports, home and log of the Keycloak this run launched.
const stateEnv = "KEYGATE_KEYCLOAK_STATE"

// TestMain makes sure this run's Keycloak is running before any test. A
// run is a state dir of scripts/keycloak.sh: make e2e makes one, starts
// Keycloak in it and passes it in KEYGATE_KEYCLOAK_STATE; without it,
// TestMain makes its own and starts Keycloak there. Either way it uses a
// Keycloak only when scripts/keycloak.sh status says it is the process
// the run launched, serving the run's ports. It never skips: when no
// Keycloak can be had, the run fails, in CI and outside it. At the end it
// stops Keycloak (the suite rotated its keys and restarted it, so it is
// of no further use) and deletes a state dir it made, unless
// KEYGATE_E2E_KEEP_KEYCLOAK=1.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	script, err = filepath.Abs(filepath.Join("..", "scripts", "keycloak.sh"))
	if err == nil {
		_, err = os.Stat(script)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: cannot find scripts/keycloak.sh: %v\n", err)
		return 1
	}
	made := false
	if os.Getenv(stateEnv) == "" {
		out, err := exec.Command(script, "new").Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: scripts/keycloak.sh new: %v\n", err)
			return 1
		}
		os.Setenv(stateEnv, strings.TrimSpace(string(out)))
		made = true
	}
	if os.Getenv("KEYGATE_E2E_KEEP_KEYCLOAK") != "1" {
		defer func() {
			cmd := "stop"
			if made {
				cmd = "clean"
			}
			if err := keycloakScript(cmd); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: scripts/keycloak.sh %s: %v\n", cmd, err)
			}
		}()
	} else {
		defer fmt.Fprintf(os.Stderr, "e2e: Keycloak kept running: export %s=%s\n", stateEnv, os.Getenv(stateEnv))
	}
	if !keycloakManaged() {
		fmt.Fprintf(os.Stderr, "e2e: this run's Keycloak (%s=%s) is not running; starting it with scripts/keycloak.sh start\n",
			stateEnv, os.Getenv(stateEnv))
		t0 := time.Now()
		if err := keycloakScript("start"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: cannot start Keycloak (%v); the e2e tier needs a real Keycloak and does not skip\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: Keycloak started in %v\n", time.Since(t0).Round(time.Second))
	}
	if err := loadEnv(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 1
	}
	if !keycloakManaged() || !keycloakReady() {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: this run's Keycloak at %s is not ready\n", kc.URL)
		return 1
	}
	return m.Run()
}

// loadEnv fills kc from scripts/keycloak.sh env.
func loadEnv() error {
	out, err := exec.Command(script, "env").Output()
	if err != nil {
		return fmt.Errorf("scripts/keycloak.sh env: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			env[k] = v
		}
	}
	kc.URL = strings.TrimSuffix(env["KEYCLOAK_URL"], "/")
	kc.Realm = env["KEYCLOAK_REALM"]
	kc.Issuer = env["KEYCLOAK_ISSUER"]
	kc.TokenURL = env["KEYCLOAK_TOKEN_URL"]
	kc.JWKSURL = env["KEYCLOAK_JWKS_URL"]
	kc.OtherIssuer = env["KEYCLOAK_OTHER_ISSUER"]
	kc.AdminUser = env["KEYCLOAK_ADMIN_USERNAME"]
	kc.AdminPassword = env["KEYCLOAK_ADMIN_PASSWORD"]
	kc.Version = env["KEYCLOAK_VERSION"]
	for k, v := range map[string]string{"KEYCLOAK_URL": kc.URL, "KEYCLOAK_REALM": kc.Realm, "KEYCLOAK_ISSUER": kc.Issuer,
		"KEYCLOAK_TOKEN_URL": kc.TokenURL, "KEYCLOAK_JWKS_URL": kc.JWKSURL, "KEYCLOAK_OTHER_ISSUER": kc.OtherIssuer,
		"KEYCLOAK_ADMIN_USERNAME": kc.AdminUser, "KEYCLOAK_ADMIN_PASSWORD": kc.AdminPassword} {
		if v == "" {
			return fmt.Errorf("scripts/keycloak.sh env does not print %s", k)
		}
	}
	return nil
}

// keycloakReady reports whether both realms answer their discovery
// document.
func keycloakReady() bool {
	c := &http.Client{Timeout: 3 * time.Second}
	for _, iss := range []string{kc.Issuer, kc.OtherIssuer} {
		resp, err := c.Get(iss + "/.well-known/openid-configuration")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
	}
	return true
}

// keycloakScript runs scripts/keycloak.sh with args, its output going to
// stderr (visible in go test -v).
func keycloakScript(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// keycloakManaged reports whether this run's Keycloak is running and
// ready, and the processes serving its ports are the ones the run launched
// (scripts/keycloak.sh status exits 0). The outage test stops and starts
// it.
func keycloakManaged() bool {
	cmd := exec.Command(script, "status")
	return cmd.Run() == nil
}
