# syntax=docker/dockerfile:1
# eiam-operator image, for CI systems with registry access: the same layout as `make image`, which builds it here
# with no registry (hack/image/Containerfile) — a static, stripped release binary, the CA bundle and passwd/group
# naming 65532, FROM scratch, running as the non-root user 65532 that the Helm chart's securityContext expects.
# Build from the repository root:
#   docker build -t ghcr.io/eiam-operator/eiam-operator:0.1.0 .
# The Rust build and the root filesystem come from `make image-rootfs`, the same command `make image` runs.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds; the root filesystem is copied out of the cached target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    make image-rootfs \
    && cp -a target/image/context/rootfs /rootfs

# From here on, the instructions of hack/image/Containerfile (tests/image.rs checks).
FROM scratch
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title="eiam-operator" \
      org.opencontainers.image.description="Declarative Alibaba Cloud IDaaS EIAM application client secrets for Kubernetes" \
      org.opencontainers.image.source="https://github.com/eiam-operator/eiam-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/eiam-operator"]
