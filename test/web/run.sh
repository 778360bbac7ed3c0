#!/usr/bin/env bash
# Dashboard browser tests: installs playwright-core (npm, locked) if needed, then runs them in
# Debian's Chromium with node's test runner.
# env: DYNSERVE_BIN (server binary), DYNSERVE_WEB_ROOT (dashboard files, default <repo>/web),
#      CHROMIUM (default /usr/bin/chromium), DYNSERVE_WEB_SHOTS (keep screenshots there).
set -euo pipefail
cd "$(dirname "$0")"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "web tests: $chromium is missing (apt-get install -y chromium)" >&2
  exit 1
fi
{ [ -d node_modules/playwright-core ] && [ -d node_modules/axe-core ]; } || npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-reporter=spec dashboard.test.mjs docs.test.mjs
