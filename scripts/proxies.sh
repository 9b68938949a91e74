#!/usr/bin/env bash
# make proxies: keygate behind the real NGINX and Caddy, configured with the
# files in examples/, in front of real applications: Python's wsgiref and
# Express (see e2e/frontproxy).
#
# Installs nginx, caddy, python3 and node (with npm) from Debian's packages
# when they are missing, and Express, pinned by
# e2e/frontproxy/testdata/express/package-lock.json, with npm ci into
# .cache/node when that copy is missing or stale.
# Their packages would start system services on port 80; a policy-rc.d that
# refuses every service start keeps them stopped. The tests start their own
# servers on loopback ports and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "== proxies: installing ${missing[*]} from Debian's packages"
  # shellcheck source=scripts/debian.sh
  . scripts/debian.sh
  debian_install "nginx caddy" "/run/nginx.pid" "${missing[@]}"
fi
echo "== proxies: $(nginx -v 2>&1), caddy $(caddy version | head -n1), $(python3 --version), node $(node --version)"

# Express for the Node application: npm ci from the committed lock file,
# again whenever the lock file differs from the installed copy's.
lock=e2e/frontproxy/testdata/express/package-lock.json
node_dir=.cache/node
if ! cmp -s "$lock" "$node_dir/package-lock.json" || [ ! -f "$node_dir/node_modules/express/package.json" ]; then
  echo "== proxies: npm ci (Express) into $node_dir"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp e2e/frontproxy/testdata/express/package.json "$lock" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

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
# The flood of TestExhaustion needs a few thousand descriptors here.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
CI="${CI:-}" KEYGATE_PROXIES_PIDS="$pids" KEYGATE_NODE_MODULES="$PWD/$node_dir/node_modules" \
  "$GO" test -tags proxies -count=1 -timeout 5m -v "$@" ./e2e/frontproxy/
