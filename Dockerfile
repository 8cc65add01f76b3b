# syntax=docker/dockerfile:1
# Paved's container image: one static binary (musl), nothing else, non-root.
#
#   docker build -t paved:dev .                   # builds the binary in the `build` stage
#   e2e/image.sh                                  # the same build without a Docker engine (see below)
#
# The `build` stage does exactly what e2e/image.sh does on a Debian machine:
# musl-tools for ring's C code, the x86_64-unknown-linux-musl target, a
# release build with --locked. The final stage is `scratch`: no shell, no
# package manager, no libc to patch; it runs as UID/GID 65532 (the same as
# distroless' nonroot), which the Helm chart's securityContext expects.
#
# BINARY_STAGE=prebuilt uses a binary built outside (e2e/image.sh builds it
# the same way, then runs buildah with a context holding only `paved`), so an
# image can be assembled where base images cannot be pulled. Unused stages
# are skipped by BuildKit and buildah.
ARG RUST_VERSION=1.89
ARG BINARY_STAGE=build

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The production examples: src/slim.rs renders them into its deflate dictionary.
COPY examples/00-environments.yaml ./examples/
COPY examples/production ./examples/production
# A workspace member: cargo reads its manifest even when building only `paved`.
COPY e2e/Cargo.toml e2e/lib.rs e2e/main.rs ./e2e/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin paved --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/paved /paved

FROM scratch AS prebuilt
COPY paved /paved

FROM ${BINARY_STAGE} AS binary

FROM scratch
LABEL org.opencontainers.image.title="paved" \
      org.opencontainers.image.description="Paved: an Internal Developer Platform as a Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=binary /paved /paved
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/paved"]
CMD ["run", "--log-format=json"]
