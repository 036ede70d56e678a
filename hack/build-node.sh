#!/usr/bin/env bash
# Builds what the test control plane's node needs (tests/testenv --node, see tests/testenv/node.go):
#   target/node/kubelet, target/node/kube-proxy  from k8s.io/kubernetes, pinned by tests/node/go.mod to the release
#                                                tests/testenv runs (same module cache, same build cache)
#   target/node/pause.oci.tar                    the sandbox image localhost/pause:testenv: tests/node/pause, static,
#                                                FROM scratch, built with podman (no registry is reachable here)
# `make node` runs this, then installs Debian's containerd and containernetworking-plugins when they are missing.
# The Makefile calls this only when tests/node or this script changed, or an output is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export GOTOOLCHAIN=local
GO=${GO:-go}
case "$("$GO" env GOVERSION)" in
  go1.26|go1.26.*) ;;
  *) echo "build-node: need Go 1.26.x, found $("$GO" env GOVERSION)" >&2; exit 1 ;;
esac

out=$PWD/target/node
mkdir -p "$out"
start=$(date +%s)
cd tests/node
"$GO" mod download
k8s=$("$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
control_plane=$(cd ../testenv && "$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
if [[ $k8s != "$control_plane" ]]; then
  echo "build-node: tests/node pins k8s.io/kubernetes $k8s, tests/testenv $control_plane: make them equal" >&2
  exit 1
fi
major=${k8s#v}; major=${major%%.*}
minor=${k8s#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
echo "build-node: building kubelet and kube-proxy $k8s (the first build takes minutes)"
"$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -ldflags "-s -w" -o "$out/pause-rootfs/pause" ./pause
cd - >/dev/null

# The pause image: one static binary FROM scratch, as the nobody user. podman (make podman) builds it; testenv
# imports the archive into its containerd.
podman=(podman --runtime runc --cgroup-manager cgroupfs)
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$out/pause-rootfs/Containerfile"
"${podman[@]}" build --quiet --timestamp 0 --pull=never --tag localhost/pause:testenv "$out/pause-rootfs" >/dev/null
rm -f "$out/pause.oci.tar"
"${podman[@]}" save --quiet --format oci-archive --output "$out/pause.oci.tar" localhost/pause:testenv
echo "build-node: built $out/kubelet, kube-proxy and pause.oci.tar in $(( $(date +%s) - start ))s"
