#!/usr/bin/env bash
# make bench-proxy: wrk on loopback through the keygate proxy and through a
# bare httputil.ReverseProxy and through a verify-each-request floor proxy
# to the same upstream (BENCHMARKS.md), each with one repeated token and
# with TOKENS distinct ones.
#
#   DURATION (default 15s), CONNECTIONS (32), THREADS (1), RUNS (3)
#   NTOKENS (20000): distinct tokens minted for the distinct-token cases
#   PROFILE: a directory; during the first round, perf record (cpu-clock
#   samples with call graphs) profiles keygate and the bare proxy for 5 s of each of their
#   cases into PROFILE/NAME.perf.data (read them with perf report)
#   BASELINE_REV: also build keygate at this git revision and measure it in
#   the same rounds (e.g. BASELINE_REV=138450f), to see what a change cost.
#   VARIANT_TAGS: also build keygate with these build tags, comma-separated (e.g.
#   keygate_noextauthz, the build without ext_authz) and measure it in the
#   same rounds as "keygate[TAGS]".
#   HOT: also run the bare proxy and keygate (and the VARIANT_TAGS build;
#   not the floor) with the first HOT of the distinct tokens (e.g. 4000):
#   a set that comes back while keygate's cache can hold it, so that the
#   cache fills up, the case that sets keygate's peak memory.
#   CASES: run only the cases whose name matches this extended regular
#   expression (grep -E), e.g. CASES='^keygate' or CASES='tokens$'; the
#   processes of the others still start. Empty: every case.
#   LOGS: a directory to copy the servers' logs (standard error) into at
#   the end, e.g. with KEYGATE_ENV=GODEBUG=gctrace=1 for the collector's.
#   KEYGATE_ENV: NAME=value words added to the environment of the keygate
#   under test and of its VARIANT_TAGS build only (not the baseline, the
#   other proxies or the load side), such as "GOGC=200 GOMEMLIMIT=28MiB".
#   MEMTRACE: a file; every 100 ms, keygate's resident memory (RssAnon and
#   RssFile of /proc/PID/status, in KiB) is appended to it, with a line
#   naming each case as it starts, to find when a peak happens.
#   MAX_LOAD (1.0): wait until the 1-minute load average is below this
#   before measuring, for at most LOAD_WAIT seconds (900); empty: no wait.
#
# Where taskset exists and there are at least 2 cores, each proxy under
# test runs alone on core 1 and everything else (wrk, the upstream, the
# issuer) on core 0, so that the load generator does not hide what the
# proxy costs. CPU per request is the proxy process's user+system time
# (/proc/PID/stat) over the requests wrk completed; rss is the proxy's
# resident set after the run (VmRSS), and the peak of each process
# (VmHWM) is printed at the end. bench/proxychart turns the output into
# a table of medians and an SVG chart.
#
# Each round runs every case in turn, so that a load that drifts during
# the runs affects every case alike, and starts with another proxy than
# the round before.
#
# Everything listens on 127.0.0.1 and is stopped on exit. wrk is installed
# from Debian's packages when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
GO="${GO:-go}"
DURATION="${DURATION:-15s}" CONNECTIONS="${CONNECTIONS:-32}" THREADS="${THREADS:-1}" RUNS="${RUNS:-3}"
MAX_LOAD="${MAX_LOAD-1.0}" LOAD_WAIT="${LOAD_WAIT:-900}" BASELINE_REV="${BASELINE_REV:-}"
NTOKENS="${NTOKENS:-20000}" PROFILE="${PROFILE:-}" CASES="${CASES:-}"

if ! command -v wrk >/dev/null 2>&1; then
  sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
fi

# Pinning: the proxy under test on core 1, the rest on core 0.
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  on_test=(taskset -c 1) on_load=(taskset -c 0) pinned="proxy on core 1; wrk, upstream, issuer on core 0"
else
  on_test=() on_load=() pinned="not pinned (no taskset or 1 core): wrk shares the proxy's cores"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$BASELINE_REV" ]; then git -C "$root" worktree remove --force "$work/base" 2>/dev/null || true; fi
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$work"/*.log "$LOGS"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && "$GO" build -o "$work/keygate" ./cmd/keygate)
(cd "$root/bench" && "$GO" build -o "$work/proxyload" ./proxyload)
VARIANT_TAGS="${VARIANT_TAGS:-}"
if [ -n "$VARIANT_TAGS" ]; then
  (cd "$root" && "$GO" build -tags "$VARIANT_TAGS" -o "$work/keygate-variant" ./cmd/keygate)
fi
if [ -n "$BASELINE_REV" ]; then
  git -C "$root" worktree add -q --detach "$work/base" "$BASELINE_REV"
  (cd "$work/base" && "$GO" build -o "$work/keygate-base" ./cmd/keygate)
fi

"${on_load[@]}" "$work/proxyload" -dir "$work" -tokens "$NTOKENS" >"$work/env" 2>"$work/proxyload.log" &
pids+=($!)
# Minting takes about 1.5 ms per token.
for _ in $(seq 1500); do [ -s "$work/env" ] && grep -q ISSUER "$work/env" && break; sleep 0.2; done
# shellcheck disable=SC1091
. "$work/env"
"${on_test[@]}" "$work/proxyload" -bare "$UPSTREAM" >"$work/bare.env" 2>"$work/bare.log" &
bare_pid=$!
pids+=($!)
for _ in $(seq 100); do grep -q BARE "$work/bare.env" && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/bare.env"
"${on_test[@]}" "$work/proxyload" -floor "$UPSTREAM" -issuer "$ISSUER" >"$work/floor.env" 2>"$work/floor.log" &
floor_pid=$!
pids+=($!)
for _ in $(seq 100); do grep -q FLOOR "$work/floor.env" && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/floor.env"
if [ -n "$PROFILE" ]; then mkdir -p "$PROFILE"; fi
keygate_env=()
# shellcheck disable=SC2206 # KEYGATE_ENV is a list of NAME=value words
if [ -n "${KEYGATE_ENV:-}" ]; then keygate_env=(env $KEYGATE_ENV); fi
"${on_test[@]}" "${keygate_env[@]}" "$work/keygate" serve --config "$work/keygate.yaml" 2>"$work/keygate.log" &
keygate_pid=$!
pids+=($!)
if [ -n "$BASELINE_REV" ]; then
  BASE="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  sed "s/^listen: .*/listen: $BASE/" "$work/keygate.yaml" >"$work/keygate-base.yaml"
  # Before the access: block (authz.Config), the rules were under rules:.
  if ! "$work/keygate-base" config check "$work/keygate-base.yaml" >/dev/null 2>&1; then
    sed -i 's/^access:/rules:/' "$work/keygate-base.yaml"
  fi
  "${on_test[@]}" "$work/keygate-base" serve --config "$work/keygate-base.yaml" 2>"$work/keygate-base.log" &
  base_pid=$!
  pids+=($!)
fi
if [ -n "$VARIANT_TAGS" ]; then
  VARIANT="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  sed "s/^listen: .*/listen: $VARIANT/" "$work/keygate.yaml" >"$work/keygate-variant.yaml"
  "${on_test[@]}" "${keygate_env[@]}" "$work/keygate-variant" serve --config "$work/keygate-variant.yaml" 2>"$work/keygate-variant.log" &
  variant_pid=$!
  pids+=($!)
fi
token="$(cat "$work/token.txt")"

# ready ADDR PID: the server on ADDR answers 200 to the token, and it is
# the process we started (it still runs).
ready() {
  for _ in $(seq 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://$1/api/x")" = 200 ] && kill -0 "$2"; then
      return 0
    fi
    sleep 0.2
  done
  echo "bench-proxy: $1 does not answer 200" >&2
  cat "$work"/*.log >&2
  exit 1
}
ready "$KEYGATE" "$keygate_pid"
ready "$BARE" "$bare_pid"
ready "$FLOOR" "$floor_pid"
if [ -n "$BASELINE_REV" ]; then ready "$BASE" "$base_pid"; fi
if [ -n "$VARIANT_TAGS" ]; then ready "$VARIANT" "$variant_pid"; fi

# cpu PID: user+system clock ticks the process has used.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
# mem PID FIELD: VmRSS or VmHWM of the process, in MiB.
mem() { awk -v f="$2:" '$1==f {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# bench NAME RUN PID URL [wrk args...]: one wrk run; prints one line.
bench() {
  local name=$1 r=$2 pid=$3 url=$4; shift 4
  if [ -n "$CASES" ] && ! grep -Eq -- "$CASES" <<<"$name"; then return 0; fi
  local c0 c1 out prof=""
  if [ -n "${MEMTRACE:-}" ]; then echo "# $(date +%s.%N) $name run $r" >>"$MEMTRACE"; fi
  if [ -n "$PROFILE" ] && [ "$r" = 1 ] && { [ "$pid" = "$keygate_pid" ] || [ "$pid" = "$bare_pid" ]; }; then
    # The samples cost the proxy a little CPU: this round's figures are
    # profiled ones.
    (sleep 2; "${on_load[@]}" perf record -q -e cpu-clock -F 1999 -g -p "$pid" \
      -o "$PROFILE/$(tr -c 'a-z0-9\n' - <<<"$name").perf.data" -- sleep 5 >/dev/null 2>&1) &
    prof=$!
  fi
  c0="$(cpu "$pid")"
  out="$("${on_load[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")"
  c1="$(cpu "$pid")"
  if [ -n "$prof" ]; then wait "$prof" || true; fi
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  n="$(awk '/requests in/ {print $1}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  errors="$(awk '/Socket errors/ {$1=$2=""; print}' <<<"$out")"
  cpu_us="$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')"
  printf '%-36s run %s  %10s req/s  %6s µs CPU/req  p50 %-8s p99 %-8s rss %5s MiB  non-2xx %s%s\n' \
    "$name" "$r" "$rps" "$cpu_us" "$p50" "$p99" "$(mem "$pid" VmRSS)" "${non2xx:-0}" "${errors:+  socket errors:$errors}"
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

if [ -n "${MEMTRACE:-}" ]; then
  : >"$MEMTRACE"
  while kill -0 "$keygate_pid" 2>/dev/null; do
    awk -v t="$(date +%s.%N)" '$1=="RssAnon:" {a=$2} $1=="RssFile:" {f=$2} $1=="VmHWM:" {h=$2} END {print t, a, f, h}' "/proc/$keygate_pid/status" >>"$MEMTRACE" 2>/dev/null || break
    sleep 0.1
  done &
  pids+=($!)
fi
echo "== $(date -u +%FT%TZ)  $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+changes')  wrk -t$THREADS -c$CONNECTIONS -d$DURATION  load: $(cut -d' ' -f1-3 /proc/loadavg)  $pinned"
# Every case sends an Authorization header, the bare proxy's too, so that
# each moves the same bytes.
many="$NTOKENS tokens"
HOT="${HOT:-}"
if [ -n "$HOT" ]; then head -n "$HOT" "$work/tokens.txt" >"$work/hot.txt"; fi
hot="$HOT tokens, hot"
# target NAME PID ADDR ROUND: every case of one proxy, in turn.
target() {
  local name=$1 pid=$2 addr=$3 r=$4 lua="$root/bench/proxyload/tokens.lua"
  bench "$name, repeated" "$r" "$pid" "http://$addr/api/x" -H "Authorization: Bearer $token"
  TOKENS="$work/tokens.txt" bench "$name, $many" "$r" "$pid" "http://$addr/api/x" -s "$lua"
  if [ -n "$HOT" ] && [ "$name" != floor ]; then
    TOKENS="$work/hot.txt" bench "$name, $hot" "$r" "$pid" "http://$addr/api/x" -s "$lua"
  fi
}
targets=("bare $bare_pid $BARE" "floor $floor_pid $FLOOR" "keygate $keygate_pid $KEYGATE")
if [ -n "$VARIANT_TAGS" ]; then targets+=("keygate[$VARIANT_TAGS] $variant_pid $VARIANT"); fi
if [ -n "$BASELINE_REV" ]; then targets+=("keygate@$BASELINE_REV $base_pid $BASE"); fi
for r in $(seq "$RUNS"); do
  echo "== round $r  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  # Each round starts one proxy later than the last, so that a load
  # that drifts within a round does not always favour the same one.
  for i in $(seq 0 $((${#targets[@]} - 1))); do
    # shellcheck disable=SC2086 # the words of one target
    target ${targets[$(((i + r - 1) % ${#targets[@]}))]} "$r"
  done
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# rss_parts PID: the resident set's anonymous and file-backed parts now.
rss_parts() { awk '$1=="RssAnon:" {a=$2} $1=="RssFile:" {f=$2} END {printf "anon %.1f + file %.1f", a/1024, f/1024}' "/proc/$1/status"; }
echo "== resident now (MiB): bare $(rss_parts "$bare_pid")  floor $(rss_parts "$floor_pid")  keygate $(rss_parts "$keygate_pid")${VARIANT_TAGS:+  keygate[$VARIANT_TAGS] $(rss_parts "$variant_pid")}"
echo "== peak RSS (VmHWM): bare $(mem "$bare_pid" VmHWM) MiB  floor $(mem "$floor_pid" VmHWM) MiB  keygate $(mem "$keygate_pid" VmHWM) MiB${VARIANT_TAGS:+  keygate[$VARIANT_TAGS] $(mem "$variant_pid" VmHWM) MiB}${BASELINE_REV:+  keygate@$BASELINE_REV $(mem "$base_pid" VmHWM) MiB}"
