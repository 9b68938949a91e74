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
  # If a service started anyway (no policy support), stop it: the tests
  # need no system server, and none may listen beyond loopback.
  for svc in "${missing[@]}"; do
    "${sudo[@]}" pkill -x "$svc" 2>/dev/null || true
  done
fi
echo "== proxies: $(nginx -v 2>&1), $(caddy version | head -n1)"
CI="${CI:-}" "$GO" test -tags proxies -count=1 -v ./e2e/frontproxy/
