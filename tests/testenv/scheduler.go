// scheduler.go runs kube-scheduler (k8s.io/kubernetes/cmd/kube-scheduler/app) in this process when a node runs
// (--node): without it, the pods of a Deployment would never be bound to the node.
package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// startScheduler starts kube-scheduler against the admin kubeconfig and returns a channel that yields its exit
// error.
func startScheduler(ctx context.Context, kubeconfig string) (<-chan error, error) {
	opts := schedoptions.NewOptions()
	fs := pflag.NewFlagSet("kube-scheduler", pflag.ContinueOnError)
	for _, set := range opts.Flags.FlagSets {
		fs.AddFlagSet(set)
	}
	if err := fs.Parse([]string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		// No HTTPS endpoint: nothing scrapes it.
		"--secure-port=0",
	}); err != nil {
		return nil, fmt.Errorf("kube-scheduler flags: %w", err)
	}
	// Setup validates the options and fills the default component config, as the command does.
	cc, sched, err := schedapp.Setup(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("kube-scheduler setup: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- schedapp.Run(ctx, cc, sched)
	}()
	return done, nil
}
