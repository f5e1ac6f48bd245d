#!/usr/bin/env bash
# The test command: prepares the machine, runs every test (unit, integration on real Postgres
# and Redis, end-to-end with the services as processes and headless Chromium), and ends with
# one line "N passed, N failed". Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --browser || exit 1

report="$(mktemp -t fitlamp-vitest-XXXXXX.json)"
pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
node scripts/summarize-report.mjs "$report" || status=1
rm -f "$report"
exit $status
