#!/usr/bin/env bash
# Topolab setup: everything `make run` and `make test` need, done once and skipped after.
#   apt packages (only the missing ones), the unprivileged `topolab` web user, .venv,
#   node_modules, the tiny VM image (if scripts/build-tiny-image.sh exists), the database.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=${TOPOLAB_VAR:-$ROOT/var}
STAMPS=$VAR/stamps
WEB_USER=topolab
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
  iproute2 nftables dnsmasq-base redis-server qemu-system-x86 qemu-utils busybox-static
  tcpdump iputils-ping chromium kmod cpio util-linux procps python3-venv ca-certificates frr frr-pythontools
  fonts-dejavu-core fonts-liberation postgresql
)

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
sha() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
as_web_user() { setpriv --reuid="$WEB_USER" --regid="$WEB_USER" --clear-groups -- "$@"; }

ensure_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  # node/npm normally come with the machine; Debian's own are a fallback.
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  is_root || die "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
  log "apt-get install ${missing[*]}"
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
  no_host_frr
}

# Topolab runs FRR only inside lab routers (netops/frr.py); the package's own service would run a zebra on the
# host's routing table. Where systemd runs, keep it off (in containers policy-rc.d already denies the start).
no_host_frr() {
  [ -d /run/systemd/system ] || return 0
  if systemctl is-enabled --quiet frr.service 2>/dev/null || systemctl is-active --quiet frr.service 2>/dev/null; then
    log "disabling the host's frr.service (Topolab starts FRR per lab router)"
    systemctl disable --now frr.service
  fi
}

ensure_web_user() {
  is_root || return 0
  id -u "$WEB_USER" >/dev/null 2>&1 && return 0
  log "creating system user $WEB_USER (runs the web tier)"
  useradd --system --no-create-home --shell /usr/sbin/nologin "$WEB_USER"
}

# The interpreter behind .venv. `python3` by default; as root it must also be runnable by the
# web user (a pyenv python under /root is not), else Debian's /usr/bin/python3 is used.
runnable_by_web_user() {
  local real
  real=$(readlink -f "$(command -v "$1")")
  as_web_user test -x "$real" 2>/dev/null \
    && as_web_user "$real" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null
}

choose_python() {
  local py=${TOPOLAB_PYTHON:-python3}
  command -v "$py" >/dev/null 2>&1 || die "$py not found"
  if is_root && ! runnable_by_web_user "$py"; then
    /usr/bin/python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
      || die "$py is not usable by user $WEB_USER and /usr/bin/python3 is older than 3.11"
    py=/usr/bin/python3
  fi
  command -v "$py"
}

# pip, quiet; its stderr (mostly the machine-wide config's notes) is shown only on failure.
pip_quiet() {
  if ! .venv/bin/python -m pip -q "$@" 2>"$VAR/pip.log"; then
    cat "$VAR/pip.log" >&2
    return 1
  fi
}

ensure_venv() {
  local py want
  py=$(choose_python)
  want=$(cat pyproject.toml <(readlink -f "$py") | sha256sum | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ "$(cat "$STAMPS/venv" 2>/dev/null)" = "$want" ] \
      && [ "$(readlink -f .venv/bin/python)" = "$(readlink -f "$py")" ]; then
    return 0
  fi
  if [ -e .venv ] && [ "$(readlink -f .venv/bin/python 2>/dev/null)" != "$(readlink -f "$py")" ]; then
    log "recreating .venv with $py"
    rm -rf .venv
  fi
  log "creating .venv ($py) and installing topolab[dev]"
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  pip_quiet install --upgrade pip
  pip_quiet install -e '.[dev]'
  echo "$want" >"$STAMPS/venv"
}

ensure_node_modules() {
  local want
  want=$(sha package.json package-lock.json)
  if [ -d node_modules ] && [ "$(cat "$STAMPS/npm" 2>/dev/null)" = "$want" ] \
      && [ ! package-lock.json -nt node_modules ]; then
    return 0
  fi
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
  echo "$want" >"$STAMPS/npm"
}

ensure_vm_image() {
  # Written by the VM work; idempotent by contract. Building needs root (it is the agent's job).
  [ -f scripts/build-tiny-image.sh ] || return 0
  if ! is_root; then
    log "skipping scripts/build-tiny-image.sh (needs root)"
    return 0
  fi
  TOPOLAB_IMAGE_DIR=${TOPOLAB_IMAGE_DIR:-$VAR/images} bash scripts/build-tiny-image.sh
}

ensure_database() {
  .venv/bin/python manage.py migrate --noinput -v0
}

# Who owns what under var/ (docs/DESIGN.md, "Who owns what under var/"): everything root reads or executes is
# root's and not writable by the web user; the web user owns only its database directory, its run directory
# (Redis socket, daphne's HOME) and Redis' data. var/ itself is root's, so no directory can be swapped.
# The database sits in var/db/ (SQLite makes its -wal/-shm files next to it; as root it hands them to the
# database's owner); an install from before moves it there once.
ensure_var_permissions() {
  is_root || return 0
  local db=${TOPOLAB_DB:-$VAR/db/db.sqlite3} f
  # 0751: anyone may pass through (a lab's own uid reads var/images for qemu, in the lab's cell), nobody but root
  # lists or writes it. (chmod keeps a directory's setgid bit unless told.)
  chown root:"$WEB_USER" "$VAR" && chmod 0751 "$VAR" && chmod g-s "$VAR"
  mkdir -p "$VAR/run" "$VAR/redis" "$VAR/db" "$VAR/agent" "$VAR/images"
  chown "$WEB_USER:$WEB_USER" "$VAR/run" "$VAR/redis" "$VAR/db"
  chmod 2770 "$VAR/run" "$VAR/redis" "$VAR/db"
  chown root:root "$VAR/agent" "$VAR/images" "$VAR/stamps"
  chmod 0700 "$VAR/agent" && chmod g-s "$VAR/agent"
  chmod 0755 "$VAR/images" "$VAR/stamps" && chmod g-s "$VAR/images" "$VAR/stamps"
  if [ -d "$VAR/captures" ]; then
    chown root:root "$VAR/captures"; chmod 0711 "$VAR/captures"
    # pcap files are the stream agent's to serve (webapp/agent/pcaps.py): no group may read them any more (they
    # were the web user's group's, 0640); -P: a symlink a lab made is not followed
    find -P "$VAR/captures" -maxdepth 1 -type f -name 'capture-*.pcap' -exec chgrp -h root {} + \
      -exec chmod 0600 {} +
  fi
  rm -f "$VAR/run/celerybeat-schedule"*  # the old place of the beat schedule (web-writable): never read again
  if [ -f "$VAR/secret_key" ]; then
    chown root:"$WEB_USER" "$VAR/secret_key"
    chmod 0640 "$VAR/secret_key"
  fi
  for f in "$db" "$db-wal" "$db-shm"; do
    if [ -e "$f" ]; then
      chown "$WEB_USER:$WEB_USER" "$f"
      chmod 0660 "$f"
    fi
  done
}

# The database used to be var/db.sqlite3; it moves into var/db/ (with its -wal/-shm) once.
move_old_database() {
  [ -n "${TOPOLAB_DB:-}" ] && return 0
  [ -e "$VAR/db.sqlite3" ] && [ ! -e "$VAR/db/db.sqlite3" ] || return 0
  log "moving var/db.sqlite3 into var/db/"
  mkdir -p "$VAR/db"
  local f
  for f in db.sqlite3 db.sqlite3-wal db.sqlite3-shm; do
    [ -e "$VAR/$f" ] && mv "$VAR/$f" "$VAR/db/$f"
  done
  return 0
}

main() {
  mkdir -p "$VAR" "$STAMPS" "$VAR/run" "$VAR/redis" "$VAR/db" "$VAR/agent" "$VAR/images" "$VAR/artifacts"
  move_old_database
  ensure_apt_packages
  ensure_web_user
  ensure_venv
  ensure_node_modules
  ensure_vm_image
  ensure_database
  ensure_var_permissions
}

main "$@"
