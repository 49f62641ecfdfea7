#!/usr/bin/env bash
# `make test`: set up (no serving), then run the whole suite. Tests start what they need.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# lint and types first (configured in pyproject.toml): a failure here stops the run before the slow tests
echo "==> ruff check"
.venv/bin/ruff check .
echo "==> mypy (strict on netops/)"
.venv/bin/mypy
# pytest's exit 5 (collected no tests) counts as success
# pytest_pass SECONDS ARGS...: the passes together stay under CI's 90 minutes; past its bound a pass is
# interrupted (SIGINT), so pytest still prints what ran and what hung. Each test has its own bound too
# (pytest-timeout, pyproject.toml).
pytest_pass() {
  local rc=0 budget="$1"
  shift
  timeout -s INT -k 60 "$budget" .venv/bin/pytest "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests; treating as success"
    rc=0
  fi
  return "$rc"
}
postgres_pass() {
  # The Django tests again on PostgreSQL (a private cluster the tests start, tests/conftest.py): what touches the
  # database, the concurrency tests among it; not the kernel or browser tests, which the SQLite pass ran.
  # Always the same selection; TOPOLAB_TEST_POSTGRES=0 skips it.
  [ "${TOPOLAB_TEST_POSTGRES:-1}" != 0 ] || return 0
  echo "==> the Django tests on PostgreSQL"
  pytest_pass 1200 tests/webapp -m "webapp and not kernel and not e2e" --postgres
}
rc=0
if [ "$#" -gt 0 ]; then
  # make test PYTEST_ARGS=...: the tests asked for, one pass, then the PostgreSQL pass
  pytest_pass "${TOPOLAB_TEST_BUDGET:-3600}" "$@" || rc=$?
  pg_rc=0
  postgres_pass || pg_rc=$?
  [ "$rc" -ne 0 ] || rc=$pg_rc
  exit "$rc"
fi
# The whole suite as two streams at once: the kernel and browser tests (which wait on the kernel-test lock, on
# daemons, DHCP, FRR and VMs far more than they compute) and, alongside them, the tests that make no kernel object
# followed by the PostgreSQL pass. Each pytest has its own private services (tests/conftest.py). The host's VM
# accelerator decision is made first, once, so no agent of either stream starts its probe qemu while a kernel test
# takes its inventory of processes.
.venv/bin/python -c "from netops import qemu; print('==> VMs run with', qemu.accel_info()['accel'])" || echo "==> (the first agent decides how VMs run)"
mkdir -p var/artifacts
side_log=var/artifacts/test-side.log
(
  side_rc=0
  echo "==> the tests without kernel objects (alongside the kernel and browser tests)"
  pytest_pass 1500 -m "not kernel and not e2e" || side_rc=$?
  pg_rc=0
  postgres_pass || pg_rc=$?
  [ "$side_rc" -ne 0 ] || side_rc=$pg_rc
  exit "$side_rc"
) > "$side_log" 2>&1 &
side_pid=$!
echo "==> the kernel and browser tests (the other tests run alongside: $side_log, printed after)"
pytest_pass "${TOPOLAB_TEST_BUDGET:-3600}" -m "kernel or e2e" || rc=$?
side_rc=0
wait "$side_pid" || side_rc=$?
cat "$side_log"
[ "$rc" -ne 0 ] || rc=$side_rc
exit "$rc"
