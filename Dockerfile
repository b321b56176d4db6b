# syntax=docker/dockerfile:1
# mgreg: multi-stage image. The build stage runs exactly what CI runs
# (scripts/install-deps.sh, then scripts/build.sh); `docker build --target test .` also
# runs the whole test suite (scripts/test.sh). The runtime stage holds only the two
# binaries (stripped) and the shared libraries they need (scripts/install-deps.sh runtime).
#
# Base images: Debian 12 from a registry by default. Where none can be pulled,
# scripts/docker-test.sh builds one with debootstrap and passes it as both build args
# (docs/operations.md "Docker and deploy/").
ARG BASE_IMAGE=debian:12
ARG RUNTIME_BASE_IMAGE=debian:12-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build
COPY . .
ENV MGREG_BUILD_DIR=/build
# ccache is off unless the builder mounts a cache at CCACHE_DIR and passes
# --build-arg MGREG_CCACHE=1 (scripts/docker-test.sh does): a cache written into the
# layer would only make the build stage bigger.
ARG MGREG_CCACHE=0
ENV CCACHE_DIR=/var/cache/mgreg-ccache
# Only what the runtime stage needs: no tests, no benchmarks.
RUN scripts/build.sh -DMGREG_BUILD_TESTS=OFF -DMGREG_BUILD_BENCH=OFF \
 && cmake --install /build --prefix /opt/mgreg --strip

FROM build AS test
ENV MGREG_BUILD_DIR=/build-test
RUN scripts/test.sh

FROM ${RUNTIME_BASE_IMAGE} AS runtime
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN MGREG_APT_CLEAN=1 /tmp/install-deps.sh runtime \
 && rm /tmp/install-deps.sh \
 && groupadd --system --gid 10001 mgreg \
 && useradd --system --uid 10001 --gid mgreg --home-dir /var/lib/mgreg --shell /usr/sbin/nologin mgreg \
 && mkdir -p /var/lib/mgreg /etc/mgreg \
 && chown mgreg:mgreg /var/lib/mgreg
COPY --from=build /opt/mgreg/bin/mgreg-server /opt/mgreg/bin/mgreg /usr/local/bin/
USER 10001:10001
VOLUME ["/var/lib/mgreg"]
# gRPC API, Prometheus metrics.
EXPOSE 8470 9464
# Our own probe of grpc.health.v1 (Debian has no grpc_health_probe): exit 0 if SERVING.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["mgreg", "--server", "127.0.0.1:8470", "admin", "health"]
# SIGTERM drains in-flight calls (shutdown_deadline), then closes the store.
STOPSIGNAL SIGTERM
ENTRYPOINT ["mgreg-server"]
# Without a config file: plaintext and no tokens, for a first try only. In production
# mount a config (deploy/mgreg.textproto) and pass --config=/etc/mgreg/mgreg.textproto.
CMD ["--data-dir=/var/lib/mgreg", "--listen=0.0.0.0:8470", "--metrics-listen=0.0.0.0:9464", "--insecure"]
