#!/usr/bin/env bash
# The container image, built with no registry (`make image`).
#   hack/image.sh rootfs BINARY   stage the image's root filesystem in target/image/context/rootfs: BINARY (the
#                                 static, stripped release build) as /eiam-operator, the system CA bundle,
#                                 passwd/group naming 65532, the licence. The Dockerfile's build stage runs this too.
#   hack/image.sh build           build hack/image/Containerfile (FROM scratch) over it with podman, tag $IMAGE
#                                 (localhost/eiam-operator:dev), write the archive target/image/eiam-operator.oci.tar.
# Reproducible: modes are fixed here, `--timestamp 0` sets every file time and the creation date to the epoch, and
# the archive is repacked with fixed metadata, so two builds of the same commit (same toolchain, same CA bundle)
# give the same image ID, manifest digest and archive bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/eiam-operator:dev}
dir=target/image
context=$dir/context
rootfs=$context/rootfs
archive=$dir/eiam-operator.oci.tar
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# Debian's podman as root on this machine: runc (crun fails on its hybrid cgroup layout) and cgroupfs.
podman=(podman --runtime runc --cgroup-manager cgroupfs)

stage_rootfs() {
  local binary=$1
  [[ -x $binary ]] || { echo "image: $binary missing: run 'make image-binary'" >&2; exit 1; }
  [[ -s $ca_bundle ]] || { echo "image: no CA bundle at $ca_bundle: install Debian's ca-certificates (or set CA_BUNDLE)" >&2; exit 1; }
  # A dynamically linked binary would not start FROM scratch: refuse it here rather than at the first run.
  if LC_ALL=C readelf -l "$binary" | grep -q 'Requesting program interpreter'; then
    echo "image: $binary is dynamically linked; build it with 'make image-binary' (crt-static)" >&2; exit 1
  fi
  rm -rf "$rootfs"
  install -D -m 0555 "$binary" "$rootfs/eiam-operator"
  install -D -m 0444 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  install -D -m 0444 hack/image/passwd "$rootfs/etc/passwd"
  install -D -m 0444 hack/image/group "$rootfs/etc/group"
  install -D -m 0444 LICENSE "$rootfs/LICENSE"
  # Directories too get fixed modes, whatever the umask.
  find "$rootfs" -type d -exec chmod 0755 {} +
  echo "image: root filesystem staged in $rootfs ($(du -sh "$rootfs" | cut -f1))"
}

build_image() {
  [[ -x $rootfs/eiam-operator ]] || { echo "image: $rootfs not staged: run 'make image'" >&2; exit 1; }
  command -v podman >/dev/null || { echo "image: podman missing: run 'make podman' (Debian's podman and runc)" >&2; exit 1; }
  cp hack/image/Containerfile "$context/Containerfile"
  "${podman[@]}" build --quiet --timestamp 0 --pull=never --file "$context/Containerfile" --tag "$IMAGE" "$context" \
    >"$dir/image-id"
  # podman's archive has the same blobs every time but stamps its tar entries with the current time: repack it
  # with fixed times, owners and order so that the archive itself is byte for byte reproducible.
  local unpacked=$dir/oci-layout
  rm -rf "$unpacked" "$archive.tmp" && mkdir -p "$unpacked"
  "${podman[@]}" save --quiet --format oci-archive --output "$archive.tmp" "$IMAGE"
  tar --extract --file "$archive.tmp" --directory "$unpacked"
  tar --create --file "$archive" --directory "$unpacked" --sort=name --mtime=@0 --owner=0 --group=0 \
    --numeric-owner --format=gnu .
  rm -rf "$unpacked" "$archive.tmp"
  local manifest
  manifest=$(tar --extract --to-stdout --file "$archive" ./index.json | grep -o 'sha256:[0-9a-f]*' | head -n 1)
  echo "image: $IMAGE, ID $(cut -c1-12 "$dir/image-id"), $("${podman[@]}" image inspect --format '{{.Size}}' "$IMAGE") bytes;" \
    "archive $archive (manifest $manifest, sha256 $(sha256sum "$archive" | cut -c1-12))"
}

case ${1:-} in
  rootfs) stage_rootfs "${2:?usage: hack/image.sh rootfs BINARY}" ;;
  build) build_image ;;
  *) echo "usage: hack/image.sh rootfs BINARY | build" >&2; exit 2 ;;
esac
