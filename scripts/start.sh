#!/usr/bin/env bash
# README command 1: install what dynserve needs (Debian 12, as root), build it, and start it on
# the embedded default: SQLite registry in ./data, the example models registered.
#   scripts/start.sh [extra dynserve flags]      env: PORT (8080), DATA_DIR (./data)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDYNSERVE_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"
exec ./build/dynserve --port "${PORT:-8080}" --data-dir "${DATA_DIR:-./data}" "$@"
