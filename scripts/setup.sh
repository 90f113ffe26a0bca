#!/usr/bin/env bash
# Creates .venv with the project and its pinned dependencies. Needs python3.11, java 17+ and mvn.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup: $tool is missing; install a JDK 17+ and Maven (apt-get install openjdk-17-jdk maven)" >&2
    exit 1
  fi
done
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,dev]"
# the AsyncAPI parser that validates docs/asyncapi.yaml in the suite (pinned in its package-lock.json);
# the engine and the demo do not need it
if command -v npm >/dev/null 2>&1; then
  if [ ! -d tools/asyncapi/node_modules ] || [ tools/asyncapi/package-lock.json -nt tools/asyncapi/node_modules ]; then
    npm ci --prefix tools/asyncapi --no-audit --no-fund --loglevel=error >/dev/null
  fi
else
  echo "setup: npm is missing: the tests' AsyncAPI check will fail (apt-get install nodejs npm)" >&2
fi
