#!/usr/bin/env bash
# Builds the Go tools the tests need from source into target/tools/:
#   helm     helm.sh/helm/v3/cmd/helm, pinned by hack/tools/go.mod (no release-binary download)
#   kubectl  k8s.io/kubectl, pinned by hack/tools/go.mod (the README's kubectl commands run with it)
#   kstatus  tests/kstatus, the Flux/kstatus health evaluator (sigs.k8s.io/cli-utils/pkg/kstatus)
# Usage: hack/build-tools.sh helm|kubectl|kstatus ...
# The Makefile calls this only when a tool is missing or its go.mod/sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The go.mod files pin the toolchain; never let go download another one.
export GOTOOLCHAIN=local
GO=${GO:-go}
if ! command -v "$GO" >/dev/null; then
  echo "build-tools: 'go' not found; install Go 1.26.x (https://go.dev/dl/) and put it on PATH" >&2
  exit 1
fi
case "$("$GO" env GOVERSION)" in
  go1.26|go1.26.*) ;;
  *) echo "build-tools: need Go 1.26.x, found $("$GO" env GOVERSION)" >&2; exit 1 ;;
esac

out=$PWD/target/tools
mkdir -p "$out"
for tool in "$@"; do
  start=$(date +%s)
  case "$tool" in
    helm)
      cd hack/tools
      "$GO" mod download
      version=$("$GO" list -m -f '{{.Version}}' helm.sh/helm/v3)
      commit=$("$GO" mod download -json "helm.sh/helm/v3@$version" | sed -n 's/.*"Hash": "\([0-9a-f]*\)".*/\1/p')
      # Helm's Makefile stamps the Kubernetes version it was built against (client-go 0.N -> 1.N) as the
      # default for `helm template`/`helm lint`; without it they assume v1.20 and reject kubeVersion >=1.30.
      k8s=$("$GO" list -m -f '{{.Version}}' k8s.io/client-go)
      k8s_minor=${k8s#v0.}; k8s_minor=${k8s_minor%%.*}
      ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
      ldflags+=" -X helm.sh/helm/v3/internal/version.gitCommit=$commit -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
      done
      echo "build-tools: building helm $version (Kubernetes 1.$k8s_minor) from source (first build takes minutes)"
      "$GO" build -trimpath -ldflags "$ldflags" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm
      cd - >/dev/null
      ;;
    kubectl)
      cd hack/tools
      "$GO" mod download
      # kubectl's own version is that of the Kubernetes release whose staging module (k8s.io/kubectl v0.N.P) it
      # comes from: v1.N.P.
      k8s=$("$GO" list -m -f '{{.Version}}' k8s.io/kubectl)
      release=v1.${k8s#v0.}
      ldflags="-s -w"
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        ldflags+=" -X $pkg.gitVersion=$release -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$release" | cut -d. -f2)"
        ldflags+=" -X $pkg.gitTreeState=clean"
      done
      echo "build-tools: building kubectl $release from source (first build takes minutes)"
      "$GO" build -trimpath -ldflags "$ldflags" -o "$out/kubectl.tmp" ./kubectl
      cd - >/dev/null
      ;;
    kstatus)
      echo "build-tools: building the kstatus helper"
      (cd tests/kstatus && "$GO" mod download && "$GO" build -trimpath -ldflags "-s -w" -o "$out/kstatus.tmp" .)
      ;;
    *) echo "build-tools: unknown tool $tool (helm, kubectl, kstatus)" >&2; exit 2 ;;
  esac
  mv "$out/$tool.tmp" "$out/$tool"
  echo "build-tools: built $out/$tool in $(( $(date +%s) - start ))s"
done
