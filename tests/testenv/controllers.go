// controllers.go runs the parts of kube-controller-manager an operator depends on: the garbage
// collector (ownerReference cascading deletion), the namespace controller (namespace deletion
// empties and removes the namespace) and the service-account controllers (every namespace gets
// its "default" ServiceAccount, as in a cluster). Workload controllers are left out on purpose:
// there is no kubelet unless --node starts one, and then nodeControllers join.
package main

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

const controllers = "garbagecollector,namespace,serviceaccount,serviceaccount-token"

// nodeControllers run as well when a node runs (--node): Deployments roll out into ReplicaSets and Pods, PDBs get
// their status, every namespace gets the kube-root-ca.crt ConfigMap a pod's token volume projects, the node loses
// its not-ready taint once Ready (node lifecycle), and pods of a
// deleted owner or a gone node are collected.
const nodeControllers = ",deployment,replicaset,disruption,root-ca-cert-publisher,podgc,nodelifecycle"

// startControllerManager starts kube-controller-manager against the admin kubeconfig and
// returns a channel that yields its exit error.
func startControllerManager(ctx context.Context, kubeconfig string, pki *pkiFiles, withNode bool) (<-chan error, error) {
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
	enabled := controllers
	if withNode {
		enabled += nodeControllers
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + enabled,
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
