#!/usr/bin/env bash
# README command 2 (and .ci/run): install everything (Debian 12, as root), build, run every test.
#   1. RelWithDebInfo build with -Werror: unit (cmocka), HTTP integration (pytest on the real
#      binary), browser (Chromium + playwright-core)
#   2. the same against Debian's libcivetweb (DYNSERVE_SYSTEM_CIVETWEB=ON): build + HTTP unit tests
#   3. ASan+UBSan build: unit + integration + stress (shortened)
#   4. TSan build: unit + the concurrency integration tests
#   5. clang libFuzzer build: the OIP decoder and management-body fuzzers, FUZZ_SECONDS each (default 60)
# Before any build: scripts/check-deps.py (the module graph; no build needed).
#   6. container image: build the Dockerfile, run it, restart it on its volume
#      (scripts/container-test.sh; CONTAINER_TEST=0 skips it)
# Each stage uses its own build directory. Stops at the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh test
jobs=$(nproc)

stage() { echo; echo "=== $* ==="; }
build() { # dir, cmake args...
    local dir=$1; shift
    cmake -S . -B "$dir" -DDYNSERVE_WERROR=ON -DDYNSERVE_TESTS=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
}

stage "module graph (scripts/check-deps.py)"
python3 scripts/check-deps.py

stage "build + unit + integration + browser tests"
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd build && ctest --output-on-failure)

stage "system libcivetweb (-DDYNSERVE_SYSTEM_CIVETWEB=ON): build + HTTP unit tests"
build build-syscw -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDYNSERVE_SYSTEM_CIVETWEB=ON
(cd build-syscw && ctest --output-on-failure -R 'unit_test_(http|routes)')

stage "ASan + UBSan: unit + integration"
build build-asan -DCMAKE_BUILD_TYPE=Debug -DDYNSERVE_ASAN=ON
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -L 'unit|integration|stress')

stage "TSan: unit + concurrency"
build build-tsan -DCMAKE_BUILD_TYPE=Debug -DDYNSERVE_TSAN=ON
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/../test/tsan.supp" \
    ctest --output-on-failure -L 'unit|tsan')

stage "fuzz: OIP request decoder, management JSON bodies"
build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DDYNSERVE_FUZZ=ON
(cd build-fuzz && FUZZ_SECONDS=${FUZZ_SECONDS:-60} ctest --output-on-failure -L fuzz)

if [ "${CONTAINER_TEST:-1}" != 0 ]; then
    stage "container image: build, run, restart on the same volume"
    timeout 600 ./scripts/container-test.sh
fi

echo
echo "all test stages passed"
