#!/usr/bin/env bash
# make bench-proxy: wrk on loopback through the keygate proxy and through a
# bare httputil.ReverseProxy to the same upstream (BENCHMARKS.md).
#
#   DURATION (default 15s), CONNECTIONS (32), THREADS (2), RUNS (3)
#   MAX_LOAD (1.0): wait until the 1-minute load average is below this
#   before measuring, for at most LOAD_WAIT seconds (900); empty: no wait.
#
# Each round runs the three cases in turn, so that a load that drifts
# during the runs affects every case alike.
#
# Everything listens on 127.0.0.1 and is stopped on exit. wrk is installed
# from Debian's packages when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
GO="${GO:-go}"
DURATION="${DURATION:-15s}" CONNECTIONS="${CONNECTIONS:-32}" THREADS="${THREADS:-2}" RUNS="${RUNS:-3}"
MAX_LOAD="${MAX_LOAD-1.0}" LOAD_WAIT="${LOAD_WAIT:-900}"

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
"$work/proxyload" -bare "$UPSTREAM" >"$work/bare.env" 2>"$work/bare.log" &
pids+=($!)
for _ in $(seq 100); do grep -q BARE "$work/bare.env" && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/bare.env"
"$work/keygate" serve --config "$work/keygate.yaml" 2>"$work/keygate.log" &
pids+=($!)
token="$(cat "$work/token.txt")"
ready=0
for _ in $(seq 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$KEYGATE/api/x")" = 200 ]; then
    ready=1; break
  fi
  sleep 0.2
done
if ((!ready)); then
  echo "bench-proxy: keygate does not answer 200 on $KEYGATE" >&2
  cat "$work/proxyload.log" "$work/keygate.log" >&2
  exit 1
fi

# bench NAME RUN URL [wrk args...]: one wrk run; prints one line.
bench() {
  local name=$1 r=$2 url=$3; shift 3
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")"
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p90="$(awk '$1=="90%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  errors="$(awk '/Socket errors/ {$1=$2=""; print}' <<<"$out")"
  printf '%-26s run %s  %10s req/s  p50 %-8s p90 %-8s p99 %-8s non-2xx %s%s\n' \
    "$name" "$r" "$rps" "$p50" "$p90" "$p99" "${non2xx:-0}" "${errors:+  socket errors:$errors}"
}

load1() { cut -d' ' -f1 /proc/loadavg; }
if [ -n "$MAX_LOAD" ]; then
  waited=0
  while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN {exit !(l >= m)}'; do
    if ((waited >= LOAD_WAIT)); then
      echo "== load $(load1) still >= $MAX_LOAD after ${LOAD_WAIT}s; measuring anyway" >&2
      break
    fi
    ((waited % 60 == 0)) && echo "== waiting for the load average ($(load1)) to drop below $MAX_LOAD" >&2
    sleep 10; waited=$((waited + 10))
  done
fi

echo "== $(date -u +%FT%TZ)  wrk -t$THREADS -c$CONNECTIONS -d$DURATION  load: $(cut -d' ' -f1-3 /proc/loadavg)  $(nproc) cores shared by wrk, proxies, upstream, issuer"
for r in $(seq "$RUNS"); do
  bench "bare ReverseProxy" "$r" "http://$BARE/api/x"
  bench "keygate, repeated token" "$r" "http://$KEYGATE/api/x" -H "Authorization: Bearer $token"
  TOKENS="$work/tokens.txt" bench "keygate, 2000 tokens" "$r" "http://$KEYGATE/api/x" -s "$root/bench/proxyload/tokens.lua"
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
