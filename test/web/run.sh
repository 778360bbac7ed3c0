#!/usr/bin/env bash
# Dashboard browser tests: installs playwright-core (npm, locked) if needed, then runs them in
# Debian's Chromium with node's test runner. env: DYNSERVE_BIN, CHROMIUM.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-reporter=spec dashboard.test.mjs
