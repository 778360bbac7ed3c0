# dynserve container: build stage compiles with the same install script the README and CI use;
# the runtime stage carries only the server, the example models, the dashboard and the libraries.
FROM debian:12 AS build
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh build
COPY . /src
RUN cmake -S /src -B /src/build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/opt/dynserve \
    -DDYNSERVE_TESTS=OFF \
 && cmake --build /src/build -j"$(nproc)" --target dynserve \
 && cmake --install /src/build

FROM debian:12
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime && rm -rf /tmp/install-deps.sh /var/lib/apt/lists/*
COPY --from=build /opt/dynserve /opt/dynserve
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/opt/dynserve/dynserve", "--data-dir", "/data"]
CMD ["--port", "8080"]
