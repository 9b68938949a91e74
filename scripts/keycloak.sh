#!/usr/bin/env bash
# Run a real Keycloak on loopback for keygate's e2e tests.
#
# Every run has its own state dir (KEYGATE_KEYCLOAK_STATE): the ports it chose, the pid of the Keycloak it
# launched, that Keycloak's home (configuration, H2 database, realm import; the 170 MB of jars
# are shared with the cache) and its log. Commands act only on the process recorded there, and
# only after checking that it is that Keycloak (its command line names the run's home); "ready"
# also requires that the processes listening on the run's ports are that Keycloak. So runs on one
# machine, even from one cache, never see or stop each other.
#
#   export KEYGATE_KEYCLOAK_STATE="$(scripts/keycloak.sh new)"   make a state dir for a run (prints its path)
#   scripts/keycloak.sh fetch    download (Maven Central) + unpack into the cache, once
#   scripts/keycloak.sh start    pick free ports (first start of the run), fresh dev-file DB, import
#                                e2e/testdata/*-realm.json, wait until ready; a later start of the
#                                same run reuses its ports, so URLs stay valid
#   scripts/keycloak.sh stop     SIGTERM, wait, SIGKILL the run's Keycloak; idempotent
#   scripts/keycloak.sh restart  stop + start
#   scripts/keycloak.sh status   exit 0 = running and ready, 1 = running but not ready, 3 = not running
#   scripts/keycloak.sh env      print `export ...` lines for the Go e2e tests
#   scripts/keycloak.sh logs [N] print the last N (default 80) lines of the server log
#   scripts/keycloak.sh clean    stop, then delete the state dir
#
# Environment (all optional but KEYGATE_KEYCLOAK_STATE, which every command except new, fetch and help needs):
#   KEYGATE_KEYCLOAK_STATE       the run's state dir, made by `new`
#   KEYCLOAK_VERSION   Keycloak version (default below, pinned)
#   KEYGATE_CACHE      cache dir (default <repo>/.cache); Keycloak lands in $KEYGATE_CACHE/keycloak-<version>
#   KC_PORT            HTTP port on 127.0.0.1 (default: a free port, chosen at the run's first start)
#   KC_MGMT_PORT       management (health) port on 127.0.0.1 (default: a free port, likewise)
#   KC_START_TIMEOUT   seconds to wait for readiness (default 360)
#   KC_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL (default 30)
#   KC_BOOTSTRAP_ADMIN_USERNAME / KC_BOOTSTRAP_ADMIN_PASSWORD   master-realm admin (default admin/admin)
#   KEYCLOAK_JAVA_HOME JDK to run Keycloak with (default: first found of Temurin 25, JDK 21, JDK 17)
#
# Never interactive; works from any cwd, with CI=true and without stdin. Needs ss (iproute2).
set -euo pipefail

KC_VERSION="${KEYCLOAK_VERSION:-26.7.3}"
KC_DIST_GAV="org.keycloak:keycloak-quarkus-dist:${KC_VERSION}:tar.gz"
MVN_DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
TESTDATA_DIR="${REPO_ROOT}/e2e/testdata"

KC_HOST="127.0.0.1"
ENV_KC_PORT="${KC_PORT:-}"          # fixed ports asked for by the caller, if any
ENV_KC_MGMT_PORT="${KC_MGMT_PORT:-}"
KC_START_TIMEOUT="${KC_START_TIMEOUT:-360}"
KC_STOP_TIMEOUT="${KC_STOP_TIMEOUT:-30}"
KC_ADMIN_USER="${KC_BOOTSTRAP_ADMIN_USERNAME:-admin}"
KC_ADMIN_PASS="${KC_BOOTSTRAP_ADMIN_PASSWORD:-admin}"
KC_REALM="keygate"
KC_OTHER_REALM="other"
STATE_MARK=".keygate-keycloak-state"

log() { printf '[keycloak.sh] %s\n' "$*" >&2; }
die() { printf '[keycloak.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# --- paths -------------------------------------------------------------------

resolve_cache_dir() {
  local c="${KEYGATE_CACHE:-${REPO_ROOT}/.cache}"
  mkdir -p "$c" || die "cannot create cache dir $c"
  CACHE_DIR="$(cd "$c" && pwd -P)"
  KC_HOME="${CACHE_DIR}/keycloak-${KC_VERSION}"   # shared, read-only once unpacked and augmented
}

# resolve_state_dir sets the run's paths from KEYGATE_KEYCLOAK_STATE, and its ports if a start chose them.
resolve_state_dir() {
  resolve_cache_dir
  [[ -n "${KEYGATE_KEYCLOAK_STATE:-}" ]] || die 'KEYGATE_KEYCLOAK_STATE is not set; make one with: export KEYGATE_KEYCLOAK_STATE="$(scripts/keycloak.sh new)"'
  [[ -f "${KEYGATE_KEYCLOAK_STATE}/${STATE_MARK}" ]] || die "KEYGATE_KEYCLOAK_STATE=${KEYGATE_KEYCLOAK_STATE} is not a state dir made by 'scripts/keycloak.sh new'"
  STATE_DIR="$(cd "$KEYGATE_KEYCLOAK_STATE" && pwd -P)"
  RUN_HOME="${STATE_DIR}/home"          # this run's Keycloak home
  PID_FILE="${STATE_DIR}/keycloak.pid"  # session leader of this run's Keycloak (kc.sh)
  LOG_FILE="${STATE_DIR}/keycloak.log"
  PORTS_FILE="${STATE_DIR}/ports"
  KC_PORT="" KC_MGMT_PORT=""
  if [[ -f "$PORTS_FILE" ]]; then
    # shellcheck disable=SC1090 # two lines written by choose_ports
    source "$PORTS_FILE"
  fi
  set_urls
}

set_urls() {
  KC_URL="http://${KC_HOST}:${KC_PORT}"
  KC_MGMT_URL="http://${KC_HOST}:${KC_MGMT_PORT}"
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

# True if process $1 belongs to this run's Keycloak: kc.sh or its JVM, whose command lines name
# the run's home (kc.sh by its path, the JVM by -Dkc.home.dir). A recycled pid fails this check.
is_ours() {
  [[ "$1" =~ ^[0-9]+$ && -r "/proc/$1/cmdline" ]] || return 1
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "${RUN_HOME}/"
}

leader_pid() { # prints the recorded session leader if it is alive and ours
  local p=""
  [[ -f "$PID_FILE" ]] && p="$(tr -dc '0-9' <"$PID_FILE" || true)"
  [[ -n "$p" ]] && is_ours "$p" && echo "$p"
  return 0
}

# Prints the pids of this run's Keycloak: the recorded leader and every process of its session,
# each checked with is_ours. Nothing else is ever listed, so nothing else is ever signalled.
our_pids() {
  local leader="" p
  [[ -f "$PID_FILE" ]] && leader="$(tr -dc '0-9' <"$PID_FILE" || true)"
  [[ -n "$leader" ]] || return 0
  { echo "$leader"; ps -e -o pid=,sid= 2>/dev/null | awk -v s="$leader" '$2 == s { print $1 }'; } \
    | sort -un | while read -r p; do
      [[ "$p" == "$$" || "$p" == "${BASHPID:-}" ]] && continue
      is_ours "$p" && echo "$p"
    done
  return 0
}

oneline() { printf '%s' "$1" | tr '\n' ' '; }

is_running() { [[ -n "$(our_pids)" ]]; }

listeners() { # $1 = port on 127.0.0.1; prints the pids listening on it
  ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# True if something listens on port $1 and every listener is this run's Keycloak.
port_is_ours() {
  local p found=""
  for p in $(listeners "$1"); do
    is_ours "$p" || return 1
    found=1
  done
  [[ -n "$found" ]]
}

port_in_use() { # $1 = port on 127.0.0.1, by anyone (ss lists listeners of every user, pids or not)
  [[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]]
}

http_ok() { curl -fsS -o /dev/null --max-time 3 "$1" 2>/dev/null; }

# Ready: both ports are served by this run's Keycloak, health is UP and both realms answer.
is_ready() {
  [[ -n "$KC_PORT" && -n "$KC_MGMT_PORT" ]] \
    && port_is_ours "$KC_PORT" && port_is_ours "$KC_MGMT_PORT" \
    && http_ok "${KC_MGMT_URL}/health/ready" \
    && http_ok "${KC_URL}/realms/${KC_REALM}/.well-known/openid-configuration" \
    && http_ok "${KC_URL}/realms/${KC_OTHER_REALM}/.well-known/openid-configuration"
}

# A free port: random in 20000-32767 (below Linux's ephemeral range), not listened on.
free_port() {
  local p i
  for i in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 12768 ))
    [[ "$p" == "${1:-}" ]] && continue
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free port found in 20000-32767"
}

# choose_ports records the run's ports: KC_PORT/KC_MGMT_PORT from the environment, else free ones.
choose_ports() {
  KC_PORT="${ENV_KC_PORT:-}"
  KC_MGMT_PORT="${ENV_KC_MGMT_PORT:-}"
  [[ -n "$KC_PORT" ]] || KC_PORT="$(free_port)"
  [[ -n "$KC_MGMT_PORT" ]] || KC_MGMT_PORT="$(free_port "$KC_PORT")"
  printf 'KC_PORT=%s\nKC_MGMT_PORT=%s\n' "$KC_PORT" "$KC_MGMT_PORT" >"$PORTS_FILE"
  set_urls
}

# make_run_home builds the run's Keycloak home: small parts copied from the shared home, the jars
# (lib/lib) linked. lib/quarkus, which Keycloak rewrites when it re-augments, is the run's own.
make_run_home() {
  [[ -x "${RUN_HOME}/bin/kc.sh" ]] && return 0
  local tmp="${RUN_HOME}.tmp"
  rm -rf "$tmp"
  mkdir -p "${tmp}/lib"
  (
    flock -s 9 # keep_augmentation may be replacing lib/quarkus
    cp -a "${KC_HOME}/bin" "${KC_HOME}/conf" "${KC_HOME}/providers" "${KC_HOME}/themes" "${KC_HOME}/version.txt" "$tmp/"
    cp -a "${KC_HOME}/lib/app" "${KC_HOME}/lib/quarkus" "${KC_HOME}/lib/quarkus-run.jar" "${tmp}/lib/"
  ) 9>"${KC_HOME}.lock" || die "cannot copy ${KC_HOME} to ${tmp}"
  ln -s "${KC_HOME}/lib/lib" "${tmp}/lib/lib"
  mv "$tmp" "$RUN_HOME"
}

# keep_augmentation copies the run's lib/quarkus back to the shared home after the first
# successful start from it, so that later runs skip Quarkus' re-augmentation (~30-90 s). The copy
# replaces the shared one with a rename, under a lock, so a concurrent copy never sees half of it.
keep_augmentation() {
  [[ -f "${KC_HOME}/.keygate-augmented" ]] && return 0
  (
    flock 9
    [[ -f "${KC_HOME}/.keygate-augmented" ]] && exit 0
    local tmp="${KC_HOME}/lib/.quarkus.$$"
    rm -rf "$tmp" "${KC_HOME}/lib/.quarkus.old"
    cp -a "${RUN_HOME}/lib/quarkus" "$tmp"
    mv "${KC_HOME}/lib/quarkus" "${KC_HOME}/lib/.quarkus.old"
    mv "$tmp" "${KC_HOME}/lib/quarkus"
    rm -rf "${KC_HOME}/lib/.quarkus.old"
    date -u +%Y-%m-%dT%H:%M:%SZ >"${KC_HOME}/.keygate-augmented"
    log "kept the augmented build in ${KC_HOME}: later runs start faster"
  ) 9>"${KC_HOME}.lock" || log "could not keep the augmented build (harmless)"
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
  # One fetch at a time per cache: a second run waits, then finds Keycloak unpacked.
  exec 8>"${CACHE_DIR}/.fetch.lock"
  flock 8
  fetch_locked
  exec 8>&-
}

fetch_locked() {
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

cmd_new() {
  resolve_cache_dir
  local d
  d="$(mktemp -d "${TMPDIR:-/tmp}/keygate-keycloak.XXXXXX")" || die "cannot make a state dir"
  date -u +%Y-%m-%dT%H:%M:%SZ >"${d}/${STATE_MARK}"
  echo "$d"
}

cmd_start() {
  resolve_state_dir
  command -v curl >/dev/null 2>&1 || die "curl not found"
  command -v ss >/dev/null 2>&1 || die "ss not found (iproute2)"

  if is_running; then
    if is_ready; then
      log "Keycloak already running (pid $(leader_pid)) and ready at ${KC_URL}; use 'restart' for a fresh realm import"
      return 0
    fi
    log "this run's Keycloak is running but not ready; restarting it"
    cmd_stop
  fi

  cmd_fetch
  select_java

  shopt -s nullglob
  local realms=("${TESTDATA_DIR}"/*-realm.json)
  shopt -u nullglob
  (( ${#realms[@]} > 0 )) || die "no realm files ${TESTDATA_DIR}/*-realm.json"
  make_run_home

  # The first start of a run picks its ports; a later one (the outage test's) must get the same
  # ones back, since tokens and key sources hold the URL. Picked ports may be taken by another
  # process before Keycloak binds them: then pick again, up to three times.
  local attempt p fixed=""
  [[ -n "${KC_PORT}${ENV_KC_PORT}${ENV_KC_MGMT_PORT}" ]] && fixed=1
  for attempt in 1 2 3; do
    [[ -n "$KC_PORT" ]] || choose_ports
    for p in "$KC_PORT" "$KC_MGMT_PORT"; do
      if port_in_use "$p"; then
        [[ -n "$fixed" ]] && die "port ${KC_HOST}:${p} is already in use by another process (pids: $(oneline "$(listeners "$p")"))"
        KC_PORT=""
        continue 2
      fi
    done
    launch && return 0
    [[ -n "$fixed" ]] && exit 1
    grep -qiE 'address already in use|already bound|BindException' "$LOG_FILE" || exit 1
    log "attempt ${attempt}: lost a port to another process; picking others"
    KC_PORT=""
  done
  die "could not start Keycloak on free ports in 3 attempts"
}

# launch starts Keycloak on the run's ports and waits until it is ready. On failure it stops what
# it started and returns 1.
launch() {
  # fresh dev-file database => clean realm import on every start
  rm -rf "${RUN_HOME}/data"
  mkdir -p "${RUN_HOME}/data/import"
  cp "${TESTDATA_DIR}"/*-realm.json "${RUN_HOME}/data/import/"
  rm -f "$PID_FILE"
  : >"$LOG_FILE"

  log "starting Keycloak ${KC_VERSION} (Java ${KC_JAVA_MAJOR}: ${KC_JAVA_HOME}) on ${KC_URL}, management ${KC_MGMT_URL}"
  log "state dir: ${STATE_DIR} (log: ${LOG_FILE})"
  local t0=$SECONDS
  # setsid: own session/process group, so `stop` can signal kc.sh and its JVM together.
  # Our own KC_* variables are removed from the environment: Keycloak reads KC_* variables as
  # its configuration. JAVA_OPTS & co are left to the caller.
  # shellcheck disable=SC2016 # $$ and $@ are expanded by the launcher shell
  env -u KC_PORT -u KC_MGMT_PORT -u KC_START_TIMEOUT -u KC_STOP_TIMEOUT \
    JAVA_HOME="$KC_JAVA_HOME" \
    KC_BOOTSTRAP_ADMIN_USERNAME="$KC_ADMIN_USER" \
    KC_BOOTSTRAP_ADMIN_PASSWORD="$KC_ADMIN_PASS" \
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' keycloak-launcher "$PID_FILE" \
      "${RUN_HOME}/bin/kc.sh" start-dev \
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

  local p q
  while :; do
    if is_ready; then
      log "Keycloak ready after $((SECONDS - t0)) s (pid ${pid}; ports ${KC_PORT} and ${KC_MGMT_PORT} served by it)"
      echo "Keycloak ${KC_VERSION} started in $((SECONDS - t0)) s: ${KC_URL} (realms ${KC_REALM}, ${KC_OTHER_REALM}; pid ${pid})"
      keep_augmentation
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "Keycloak process ${pid} exited during startup"
      tail_log 80
      cmd_stop >/dev/null 2>&1 || true
      return 1
    fi
    for p in "$KC_PORT" "$KC_MGMT_PORT"; do
      for q in $(listeners "$p"); do
        if ! is_ours "$q"; then
          log "port ${p} is served by pid ${q}, not by the Keycloak this run started (pid ${pid})"
          tail_log 20
          cmd_stop || true
          return 1
        fi
      done
    done
    if (( SECONDS - t0 >= KC_START_TIMEOUT )); then
      log "Keycloak not ready after ${KC_START_TIMEOUT} s"
      tail_log 80
      cmd_stop || true
      return 1
    fi
    sleep 1
  done
}

cmd_stop() {
  resolve_state_dir
  local pids leader
  pids="$(our_pids)"
  if [[ -z "$pids" ]]; then
    rm -f "$PID_FILE"
    log "Keycloak not running"
    return 0
  fi
  leader="$(leader_pid)"
  log "stopping Keycloak (pids: $(oneline "$pids"))"
  # SIGTERM the process group first (kc.sh forwards it to the JVM as well), then each pid
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
  resolve_state_dir
  local pids
  pids="$(our_pids)"
  if [[ -z "$pids" ]]; then
    echo "Keycloak: not running (state dir ${STATE_DIR})"
    return 3
  fi
  if is_ready; then
    echo "Keycloak: running and ready (pids $(oneline "$pids")) at ${KC_URL}, home ${RUN_HOME}"
    return 0
  fi
  echo "Keycloak: running but NOT ready, or its ports are not served by it (pids $(oneline "$pids")); log: ${LOG_FILE}"
  return 1
}

cmd_env() {
  resolve_state_dir
  [[ -n "$KC_PORT" ]] || die "this run has no ports yet: run 'scripts/keycloak.sh start' first"
  cat <<EOF
export KEYGATE_KEYCLOAK_STATE=${STATE_DIR}
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

cmd_clean() {
  resolve_state_dir
  cmd_stop
  rm -rf "$STATE_DIR"
  log "removed ${STATE_DIR}"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    new) cmd_new ;;
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    env) cmd_env ;;
    logs) resolve_state_dir; tail_log "${1:-80}" 2>&1 ;;
    clean) cmd_clean ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
