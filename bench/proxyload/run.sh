#!/usr/bin/env bash
# make bench-proxy: wrk on loopback through the keygate proxy and through a
# bare httputil.ReverseProxy to the same upstream (BENCHMARKS.md).
#
#   DURATION (default 15s), CONNECTIONS (32), THREADS (2), RUNS (3)
#
# Everything listens on 127.0.0.1 and is stopped on exit. wrk is installed
# from Debian's packages when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
GO="${GO:-go}"
DURATION="${DURATION:-15s}" CONNECTIONS="${CONNECTIONS:-32}" THREADS="${THREADS:-2}" RUNS="${RUNS:-3}"

if ! command -v wrk >/dev/null 2>&1; then
  sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && "$GO" build -o "$work/keygate" ./cmd/keygate)
(cd "$root/bench" && "$GO" build -o "$work/proxyload" ./proxyload)

"$work/proxyload" -dir "$work" >"$work/env" 2>"$work/proxyload.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/env" ] && grep -q ISSUER "$work/env" && break; sleep 0.2; done
# shellcheck disable=SC1091
. "$work/env"
"$work/keygate" serve --config "$work/keygate.yaml" 2>"$work/keygate.log" &
pids+=($!)
token="$(cat "$work/token.txt")"
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$KEYGATE/api/x")" = 200 ] && break
  sleep 0.2
done

# bench NAME URL [wrk args...]: RUNS runs; prints one line per run.
bench() {
  local name=$1 url=$2; shift 2
  for r in $(seq "$RUNS"); do
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")"
    rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
    p90="$(awk '$1=="90%" {print $2}' <<<"$out")"
    p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
    printf '%-26s run %s  %10s req/s  p50 %-8s p90 %-8s p99 %-8s non-2xx %s\n' "$name" "$r" "$rps" "$p50" "$p90" "$p99" "${non2xx:-0}"
  done
}

echo "== $(date -u +%FT%TZ)  wrk -t$THREADS -c$CONNECTIONS -d$DURATION  load: $(cut -d' ' -f1-3 /proc/loadavg)"
bench "bare ReverseProxy" "http://$BARE/api/x"
bench "keygate, repeated token" "http://$KEYGATE/api/x" -H "Authorization: Bearer $token"
TOKENS="$work/tokens.txt" bench "keygate, 2000 tokens" "http://$KEYGATE/api/x" -s "$root/bench/proxyload/tokens.lua"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
