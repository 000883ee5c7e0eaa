# Shared set-up steps for deploy/standalone.sh and deploy/test.sh. Each step is idempotent.
# Sourced, not run. Needs root on a fresh Debian machine (apt-get), as the README says.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${HOMERUN_VENV:-$ROOT/.venv}
APT_UPDATED=

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
  # apt_install PACKAGE...: install the Debian packages that are missing.
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_python() {
  if ! command -v python3 >/dev/null || ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    apt_install python3 python3-venv python3-dev
  fi
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
}

ensure_venv() {
  # ensure_venv EXTRAS: a virtualenv with Homerun installed (editable) and its extras.
  ensure_python
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  log "installing homerun${1:+[$1]} into $VENV"
  "$VENV/bin/pip" install -q -e "$ROOT${1:+[$1]}"
}

ensure_node() {
  # Node.js and npm: the compatibility suite drives Homerun with the `openwhisk` npm client, and
  # deploy/runtimes/build.sh installs each nodejs kind's node and modules with npm ci.
  if command -v node >/dev/null && command -v npm >/dev/null; then return 0; fi
  apt_install nodejs npm
}

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
  apt_install postgresql
  log "starting PostgreSQL"
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  # Tests connect as 'postgres' over TCP without a password.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "homerun-trust" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust # homerun-trust\nhost all all ::1/128 trust # homerun-trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  log "PostgreSQL did not start"; return 1
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  apt_install redis-server
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/homerun.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 1; done
  log "Redis did not start"; return 1
}

ensure_docker() {
  # A reachable Docker engine: installs Debian's docker.io when dockerd is missing and starts
  # dockerd in the background (log in /var/log/homerun-dockerd.log) unless an engine answers.
  command -v dockerd >/dev/null || apt_install docker.io
  docker info >/dev/null 2>&1 && return 0
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    log "starting dockerd (log: /var/log/homerun-dockerd.log)"
    setsid -f dockerd </dev/null >>/var/log/homerun-dockerd.log 2>&1
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
  log "the Docker engine did not start within 60 s; see /var/log/homerun-dockerd.log"
  return 1
}

ensure_runtime_images() {
  # The action runtime images (homerun/action-*), built offline from Debian packages and the npm
  # registry, cached; then the same Node versions and modules on this host for the process sandbox.
  ensure_docker || return 1
  ensure_node || return 1
  "$ROOT/deploy/runtimes/build.sh" "$@"
  "$ROOT/deploy/runtimes/build.sh" --host "$@"
}
