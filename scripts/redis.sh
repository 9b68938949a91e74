#!/usr/bin/env bash
# Installs redis-server from Debian's packages when it is missing. The
# tests start their own redis-server on free loopback ports (see
# internal/redistest) and stop it; no system service is left running.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  echo "== redis: $(redis-server --version | cut -d' ' -f1-3)"
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
echo "== redis: installing redis-server from Debian's packages"
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  made_policy=1
fi
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
if ((made_policy)); then "${sudo[@]}" rm -f "$policy"; fi
# A service started anyway would listen on 6379; the tests need none.
if [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl stop redis-server 2>/dev/null || true
elif [ -s /run/redis/redis-server.pid ]; then
  "${sudo[@]}" kill "$(cat /run/redis/redis-server.pid)" 2>/dev/null || true
fi
echo "== redis: $(redis-server --version | cut -d' ' -f1-3)"
