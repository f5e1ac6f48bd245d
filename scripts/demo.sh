#!/usr/bin/env bash
# The demo command: prepares the machine, then runs the whole pipeline against the built-in
# simulators and prints a summary (see scripts/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec pnpm demo "$@"
