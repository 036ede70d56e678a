//go:build tools

// Package node pins the node's components, built by hack/build-node.sh: the kubelet and kube-proxy of the
// Kubernetes release tests/testenv runs (go.mod keeps every k8s.io module at the versions tests/testenv pins).
package node

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
