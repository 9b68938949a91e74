#!/usr/bin/env bash
# make proxies: keygate's forward-auth mode behind the real NGINX and Caddy,
# configured with the files in examples/ (see e2e/frontproxy).
#
# Installs nginx and caddy from Debian's packages when they are missing.
# Their packages would start system services on port 80; a policy-rc.d that
# refuses every service start keeps them stopped. The tests start their own
# servers on loopback ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if ((${#missing[@]})); then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  echo "== proxies: installing ${missing[*]} from Debian's packages"
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if ((made_policy)); then "${sudo[@]}" rm -f "$policy"; fi
  # If a service started anyway (a policy-rc.d that allows it), stop it
  # by its unit or pid file: the tests need no system server, and none may
  # listen beyond loopback.
  if [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl stop "${missing[@]}" 2>/dev/null || true
  elif [ -s /run/nginx.pid ]; then
    "${sudo[@]}" kill "$(cat /run/nginx.pid)" 2>/dev/null || true
  fi
fi
echo "== proxies: $(nginx -v 2>&1), $(caddy version | head -n1)"

# The tests stop the servers they start. If the test binary dies first (a
# -timeout panic skips cleanups), the process groups it listed in this file
# are stopped here.
pids="$(mktemp)"
stop_left() {
  while read -r pid; do
    if kill -0 -- "-$pid" 2>/dev/null; then
      echo "== proxies: stopping process group $pid left by the tests" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done <"$pids"
  rm -f "$pids"
}
trap stop_left EXIT
CI="${CI:-}" KEYGATE_PROXIES_PIDS="$pids" "$GO" test -tags proxies -count=1 -timeout 3m -v ./e2e/frontproxy/
