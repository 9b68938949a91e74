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

// kc is the Keycloak under test, read from the environment that
// scripts/keycloak.sh env prints (variables already set win).
var kc struct {
	URL, Realm, Issuer, TokenURL, JWKSURL string
	OtherIssuer                           string
	AdminUser, AdminPassword, Version     string
}

// script is the absolute path of scripts/keycloak.sh.
var script string

// TestMain makes sure a Keycloak is running before any test: it uses the
// one at KEYCLOAK_URL when it answers (make e2e starts it first), and
// starts one with scripts/keycloak.sh otherwise. It never skips: when no
// Keycloak can be had, the run fails, in CI and outside it. At the end it
// stops Keycloak (the suite rotated its keys and restarted it, so it is
// of no further use), unless KEYGATE_E2E_KEEP_KEYCLOAK=1.
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
	if err := loadEnv(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 1
	}
	if os.Getenv("KEYGATE_E2E_KEEP_KEYCLOAK") != "1" {
		defer func() {
			if err := keycloakScript("stop"); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: scripts/keycloak.sh stop: %v\n", err)
			}
		}()
	}
	if !keycloakReady() {
		fmt.Fprintf(os.Stderr, "e2e: no Keycloak answers at %s; starting one with scripts/keycloak.sh start\n", kc.URL)
		t0 := time.Now()
		if err := keycloakScript("start"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: cannot start Keycloak (%v); the e2e tier needs a real Keycloak and does not skip\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: Keycloak %s started in %v\n", kc.Version, time.Since(t0).Round(time.Second))
	}
	if !keycloakReady() {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: Keycloak at %s is not ready\n", kc.URL)
		return 1
	}
	return m.Run()
}

// loadEnv fills kc from the environment, taking what is unset from
// scripts/keycloak.sh env.
func loadEnv() error {
	out, err := exec.Command(script, "env").Output()
	if err != nil {
		return fmt.Errorf("scripts/keycloak.sh env: %w", err)
	}
	defaults := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			defaults[k] = v
		}
	}
	get := func(k string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}
	kc.URL = strings.TrimSuffix(get("KEYCLOAK_URL"), "/")
	kc.Realm = get("KEYCLOAK_REALM")
	kc.Issuer = get("KEYCLOAK_ISSUER")
	kc.TokenURL = get("KEYCLOAK_TOKEN_URL")
	kc.JWKSURL = get("KEYCLOAK_JWKS_URL")
	kc.OtherIssuer = get("KEYCLOAK_OTHER_ISSUER")
	kc.AdminUser = get("KEYCLOAK_ADMIN_USERNAME")
	kc.AdminPassword = get("KEYCLOAK_ADMIN_PASSWORD")
	kc.Version = get("KEYCLOAK_VERSION")
	for k, v := range map[string]string{"KEYCLOAK_URL": kc.URL, "KEYCLOAK_REALM": kc.Realm, "KEYCLOAK_ISSUER": kc.Issuer,
		"KEYCLOAK_TOKEN_URL": kc.TokenURL, "KEYCLOAK_JWKS_URL": kc.JWKSURL, "KEYCLOAK_OTHER_ISSUER": kc.OtherIssuer,
		"KEYCLOAK_ADMIN_USERNAME": kc.AdminUser, "KEYCLOAK_ADMIN_PASSWORD": kc.AdminPassword} {
		if v == "" {
			return fmt.Errorf("%s is not set and scripts/keycloak.sh env does not print it", k)
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
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// keycloakManaged reports whether the Keycloak under test is the one
// scripts/keycloak.sh runs (status exit code 0), which the outage test
// can stop and start.
func keycloakManaged() bool {
	cmd := exec.Command(script, "status")
	return cmd.Run() == nil
}
