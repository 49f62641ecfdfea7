#!/usr/bin/env bash
# `make test`: set up (no serving), then run the whole suite. Tests start what they need.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests; treating as success"
  exit 0
fi
exit "$rc"
