# syntax=docker/dockerfile:1
# eiam-operator image: a static (musl) binary on distroless/static, running as the non-root user 65532 that the
# Helm chart's securityContext expects. Build from the repository root:
#   docker build -t ghcr.io/eiam-operator/eiam-operator:0.1.0 .
# The Rust build is `make build` (the same command developers run), in release mode.

FROM rust:1.95-alpine AS build
# musl-dev: libc for the static link; make and bash: the Makefile; gcc comes with the image (ring's C parts).
RUN apk add --no-cache musl-dev make bash
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the binary is copied out of the cached target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    make build CARGO_BUILD_FLAGS=--release \
    && cp target/release/eiam-operator /eiam-operator \
    && ! ldd /eiam-operator 2>/dev/null | grep -q '=>'

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="eiam-operator" \
      org.opencontainers.image.description="Declarative Alibaba Cloud IDaaS EIAM application client secrets for Kubernetes" \
      org.opencontainers.image.source="https://github.com/eiam-operator/eiam-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /eiam-operator /eiam-operator
COPY LICENSE /LICENSE
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/eiam-operator"]
