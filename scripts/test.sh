#!/usr/bin/env bash
# The whole test run on a fresh machine: install, fetch and start Kafka, lint, type-check, pytest, stop Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export BOOSTER_HOME="${BOOSTER_HOME:-$HOME/.cache/booster}"
started=0
if ! .venv/bin/booster kafka status >/dev/null 2>&1; then
  .venv/bin/booster kafka start
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then .venv/bin/booster kafka stop || true; fi; }
trap cleanup EXIT
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
