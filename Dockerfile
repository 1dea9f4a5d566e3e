# syntax=docker/dockerfile:1
# siemgate container image: a static-enough release build on Debian 12, run on distroless as a
# fixed non-root UID with no shell. Build: docker build -t siemgate:0.1.0 .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/load.rs \
 && echo 'fn main() {}' > benches/verify.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin siemgate \
 && rm -rf src benches
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin siemgate \
 && install -D -m 0755 target/release/siemgate /out/siemgate \
 && install -d -m 0700 /out/var/lib/siemgate

# distroless/cc: glibc, libgcc and CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="siemgate" \
      org.opencontainers.image.description="A verifying webhook gateway in front of your SIEM" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/siemgate/siemgate"
COPY --from=build /out/siemgate /usr/local/bin/siemgate
COPY --from=build --chown=65532:65532 /out/var/lib/siemgate /var/lib/siemgate
# 65532 is distroless's "nonroot"; the Kubernetes manifests pin the same UID and GID.
USER 65532:65532
# ingest, admin (metrics, health)
EXPOSE 8443 9090
VOLUME ["/var/lib/siemgate"]
# The admin listener answers /healthz; Kubernetes probes it directly (no shell for a HEALTHCHECK).
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/siemgate"]
CMD ["run", "--config", "/etc/siemgate/siemgate.toml"]
