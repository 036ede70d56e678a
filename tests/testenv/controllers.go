// controllers.go runs the parts of kube-controller-manager an operator depends on: the garbage
// collector (ownerReference cascading deletion), the namespace controller (namespace deletion
// empties and removes the namespace) and the service-account controllers (every namespace gets
// its "default" ServiceAccount, as in a cluster). Workload controllers are left out on purpose:
// there is no kubelet, so Pods would never run anyway.
package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

const controllers = "garbagecollector,namespace,serviceaccount,serviceaccount-token"

// startControllerManager starts kube-controller-manager against the admin kubeconfig and
// returns a channel that yields its exit error.
func startControllerManager(ctx context.Context, kubeconfig string, pki *pkiFiles) (<-chan error, error) {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, fmt.Errorf("kube-controller-manager options: %w", err)
	}
	all, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	named := s.Flags(all, disabled, aliases)
	s.ParsedFlags = &named
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	for _, set := range named.FlagSets {
		fs.AddFlagSet(set)
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + controllers,
		"--service-account-private-key-file=" + pki.saKey,
		"--root-ca-file=" + pki.caCert,
		"--leader-elect=false",
		// No HTTPS endpoint for the controller manager: nothing scrapes it, and it saves a port.
		"--secure-port=0",
		"--use-service-account-credentials=false",
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-controller-manager flags: %w", err)
	}
	config, err := s.Config(ctx, all, disabled, aliases)
	if err != nil {
		return nil, fmt.Errorf("kube-controller-manager config: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- kcmapp.Run(ctx, config.Complete())
	}()
	return done, nil
}
