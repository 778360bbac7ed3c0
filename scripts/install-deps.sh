#!/usr/bin/env bash
# Installs everything dynserve needs to build, run, test and benchmark, from Debian's packages
# (and playwright-core from npm for the dashboard's browser tests). Used by the README commands,
# .ci/run and the Dockerfile, so they can never drift apart.
#   install-deps.sh build    what building and running the server needs (README's first command)
#   install-deps.sh test     build + test + benchmark dependencies (README's second command, CI),
#                            including podman, runc and mmdebstrap for the container image test
#   install-deps.sh runtime  only what the built server needs to run (Docker runtime stage)
set -euo pipefail
# libxgboost0 and libopencv-dnn406 (+ libopencv-core406) are what the xgboost and onnx backend
# plugins link; the python3-* build packages train the example models at build time. libpq is
# the PostgreSQL registry's client (--registry postgres://...); the tests start throwaway
# clusters with Debian's postgresql server.
runtime_pkgs=(libcivetweb1 libsqlite3-0 libpq5 libcjson1 libssl3 libcurl4 libjwt0 libxgboost0
              libopencv-dnn406 libopencv-core406)
build_pkgs=(build-essential cmake pkg-config patch libcivetweb-dev libsqlite3-dev libpq-dev
            libcjson-dev libssl-dev libcurl4-openssl-dev libjwt-dev libxgboost-dev libopencv-dnn-dev python3
            python3-numpy python3-xgboost python3-sklearn python3-onnx)
test_pkgs=(libcmocka-dev python3 python3-pytest python3-requests python3-jwt python3-cryptography
           openssl clang libclang-rt-14-dev
           prometheus chromium curl wrk nginx-light python3-fastapi python3-uvicorn python3-numpy
           postgresql
           podman runc mmdebstrap iptables python3-yaml)
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_=sudo
profile=${1:-test}
want=("${runtime_pkgs[@]}")
case $profile in
runtime) ;;
build | test)
    want+=("${build_pkgs[@]}")
    [ "$profile" = test ] && want+=("${test_pkgs[@]}")
    # npm: the build installs the /docs renderer (swagger-ui-dist); the tests use playwright-core
    # and an OpenAPI validator. A machine may already have Node.js from elsewhere (with its own
    # npm); Debian's npm would conflict with it, so only install them when the commands are
    # missing. Debian's npm reads its CAs from ca-certificates' bundle (/etc/npmrc), which a
    # minimal system lacks. DYNSERVE_NO_NPM=1 leaves npm out (the container image's default
    # build: /docs then says its renderer is missing).
    if [ "${DYNSERVE_NO_NPM:-0}" != 1 ]; then
        command -v node >/dev/null || want+=(nodejs)
        command -v npm >/dev/null || want+=(npm ca-certificates)
    fi
    ;;
*) echo "install-deps: unknown profile '$profile' (runtime, build or test)" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
