#!/bin/bash
# The container image's HEALTHCHECK: exit 0 when GET /v2/health/ready answers 200 (deployments
# restored), 1 otherwise. Plain bash (/dev/tcp), so the image needs no HTTP client. It asks
# 127.0.0.1 on DYNSERVE_PORT (default 8080), the port the image's server listens on.
set -u
port=${DYNSERVE_PORT:-8080}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /v2/health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r -t 4 _ status _ <&3 || exit 1
[ "$status" = 200 ]
