// Command pause is the pod sandbox's process, what registry.k8s.io/pause is in a cluster: it holds the pod's
// namespaces, reaps the zombies the pod's other processes leave it as their init, and exits on SIGTERM or SIGINT.
// hack/build-node.sh builds it statically into the image localhost/pause:testenv: no registry is reachable here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
