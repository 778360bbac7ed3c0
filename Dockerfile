# dynserve container image (Docker or podman; README "Container").
# The build stage compiles with the same install script the README and CI use; the runtime stage
# carries only the server, the example models, the dashboard and the libraries that script's
# `runtime` profile names. Every apt step cleans up after itself in its own layer, so the layers
# stay small whatever the base image's apt configuration (Debian's official image cleans the
# package cache; a base built with mmdebstrap does not).
# Where no registry is reachable, scripts/container-test.sh builds `debian:12` from Debian's
# packages (mmdebstrap) and imports it locally.
FROM debian:12 AS build
# DOCS_UI=on (--build-arg) also installs npm and fetches the /docs renderer (swagger-ui-dist)
# from the npm registry; off (the default) builds without npm, and /docs then says the renderer
# is missing. Off is what scripts/container-test.sh builds: its machines reach Debian's mirrors
# but cannot verify the npm registry's TLS certificate from inside a container.
ARG DOCS_UI=off
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN if [ "$DOCS_UI" != on ]; then export DYNSERVE_NO_NPM=1; fi \
 && /src/scripts/install-deps.sh build \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY . /src
# The build directory lives outside the copied tree, so a stray local build can never collide.
# Only what `cmake --install` lays out is built: the server (with the example models), the
# dashboard, and with DOCS_UI=on the /docs renderer.
RUN cmake -S /src -B /tmp/build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/opt/dynserve \
        -DDYNSERVE_TESTS=OFF \
 && targets="dynserve web_assets" \
 && if [ "$DOCS_UI" = on ]; then targets="$targets docs_ui"; fi \
 && cmake --build /tmp/build -j"$(nproc)" --target $targets \
 && cmake --install /tmp/build

FROM debian:12
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime \
 && apt-get clean \
 && rm -rf /tmp/install-deps.sh /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt/* \
        /var/log/dpkg.log
# The server runs as an unprivileged user that owns /data. /data exists with that owner before
# the VOLUME line, so a new named volume starts out owned by it too (a bind-mounted host
# directory keeps its own owner: chown it to 10001).
RUN groupadd --gid 10001 dynserve \
 && useradd --uid 10001 --gid dynserve --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin dynserve \
 && mkdir -p /data && chown dynserve:dynserve /data && chmod 0700 /data
COPY --from=build /opt/dynserve /opt/dynserve
COPY scripts/container-healthcheck.sh /opt/dynserve/healthcheck
# Inside its own network namespace the server must listen on all addresses; the server refuses
# a non-loopback --host unless a token or JWT key is configured (or --insecure is given), so the
# image does not start open to the network by default: pass DYNSERVE_ADMIN_TOKEN_FILE (or a JWT
# key) pointing at a mounted secret. Change the port with DYNSERVE_PORT (the healthcheck reads it).
ENV DYNSERVE_HOST=0.0.0.0 \
    DYNSERVE_PORT=8080 \
    DYNSERVE_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/dynserve/healthcheck"]
ENTRYPOINT ["/opt/dynserve/dynserve"]
