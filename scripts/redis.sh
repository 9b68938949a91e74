#!/usr/bin/env bash
# Installs redis-server from Debian's packages when it is missing. The
# tests start their own redis-server on free loopback ports (see
# internal/redistest) and stop it; no system service is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
  echo "== redis: installing redis-server from Debian's packages"
  # shellcheck source=scripts/debian.sh
  . scripts/debian.sh
  debian_install "redis-server" "/run/redis/redis-server.pid" redis-server
fi
echo "== redis: $(redis-server --version | cut -d' ' -f1-3)"
