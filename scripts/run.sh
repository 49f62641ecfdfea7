#!/usr/bin/env bash
# `make run`: set up, then serve in the foreground until Ctrl-C:
#   redis-server (private, unix socket only), the Celery agent (root, queues `agent` and `agent.<host>`), the stream agent
#   (root, `python -m webapp.agent`: consoles and captures),
#   daphne on 127.0.0.1:8000 (as the unprivileged user `topolab` when started as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VAR=${TOPOLAB_VAR:-$ROOT/var}
WEB_USER=topolab
BIND=${TOPOLAB_BIND:-127.0.0.1}
PORT=${TOPOLAB_PORT:-8000}
SOCK=$VAR/run/redis.sock
export TOPOLAB_VAR=$VAR
export TOPOLAB_REDIS_URL=${TOPOLAB_REDIS_URL:-unix://$SOCK}

# This lab host's name (TOPOLAB_HOST, default: the machine's host name made valid) as the settings check it, with
# TOPOLAB_UNDERLAY_ADDRESS: a bad value stops here with the reason (before setup too, once the venv exists).
this_host() {
  # a placeholder key: checking the host must not create var/secret_key before setup has made var/
  DJANGO_SETTINGS_MODULE=webapp.settings TOPOLAB_SECRET_KEY=${TOPOLAB_SECRET_KEY:-host-check} .venv/bin/python -c '
import sys
from django.core.exceptions import ImproperlyConfigured
try:
    from django.conf import settings
    print(settings.TOPOLAB_HOST)
except ImproperlyConfigured as exc:
    sys.exit(f"error: {exc}")
'
}
if [ -x .venv/bin/python ]; then this_host >/dev/null || exit 1; fi
bash scripts/setup.sh
HOST=$(this_host) || exit 1
umask 022  # what root makes under var/ is root's to write (docs/DESIGN.md, "Who owns what under var/")

log() { printf '==> %s\n' "$*"; }
is_root() { [ "$(id -u)" -eq 0 ]; }
# Prefix for the unprivileged tier. An argv prefix, not a function: `prefix cmd &` then execs
# down to cmd itself, so $! is the server's own pid and stopping it by pid works.
AS_WEB=()
if is_root; then
  AS_WEB=(env HOME="$VAR/run" setpriv --reuid="$WEB_USER" --regid="$WEB_USER" --clear-groups --)
fi

ensure_admin_account() {
  local pwfile=$VAR/admin_password
  [ -s "$pwfile" ] && return 0
  local password
  password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')
  TOPOLAB_ADMIN_PASSWORD=$password .venv/bin/python manage.py shell -v0 -c '
import os
from django.contrib.auth import get_user_model
User = get_user_model()
user, _ = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
user.is_staff = user.is_superuser = True
user.set_password(os.environ["TOPOLAB_ADMIN_PASSWORD"])
user.save()
'
  (umask 077 && printf '%s\n' "$password" >"$pwfile")
  log "created user 'admin' with password: $password   (kept in $pwfile)"
}

if is_root && ! "${AS_WEB[@]}" test -r "$ROOT/manage.py" -a -x "$ROOT/.venv/bin/python"; then
  echo "error: user $WEB_USER cannot read $ROOT; put the checkout where others may enter" \
       "(e.g. /opt/topolab) or chmod o+x its parent folders" >&2
  exit 1
fi

ensure_admin_account
is_root && { chown "$WEB_USER:$WEB_USER" "${TOPOLAB_DB:-$VAR/db/db.sqlite3}"* 2>/dev/null || true; }

PIDS=()
stop_all() {
  trap - EXIT INT TERM
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  log "stopped"
}
trap stop_all EXIT
trap 'exit 0' INT TERM  # Ctrl-C is the normal way to stop

if [[ $TOPOLAB_REDIS_URL == "unix://$SOCK" ]]; then
  rm -f "$SOCK"
  log "redis-server on $SOCK"
  "${AS_WEB[@]}" redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 770 \
    --dir "$VAR/redis" --daemonize no --loglevel warning &
  PIDS+=($!)
  for _ in $(seq 100); do
    [ -S "$SOCK" ] && redis-cli -s "$SOCK" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -s "$SOCK" ping >/dev/null || { echo "redis-server did not come up" >&2; exit 1; }
fi

log "celery agent of host $HOST (queues agent and agent.$HOST, with beat for the health check) as $(id -un)"
# Root by design: the agent drives the kernel. (Celery warns about root; with JSON only it is safe.)
# -B embeds the beat scheduler (periodic health check of deployed labs): exactly one per installation, which is
# right while there is one agent; with more lab hosts, run `celery -A webapp beat` once instead.
# The beat schedule is a pickle root loads: it lives in var/agent/ (root's, mode 0700), never in var/run/.
# It announces itself (a Host row) every few seconds; the admin and GET /api/hosts/ show it.
.venv/bin/celery -A webapp worker -Q "agent,agent.$HOST" -n "agent@$HOST" --concurrency 2 --loglevel INFO \
  -B -s "$VAR/agent/celerybeat-schedule" &
PIDS+=($!)

log "stream agent (consoles, captures) as $(id -un)"
# Root by design too: shells in node namespaces, tcpdump. Bytes travel over the Channels layer (Redis).
.venv/bin/python -m webapp.agent &
PIDS+=($!)

log "daphne on http://$BIND:$PORT as $(is_root && echo "$WEB_USER" || id -un)"
# --proxy-headers only behind a reverse proxy (TOPOLAB_PROXY_HEADERS=1): otherwise any client could pick the
# address that sign-in throttling counts by, through X-Forwarded-For.
PROXY=()
[ "${TOPOLAB_PROXY_HEADERS:-0}" = 1 ] && PROXY=(--proxy-headers)
"${AS_WEB[@]}" .venv/bin/daphne -b "$BIND" -p "$PORT" "${PROXY[@]}" webapp.asgi:application &
PIDS+=($!)

for _ in $(seq 150); do
  if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen('http://$BIND:$PORT/healthz', timeout=1)" 2>/dev/null; then
    log "Topolab is up: open http://$BIND:$PORT  (sign in as admin, password in $VAR/admin_password; Ctrl-C stops)"
    break
  fi
  sleep 0.2
done

# Serve until Ctrl-C, or until any one of the services dies (then stop the others).
set +e
wait -n "${PIDS[@]}"
rc=$?
log "a service exited (status $rc); stopping the others"
exit "$rc"
