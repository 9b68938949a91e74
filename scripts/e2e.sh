#!/usr/bin/env bash
# make e2e: keygate's end-to-end tier against a real Keycloak (e2e/README.md).
#
#   vet the e2e package, fetch Keycloak (cached under .cache/), make a state dir for this run,
#   start Keycloak there on free loopback ports with a fresh realm,
#   go test -tags e2e -count=1 -v -timeout 20m ./e2e/, stop that Keycloak and delete the state dir.
#
# Runs are independent: each has its own ports, pid and Keycloak home (scripts/keycloak.sh), so two
# `make e2e` on one machine both pass. Keycloak is stopped on every exit: success, test failure,
# Ctrl-C. If Keycloak cannot be fetched or started, this fails (non-zero), it never skips. Extra
# arguments go to go test (e.g. scripts/e2e.sh -run 'TestKeycloak/Grants').
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
kc=scripts/keycloak.sh
t0=$SECONDS
unset KEYGATE_KEYCLOAK_STATE # this run makes its own (below)

fail() { printf '== e2e: FAIL: %s\n' "$*" >&2; exit 1; }
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "${KEYGATE_KEYCLOAK_STATE:-}" ]]; then
    "$kc" clean || rc=1
  fi
  if (( rc == 0 )); then
    echo "== e2e: PASS in $((SECONDS - t0)) s"
  else
    echo "== e2e: FAIL (exit ${rc}) after $((SECONDS - t0)) s" >&2
  fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$GO" vet -tags e2e ./e2e/ || fail "go vet -tags e2e ./e2e/"
"$kc" fetch || fail "cannot fetch Keycloak (see above)"
KEYGATE_KEYCLOAK_STATE="$("$kc" new)" || fail "cannot make a state dir"
export KEYGATE_KEYCLOAK_STATE
"$kc" start || fail "cannot start Keycloak (see above)"
eval "$("$kc" env)"
"$GO" test -tags e2e -count=1 -v -timeout 20m "$@" ./e2e/
