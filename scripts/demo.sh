#!/usr/bin/env bash
# The main job on a fresh machine: install, start the local broker, create topics, run a worker and a
# demo campaign whose booster fires within a minute, print the commands' count and the final report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/booster demo "$@"
