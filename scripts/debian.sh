# Sourced by the test scripts: debian_install installs Debian packages
# without starting their services, then stops any that started anyway
# (the tests start their own servers on loopback; none may stay on a
# public port).
#
#   debian_install "<services to stop>" "<pid files>" package...

debian_install() {
  local services=$1 pidfiles=$2
  shift 2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if ((made_policy)); then "${sudo[@]}" rm -f "$policy"; fi
  if [ -d /run/systemd/system ]; then
    # shellcheck disable=SC2086 # a list of unit names
    "${sudo[@]}" systemctl stop $services 2>/dev/null || true
  else
    local f
    for f in $pidfiles; do
      if [ -s "$f" ]; then "${sudo[@]}" kill "$(cat "$f")" 2>/dev/null || true; fi
    done
  fi
}
