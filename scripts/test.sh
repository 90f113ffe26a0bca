#!/usr/bin/env bash
# The whole test run on a fresh machine: install, fetch and start Kafka, lint, type-check, pytest, stop Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ ! -d tools/asyncapi/node_modules ]; then
  echo "test: the AsyncAPI parser is not installed (tools/asyncapi); install Node.js and npm, then run ./scripts/setup.sh" >&2
  exit 1
fi
# the operations guide's test runs kcat and curl as an operator would; promtool (Debian's prometheus
# package) checks the worker's metrics and unit-tests the alert rules
for pair in kcat:kcat curl:curl promtool:prometheus; do
  tool="${pair%%:*}" package="${pair##*:}"
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get install -y -q --no-install-recommends "$package" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$package" >/dev/null; }
    else
      echo "test: $tool is missing; install it (apt-get install $package)" >&2
      exit 1
    fi
  fi
done
export BOOSTER_HOME="${BOOSTER_HOME:-$HOME/.cache/booster}"
started=0
kafka_pid=""
if ! .venv/bin/booster kafka status >/dev/null 2>&1; then
  # the broker starts (fetching its jars the first time) while ruff and mypy run
  .venv/bin/booster kafka start &
  kafka_pid=$!
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then .venv/bin/booster kafka stop || true; fi; }
trap cleanup EXIT
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if [ -n "$kafka_pid" ]; then
  wait "$kafka_pid" || { echo "test: the local Kafka broker did not start" >&2; exit 1; }
fi
# topics that earlier runs left behind slow every client down (each reads the broker's metadata)
.venv/bin/python -m tests.cleanup
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
