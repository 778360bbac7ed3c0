#!/usr/bin/env bash
# Builds the container image from the Dockerfile and runs it as a user would (scripts/test.sh's
# container stage; also fine on its own):
#   start on a loopback port with an admin token from a mounted secret file, wait for ready,
#   check the healthcheck and that the server runs as a non-root uid owning /data, deploy (one
#   version in process, one in a worker process) and infer with the token, stop (exit 0), start
#   a new container on the same volume and see both deployments restored, then remove every
#   container, volume and image it created.
# With a server that has authentication (--admin-token-file in `dynserve --help`) it also checks
# that the image refuses to start open on 0.0.0.0 without a token and that requests without the
# token are refused.
#
# Base image: `debian:12` is used if present, else pulled; where no registry is reachable (this
# project's machines and CI reach only Debian's package mirrors) it is built from Debian's
# packages with mmdebstrap and imported as localhost/debian:12. The tarball is cached in
# $CONTAINER_CACHE (default build/container) for a week.
#   env: CONTAINER_ENGINE   podman (default when installed) or docker
#        PODMAN_RUNTIME     OCI runtime for podman (default runc: crun fails on hybrid cgroups)
#        CONTAINER_CACHE    where the base tarball is kept (default build/container)
set -euo pipefail
cd "$(dirname "$0")/.."

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
    if command -v podman >/dev/null; then engine=podman; else engine=docker; fi
fi
command -v "$engine" >/dev/null || { echo "container-test: $engine is not installed" >&2; exit 1; }
cache=${CONTAINER_CACHE:-build/container}
id="dynserve-test-$$"
image="localhost/$id:latest"
volume="$id-data"
work=$(mktemp -d)  # logs and the token file; removed on exit
created_base=""
containers=()

# podman here: crun cannot create containers on the hybrid cgroup layout, and the default
# rlimits (nofile 1048576) cannot be raised, so name a runtime and limits the host allows.
rt=()
build_flags=()
if [ "$engine" = podman ]; then
    rt=(--runtime "${PODMAN_RUNTIME:-runc}" --ulimit nofile=20000:20000
        --ulimit nproc=32768:32768)
    # docker format keeps the HEALTHCHECK (OCI image config has no field for it); no layer
    # cache, so the build leaves no intermediate images behind.
    build_flags=(--pull=never --format docker --layers=false)
fi

log() { echo "container-test: $*"; }
fail() {
    echo "container-test: FAIL: $*" >&2
    for c in "${containers[@]}"; do
        echo "--- logs of $c" >&2
        "$engine" logs "$c" 2>&1 | tail -40 >&2 || true
    done
    exit 1
}

cleanup() {
    local c
    for c in "${containers[@]}"; do "$engine" rm -f "$c" >/dev/null 2>&1 || true; done
    "$engine" volume rm -f "$volume" >/dev/null 2>&1 || true
    "$engine" rmi -f "$image" >/dev/null 2>&1 || true
    [ -z "$created_base" ] || "$engine" rmi -f "$created_base" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The host's own Debian bookworm apt sources (deb822 files, else sources.list lines); none
# found means mmdebstrap's default mirror.
base_sources() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && grep -qE '^Suites:.*\bbookworm\b' "$f" && echo "$f"
    done
    if [ -f /etc/apt/sources.list ]; then
        grep -E '^deb\s+\S+\s+bookworm(-updates|-security)?\s' /etc/apt/sources.list \
            >"$work/bookworm.list" || true
        [ -s "$work/bookworm.list" ] && echo "$work/bookworm.list"
    fi
    return 0
}

ensure_base() {
    if "$engine" image inspect debian:12 >/dev/null 2>&1; then
        log "base image debian:12 is present"
        return
    fi
    if timeout 60 "$engine" pull docker.io/library/debian:12 >/dev/null 2>&1; then
        log "pulled debian:12"
        return
    fi
    [ "$engine" = podman ] || fail "cannot pull debian:12 (the mmdebstrap fallback needs podman)"
    command -v mmdebstrap >/dev/null || fail "no registry and no mmdebstrap to build debian:12"
    mkdir -p "$cache"
    local tar="$cache/debian-12-minbase.tar"
    if [ -z "$(find "$tar" -mtime -7 2>/dev/null)" ]; then
        log "no registry: building debian:12 from Debian's packages (mmdebstrap)"
        local sources
        mapfile -t sources < <(base_sources)
        mmdebstrap --format=tar --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            bookworm "$tar.tmp" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1 ||
            { tail -40 "$work/mmdebstrap.log" >&2; fail "mmdebstrap failed"; }
        mv "$tar.tmp" "$tar"
    fi
    podman import --quiet "$tar" localhost/debian:12 >/dev/null || fail "podman import failed"
    created_base=localhost/debian:12
    log "imported $tar as localhost/debian:12"
}

# curl wrapper: prints the body, then the status code on its own line.
http() { # method path [token] [body]
    local args=(-s -m 30 -X "$1" -w '\n%{http_code}')
    [ -z "${3:-}" ] || args+=(-H "Authorization: Bearer $3")
    [ -z "${4:-}" ] || args+=(-d "$4")
    curl "${args[@]}" "http://127.0.0.1:$port$2"
}
status_of() { tail -n1 <<<"$1"; }
body_of() { sed '$d' <<<"$1"; }
expect() { # label expected-status response
    [ "$(status_of "$3")" = "$2" ] || fail "$1: expected $2, got $(status_of "$3"): $(body_of "$3")"
}

start() { # name, extra run args...
    local name=$1; shift
    containers+=("$name")
    "$engine" run -d --name "$name" "${rt[@]}" -p 127.0.0.1::8080 -v "$volume:/data" "$@" \
        "$image" >/dev/null 2>"$work/$name.run.log" || fail "$engine run: $(cat "$work/$name.run.log")"
    port=$("$engine" port "$name" 8080 | head -n1 | sed 's/.*://')
    [ -n "$port" ] || fail "no published port for $name"
    local r
    for _ in $(seq 1 120); do
        r=$(http GET /v2/health/ready 2>/dev/null || true)
        [ "$(status_of "$r")" = 200 ] && { log "$name ready on 127.0.0.1:$port"; return; }
        [ "$("$engine" inspect --format '{{.State.Running}}' "$name")" = true ] ||
            fail "$name exited before it was ready"
        sleep 0.5
    done
    fail "$name not ready after 60 s"
}

stop() { # name: SIGTERM, must exit 0
    "$engine" stop -t 30 "$1" >/dev/null 2>&1 || fail "$engine stop $1"
    local rc
    rc=$("$engine" inspect --format '{{.State.ExitCode}}' "$1")
    [ "$rc" = 0 ] || fail "$1 exited $rc after SIGTERM"
}

json_check() { # label, python expression over `d` (the parsed body), response
    body_of "$3" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($2) else 1)" ||
        fail "$1: $(body_of "$3")"
}

mkdir -p "$cache"
started=$(date +%s)
ensure_base
log "building $image with $engine"
"$engine" build "${build_flags[@]}" "${rt[@]}" -t "$image" . >"$work/build.log" 2>&1 ||
    { tail -40 "$work/build.log" >&2; fail "image build failed"; }
size=$("$engine" image inspect --format '{{.Size}}' "$image")
log "built in $(($(date +%s) - started)) s, image size $((size / 1000000)) MB"

[ "$("$engine" image inspect --format '{{.Config.User}}' "$image")" = 10001:10001 ] ||
    fail "image user is not 10001:10001"
[ -n "$("$engine" image inspect --format '{{.Config.Healthcheck}}' "$image")" ] ||
    fail "image has no HEALTHCHECK"
"$engine" run --rm --no-healthcheck --user 0 "${rt[@]}" --entrypoint /bin/sh "$image" -c \
    '! find /var/lib/apt/lists /var/cache/apt -type f ! -name lock | grep -q .' ||
    fail "apt lists or package cache left in the image"

auth=""
if "$engine" run --rm --no-healthcheck "${rt[@]}" "$image" --help 2>/dev/null | grep -q -- --admin-token-file; then
    auth=1
fi

# The admin token: a file readable by the container's user, in a directory (mktemp -d, 0700)
# only root can enter.
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s' "$token" >"$work/admin-token"
chmod 0644 "$work/admin-token"
secret_args=(-v "$work/admin-token:/run/secrets/dynserve_admin_token:ro"
             -e DYNSERVE_ADMIN_TOKEN_FILE=/run/secrets/dynserve_admin_token)
"$engine" volume create "$volume" >/dev/null

if [ -n "$auth" ]; then
    # Safe default: on 0.0.0.0 with no token and no JWT key, the server refuses to start.
    containers+=("$id-open")
    rc=0
    timeout 60 "$engine" run --name "$id-open" --no-healthcheck "${rt[@]}" -v "$volume:/data" "$image" \
        >"$work/open.log" 2>&1 || rc=$?
    [ "$rc" = 1 ] && grep -q -- --insecure "$work/open.log" ||
        fail "image without auth: expected exit 1 naming --insecure, got $rc: $(tail -3 "$work/open.log")"
    log "without a token the image refuses to start (exit $rc)"
else
    log "server has no --admin-token-file yet: auth assertions skipped"
fi

start "$id-1" "${secret_args[@]}"
uid=$("$engine" exec "$id-1" sh -c 'sed -n "s/^Uid:[[:space:]]*\([0-9]*\).*/\1/p" /proc/1/status')
comm=$("$engine" exec "$id-1" cat /proc/1/comm)
[ "$comm" = dynserve ] || fail "pid 1 is '$comm', not dynserve"
[ -n "$uid" ] && [ "$uid" != 0 ] || fail "server runs as uid '$uid'"
owner=$("$engine" exec "$id-1" stat -c %u /data/registry.db)
[ "$owner" = "$uid" ] || fail "/data/registry.db owned by $owner, server uid $uid"
log "server is pid 1 as uid $uid and owns /data"
if [ "$engine" = podman ]; then
    podman healthcheck run "$id-1" >/dev/null 2>&1 || fail "healthcheck failed on a ready server"
else
    "$engine" exec "$id-1" /opt/dynserve/healthcheck || fail "healthcheck failed on a ready server"
fi

deploy='{"model_name":"quadratic_predictor","version":"1","endpoint_name":"quad"}'
infer='{"inputs":[{"name":"input","shape":[2,1],"datatype":"FP32","data":[1,2]}]}'
infer_path=/v2/models/quadratic_predictor/versions/1/infer
if [ -n "$auth" ]; then
    expect "deploy without token" 401 "$(http POST /deployments/deploy "" "$deploy")"
fi
expect "deploy" 201 "$(http POST /deployments/deploy "$token" "$deploy")"
r=$(http POST "$infer_path" "$token" "$infer")
expect "infer" 200 "$r"
json_check "infer output" 'd["outputs"][0]["data"] == [6, 15]' "$r"
# An isolated deployment: its plugin runs in a `dynserve worker` child inside the container.
iso='{"model_name":"quadratic_predictor","version":"2","isolation":"process"}'
iso_path=/v2/models/quadratic_predictor/versions/2/infer
expect "deploy isolated" 201 "$(http POST /deployments/deploy "$token" "$iso")"
r=$(http POST "$iso_path" "$token" "$infer")
expect "infer isolated" 200 "$r"
json_check "isolated infer output" 'd["outputs"][0]["data"] == [0, 3]' "$r"
log "deployed and inferred (in process and in a worker process)"
viewer=""
if [ -n "$auth" ]; then
    # `dynserve token` in the running container (DYNSERVE_DATA_DIR=/data): a viewer token
    # created there reads the deployments but may not deploy.
    viewer=$("$engine" exec "$id-1" /opt/dynserve/dynserve token create --role viewer \
        --name container-test 2>/dev/null) || fail "dynserve token create in the container"
    # The server reloads its token table about once a second: wait for it (30 s at most).
    for _ in $(seq 1 60); do
        [ "$(status_of "$(http GET /deployments "$viewer")")" = 200 ] && break
        sleep 0.5
    done
    expect "viewer reads deployments" 200 "$(http GET /deployments "$viewer")"
    expect "viewer may not undeploy" 403 "$(http POST /deployments/undeploy "$viewer" "$deploy")"
    log "a token made with dynserve token in the container works with its role"
fi

stop "$id-1"
"$engine" rm "$id-1" >/dev/null 2>&1
start "$id-2" "${secret_args[@]}"
r=$(http GET /deployments "$token")
expect "deployments after restart" 200 "$r"
json_check "deployment restored" \
    'any(x.get("model_name") == "quadratic_predictor" and x.get("version") == "1" and x.get("status") == "active" for x in d["deployments"])' "$r"
json_check "isolated deployment restored" \
    'any(x.get("version") == "2" and x.get("status") == "active" and x.get("isolation") == "process" for x in d["deployments"])' "$r"
r=$(http POST "$infer_path" "$token" "$infer")
expect "infer after restart" 200 "$r"
json_check "infer output after restart" 'd["outputs"][0]["data"] == [6, 15]' "$r"
r=$(http POST "$iso_path" "$token" "$infer")
expect "isolated infer after restart" 200 "$r"
json_check "isolated infer output after restart" 'd["outputs"][0]["data"] == [0, 3]' "$r"
log "new container on the same volume restored the deployment"
if [ -n "$auth" ]; then
    expect "viewer token after restart" 200 "$(http GET /deployments "$viewer")"
    expect "deploy without token after restart" 401 "$(http POST /deployments/deploy "" "$deploy")"
fi
stop "$id-2"

log "passed in $(($(date +%s) - started)) s (image $((size / 1000000)) MB)"
