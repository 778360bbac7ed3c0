#!/usr/bin/env bash
# Installs the validator (npm ci, locked) when missing, then validates the manifests given as
# arguments. Used by test/k8s/test_manifests.py (ctest k8s_manifests).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/kubernetes-models ] && [ -d node_modules/yaml ] ||
    npm ci --no-audit --no-fund --loglevel=error >&2
exec node validate.mjs "$@"
