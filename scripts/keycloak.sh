#!/usr/bin/env bash
# Run a real Keycloak on loopback for keygate's e2e tests.
#
#   scripts/keycloak.sh fetch    download (Maven Central) + unpack into the cache, once
#   scripts/keycloak.sh start    fresh dev-file DB, import e2e/testdata/*-realm.json, wait until ready
#   scripts/keycloak.sh stop     SIGTERM, wait, SIGKILL; idempotent
#   scripts/keycloak.sh restart  stop + start
#   scripts/keycloak.sh status   exit 0 = running and ready, 1 = running but not ready, 3 = not running
#   scripts/keycloak.sh env      print `export ...` lines for the Go e2e tests
#   scripts/keycloak.sh logs [N] print the last N (default 80) lines of the server log
#
# Environment (all optional):
#   KEYCLOAK_VERSION   Keycloak version (default below, pinned)
#   KEYGATE_CACHE      cache dir (default <repo>/.cache); Keycloak lands in $KEYGATE_CACHE/keycloak-<version>
#   KC_PORT            HTTP port on 127.0.0.1 (default 18080)
#   KC_MGMT_PORT       management (health) port on 127.0.0.1 (default 19000)
#   KC_START_TIMEOUT   seconds to wait for readiness (default 240)
#   KC_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL (default 30)
#   KC_BOOTSTRAP_ADMIN_USERNAME / KC_BOOTSTRAP_ADMIN_PASSWORD   master-realm admin (default admin/admin)
#   KEYCLOAK_JAVA_HOME JDK to run Keycloak with (default: first found of Temurin 25, JDK 21, JDK 17)
#
# Never interactive; works from any cwd, with CI=true and without stdin.
set -euo pipefail

KC_VERSION="${KEYCLOAK_VERSION:-26.7.3}"
KC_DIST_GAV="org.keycloak:keycloak-quarkus-dist:${KC_VERSION}:tar.gz"
MVN_DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
TESTDATA_DIR="${REPO_ROOT}/e2e/testdata"

KC_HOST="127.0.0.1"
KC_PORT="${KC_PORT:-18080}"
KC_MGMT_PORT="${KC_MGMT_PORT:-19000}"
KC_START_TIMEOUT="${KC_START_TIMEOUT:-240}"
KC_STOP_TIMEOUT="${KC_STOP_TIMEOUT:-30}"
KC_ADMIN_USER="${KC_BOOTSTRAP_ADMIN_USERNAME:-admin}"
KC_ADMIN_PASS="${KC_BOOTSTRAP_ADMIN_PASSWORD:-admin}"
KC_REALM="keygate"
KC_OTHER_REALM="other"

KC_URL="http://${KC_HOST}:${KC_PORT}"
KC_MGMT_URL="http://${KC_HOST}:${KC_MGMT_PORT}"

log() { printf '[keycloak.sh] %s\n' "$*" >&2; }
die() { printf '[keycloak.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# --- paths -------------------------------------------------------------------

resolve_cache_dir() {
  local c="${KEYGATE_CACHE:-${REPO_ROOT}/.cache}"
  mkdir -p "$c" || die "cannot create cache dir $c"
  CACHE_DIR="$(cd "$c" && pwd -P)"
  KC_HOME="${CACHE_DIR}/keycloak-${KC_VERSION}"
  RUN_DIR="${CACHE_DIR}/keycloak-run"
  PID_FILE="${RUN_DIR}/keycloak.pid"
  LOG_FILE="${RUN_DIR}/keycloak.log"
  HOME_FILE="${RUN_DIR}/keycloak.home"   # KC_HOME of the running instance
}

# --- java --------------------------------------------------------------------

java_major() { # $1 = path to java binary; prints the feature version (17, 21, 25, ...)
  local v
  v="$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -n1)"
  v="${v#1.}"
  printf '%s' "${v%%.*}"
}

select_java() {
  local candidates=() c m
  if [[ -n "${KEYCLOAK_JAVA_HOME:-}" ]]; then
    [[ -x "${KEYCLOAK_JAVA_HOME}/bin/java" ]] || die "KEYCLOAK_JAVA_HOME=${KEYCLOAK_JAVA_HOME} has no bin/java"
    candidates+=("${KEYCLOAK_JAVA_HOME}")
  fi
  candidates+=(
    /usr/lib/jvm/temurin-25-jdk-amd64
    /usr/lib/jvm/temurin-25-jdk-arm64
    /usr/lib/jvm/temurin-21-jdk-amd64
    /usr/lib/jvm/java-21-openjdk-amd64
    /usr/lib/jvm/java-17-openjdk-amd64
  )
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("${JAVA_HOME}")
  if command -v java >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  for c in "${candidates[@]}"; do
    [[ -x "$c/bin/java" ]] || continue
    m="$(java_major "$c/bin/java")"
    if [[ "$m" =~ ^[0-9]+$ ]] && (( m >= 17 )); then
      KC_JAVA_HOME="$c"
      KC_JAVA_MAJOR="$m"
      return 0
    fi
    if [[ -n "${KEYCLOAK_JAVA_HOME:-}" && "$c" == "${KEYCLOAK_JAVA_HOME}" ]]; then
      die "KEYCLOAK_JAVA_HOME=$c is Java '$m'; Keycloak ${KC_VERSION} needs Java 17 or newer"
    fi
  done
  die "no JDK >= 17 found (set KEYCLOAK_JAVA_HOME)"
}

# --- process helpers ---------------------------------------------------------

# True if process $1 is one of ours: kc.sh or a Keycloak JVM from a Keycloak unpacked in our
# cache dir (matched on exact arguments, so unrelated processes are never picked up).
is_ours() {
  [[ -r "/proc/$1/cmdline" ]] || return 1
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | awk -v pfx="${CACHE_DIR}/keycloak-" '
    index($0, "-Dkc.home.dir=" pfx) == 1 { found = 1 }
    index($0, pfx) == 1 && $0 ~ /\/bin\/kc\.sh$/ { found = 1 }
    END { exit(found ? 0 : 1) }'
}

# Prints the pids of our Keycloak processes: kc.sh and its JVM (see is_ours), plus every member
# of the session started by `start` (its leader's pid is in the pid file) if that leader is ours.
our_pids() {
  local leader="" p
  if [[ -f "$PID_FILE" ]]; then
    leader="$(tr -dc '0-9' <"$PID_FILE" || true)"
  fi
  {
    if [[ -n "$leader" ]] && is_ours "$leader"; then
      echo "$leader"
      ps -e -o pid=,sid= 2>/dev/null | awk -v s="$leader" '$2 == s { print $1 }'
    fi
    # cheap pre-filter with grep, exact check with is_ours
    for p in $(grep -lsaF -- "${CACHE_DIR}/keycloak-" /proc/[0-9]*/cmdline 2>/dev/null || true); do
      p="${p#/proc/}"; p="${p%/cmdline}"
      is_ours "$p" && echo "$p"
    done
  } | sort -un | while read -r p; do
    [[ "$p" == "$$" || "$p" == "${BASHPID:-}" ]] && continue
    kill -0 "$p" 2>/dev/null && echo "$p"
  done
  return 0
}

oneline() { printf '%s' "$1" | tr '\n' ' '; }

is_running() { [[ -n "$(our_pids)" ]]; }

http_ok() { curl -fsS -o /dev/null --max-time 3 "$1" 2>/dev/null; }

is_ready() {
  http_ok "${KC_MGMT_URL}/health/ready" \
    && http_ok "${KC_URL}/realms/${KC_REALM}/.well-known/openid-configuration" \
    && http_ok "${KC_URL}/realms/${KC_OTHER_REALM}/.well-known/openid-configuration"
}

port_in_use() { # $1 = port on 127.0.0.1
  (exec 3<>"/dev/tcp/${KC_HOST}/$1") 2>/dev/null
}

tail_log() {
  local n="${1:-80}"
  if [[ -f "$LOG_FILE" ]]; then
    echo "----- last ${n} lines of ${LOG_FILE} -----" >&2
    tail -n "$n" "$LOG_FILE" >&2 || true
    echo "----- end of log -----" >&2
  else
    log "no log file at ${LOG_FILE}"
  fi
}

# --- commands ----------------------------------------------------------------

cmd_fetch() {
  resolve_cache_dir
  if [[ -f "${KC_HOME}/.keygate-unpacked" && -x "${KC_HOME}/bin/kc.sh" ]]; then
    log "Keycloak ${KC_VERSION} already unpacked in ${KC_HOME}"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (needed to fetch ${KC_DIST_GAV} from Maven Central)"
  command -v tar >/dev/null 2>&1 || die "tar not found"

  local dl="${CACHE_DIR}/downloads"
  local tgz="${dl}/keycloak-quarkus-dist-${KC_VERSION}.tar.gz"
  local t0=$SECONDS
  mkdir -p "$dl"
  if [[ ! -s "$tgz" ]] || ! gzip -t "$tgz" 2>/dev/null; then
    rm -f "$tgz"
    log "fetching ${KC_DIST_GAV} with Maven ..."
    # -C: fail on checksum mismatch; -B/-q: batch mode, no progress output. Maven's output is
    # kept in a file and shown only on failure.
    local mvn_log="${dl}/mvn-fetch.log"
    if ! mvn -B -q -C "${MVN_DEP_PLUGIN}:copy" \
        -Dartifact="${KC_DIST_GAV}" \
        -DoutputDirectory="$dl" \
        -Dmdep.overWriteReleases=true \
        -Dmdep.useBaseVersion=true \
        </dev/null >"$mvn_log" 2>&1; then
      sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | tail -n 40 >&2
      die "mvn dependency:copy of ${KC_DIST_GAV} failed (is Maven Central reachable?)"
    fi
    rm -f "$mvn_log"
    [[ -s "$tgz" ]] || die "expected ${tgz} after mvn dependency:copy, not found"
  fi

  log "unpacking $(basename "$tgz") ..."
  local tmp="${CACHE_DIR}/.unpack-keycloak-${KC_VERSION}.$$"
  rm -rf "$tmp" "${KC_HOME}"
  mkdir -p "$tmp"
  tar -xzf "$tgz" -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $tgz"; }
  [[ -x "${tmp}/keycloak-${KC_VERSION}/bin/kc.sh" ]] || { rm -rf "$tmp"; die "unexpected archive layout in $tgz"; }
  mv "${tmp}/keycloak-${KC_VERSION}" "${KC_HOME}"
  rm -rf "$tmp"
  date -u +%Y-%m-%dT%H:%M:%SZ >"${KC_HOME}/.keygate-unpacked"
  # The tarball is also in the local Maven repository; don't keep a second copy.
  rm -f "$tgz"
  log "Keycloak ${KC_VERSION} ready in ${KC_HOME} (fetch took $((SECONDS - t0)) s)"
}

cmd_start() {
  resolve_cache_dir
  command -v curl >/dev/null 2>&1 || die "curl not found"

  if is_running; then
    if is_ready; then
      log "Keycloak already running (pid $(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || echo '?')) and ready at ${KC_URL}; use 'restart' for a fresh realm import"
      return 0
    fi
    log "a Keycloak from ${CACHE_DIR} is running but not ready; restarting it"
    cmd_stop
  fi

  cmd_fetch
  select_java

  local p
  for p in "$KC_PORT" "$KC_MGMT_PORT"; do
    port_in_use "$p" && die "port ${KC_HOST}:${p} is already in use by another process (set KC_PORT / KC_MGMT_PORT)"
  done

  shopt -s nullglob
  local realms=("${TESTDATA_DIR}"/*-realm.json)
  shopt -u nullglob
  (( ${#realms[@]} > 0 )) || die "no realm files ${TESTDATA_DIR}/*-realm.json"

  # fresh dev-file database => clean realm import on every start
  rm -rf "${KC_HOME}/data"
  mkdir -p "${KC_HOME}/data/import" "$RUN_DIR"
  cp "${realms[@]}" "${KC_HOME}/data/import/"
  rm -f "$PID_FILE"
  : >"$LOG_FILE"
  echo "$KC_HOME" >"$HOME_FILE"

  log "starting Keycloak ${KC_VERSION} (Java ${KC_JAVA_MAJOR}: ${KC_JAVA_HOME}) on ${KC_URL}, management ${KC_MGMT_URL}"
  log "log file: ${LOG_FILE}"
  local t0=$SECONDS
  # setsid: own session/process group, so `stop` can signal kc.sh and its JVM together.
  # Our own KC_PORT/KC_MGMT_PORT are removed from the environment: Keycloak reads KC_* variables
  # as its configuration. JAVA_OPTS & co are left to the caller.
  # shellcheck disable=SC2016 # $$ and $@ are expanded by the launcher shell
  env -u KC_PORT -u KC_MGMT_PORT -u KC_START_TIMEOUT -u KC_STOP_TIMEOUT \
    JAVA_HOME="$KC_JAVA_HOME" \
    KC_BOOTSTRAP_ADMIN_USERNAME="$KC_ADMIN_USER" \
    KC_BOOTSTRAP_ADMIN_PASSWORD="$KC_ADMIN_PASS" \
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' keycloak-launcher "$PID_FILE" \
      "${KC_HOME}/bin/kc.sh" start-dev \
        --http-host="${KC_HOST}" \
        --http-port="${KC_PORT}" \
        --hostname="${KC_URL}" \
        --http-management-port="${KC_MGMT_PORT}" \
        --http-management-host="${KC_HOST}" \
        --health-enabled=true \
        --import-realm \
        --db=dev-file \
    </dev/null >>"$LOG_FILE" 2>&1 &
  local launcher=$!

  local pid=""
  while (( SECONDS - t0 < 10 )); do
    [[ -s "$PID_FILE" ]] && { pid="$(tr -dc '0-9' <"$PID_FILE")"; break; }
    sleep 0.1
  done
  [[ -n "$pid" ]] || pid="$launcher"
  echo "$pid" >"$PID_FILE"

  while :; do
    if is_ready; then
      log "Keycloak ready after $((SECONDS - t0)) s (pid ${pid})"
      echo "Keycloak ${KC_VERSION} started in $((SECONDS - t0)) s: ${KC_URL} (realms ${KC_REALM}, ${KC_OTHER_REALM})"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "Keycloak process ${pid} exited during startup"
      tail_log 80
      cmd_stop >/dev/null 2>&1 || true
      exit 1
    fi
    if (( SECONDS - t0 >= KC_START_TIMEOUT )); then
      log "Keycloak not ready after ${KC_START_TIMEOUT} s"
      tail_log 80
      cmd_stop || true
      exit 1
    fi
    sleep 1
  done
}

cmd_stop() {
  resolve_cache_dir
  local pids leader=""
  pids="$(our_pids)"
  if [[ -z "$pids" ]]; then
    rm -f "$PID_FILE"
    log "Keycloak not running"
    return 0
  fi
  [[ -f "$PID_FILE" ]] && leader="$(tr -dc '0-9' <"$PID_FILE" || true)"
  log "stopping Keycloak (pids: $(oneline "$pids"))"
  # SIGTERM the whole process group first (kc.sh forwards it to the JVM as well), then each pid
  if [[ -n "$leader" ]]; then kill -TERM -- "-${leader}" 2>/dev/null || true; fi
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  local t0=$SECONDS
  while [[ -n "$(our_pids)" ]] && (( SECONDS - t0 < KC_STOP_TIMEOUT )); do
    sleep 0.5
  done
  pids="$(our_pids)"
  if [[ -n "$pids" ]]; then
    log "still running after ${KC_STOP_TIMEOUT} s, sending SIGKILL to $(oneline "$pids")"
    if [[ -n "$leader" ]]; then kill -KILL -- "-${leader}" 2>/dev/null || true; fi
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    t0=$SECONDS
    while [[ -n "$(our_pids)" ]] && (( SECONDS - t0 < 10 )); do sleep 0.2; done
    [[ -z "$(our_pids)" ]] || die "could not kill Keycloak processes: $(oneline "$(our_pids)")"
  fi
  rm -f "$PID_FILE"
  log "Keycloak stopped"
}

cmd_status() {
  resolve_cache_dir
  local pids
  pids="$(our_pids)"
  if [[ -z "$pids" ]]; then
    echo "Keycloak: not running"
    return 3
  fi
  if is_ready; then
    echo "Keycloak: running and ready (pids $(oneline "$pids")) at ${KC_URL}, home $(cat "$HOME_FILE" 2>/dev/null || echo '?')"
    return 0
  fi
  echo "Keycloak: running but NOT ready (pids $(oneline "$pids")); log: ${LOG_FILE}"
  return 1
}

cmd_env() {
  resolve_cache_dir
  cat <<EOF
export KEYCLOAK_URL=${KC_URL}
export KEYCLOAK_MANAGEMENT_URL=${KC_MGMT_URL}
export KEYCLOAK_REALM=${KC_REALM}
export KEYCLOAK_ISSUER=${KC_URL}/realms/${KC_REALM}
export KEYCLOAK_JWKS_URL=${KC_URL}/realms/${KC_REALM}/protocol/openid-connect/certs
export KEYCLOAK_TOKEN_URL=${KC_URL}/realms/${KC_REALM}/protocol/openid-connect/token
export KEYCLOAK_OTHER_REALM=${KC_OTHER_REALM}
export KEYCLOAK_OTHER_ISSUER=${KC_URL}/realms/${KC_OTHER_REALM}
export KEYCLOAK_ADMIN_USERNAME=${KC_ADMIN_USER}
export KEYCLOAK_ADMIN_PASSWORD=${KC_ADMIN_PASS}
export KEYCLOAK_VERSION=${KC_VERSION}
EOF
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    env) cmd_env ;;
    logs) resolve_cache_dir; tail_log "${1:-80}" 2>&1 ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
