#!/usr/bin/env bash
# Installs the OpenAPI validator (npm ci, locked) when missing, then validates the document
# given as $1 (a file, or - for stdin). Used by test/integration/test_openapi.py.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/@seriousme/openapi-schema-validator ] ||
    npm ci --no-audit --no-fund --loglevel=error >&2
exec node validate.mjs "${1:--}"
