#!/usr/bin/env bash
# Builds the test control plane (tests/testenv, Go) into target/testenv/testenv.
# The Makefile calls this only when a source under tests/testenv changed; Go's module and build
# caches (GOMODCACHE, GOCACHE) make a rebuild after a small change a link step, not a full build.
set -euo pipefail
cd "$(dirname "$0")/.."

# go.mod pins the toolchain; never let go download another one (Go 1.27 changes the JSON
# library underneath the 1.36 OpenAPI endpoints).
export GOTOOLCHAIN=local
GO=${GO:-go}
if ! command -v "$GO" >/dev/null; then
  echo "build-testenv: 'go' not found; install Go 1.26.x (https://go.dev/dl/) and put it on PATH" >&2
  exit 1
fi
want=$(sed -n 's/^toolchain go//p' tests/testenv/go.mod)
have=$("$GO" env GOVERSION)
case "$have" in
  go1.26|go1.26.*) ;;
  *) echo "build-testenv: need Go 1.26.x (go.mod pins go$want), found $have" >&2; exit 1 ;;
esac

out=$PWD/target/testenv/testenv
mkdir -p "$(dirname "$out")"
cd tests/testenv
"$GO" mod download
# Stamp the Kubernetes version into the binary the way Kubernetes' own build does, so /version
# reports the release go.mod pins instead of v0.0.0-master.
k8s=$("$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
k8s_time=$("$GO" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
major=${k8s#v}; major=${major%%.*}
minor=${k8s#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$k8s_time"
echo "build-testenv: building kube-apiserver $k8s control plane with $have (first build takes minutes)"
start=$(date +%s)
"$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out.tmp" .
mv "$out.tmp" "$out"
echo "build-testenv: built $out in $(( $(date +%s) - start ))s"
