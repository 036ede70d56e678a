// apiserver.go runs the real kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app) in this
// process, configured through its own command-line flags so it behaves as in a cluster:
// TLS with our CA, client-certificate and static-token authentication, Node+RBAC
// authorization, the default admission plugins and a service-account issuer for TokenRequest.
package main

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/util/compatibility"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// serviceIP is the first address of the service range: the in-cluster "kubernetes" Service.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
	saIssuer    = "https://kubernetes.default.svc.cluster.local"
)

// startAPIServer starts kube-apiserver on a loopback port it holds from the start, and
// returns the port and a channel that yields the server's exit error.
func startAPIServer(ctx context.Context, pki *pkiFiles, tokenFile, certDir, etcdURL string) (int, <-chan error, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, fmt.Errorf("listen for kube-apiserver: %w", err)
	}
	port := listener.Addr().(*net.TCPAddr).Port

	s := options.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, set := range s.Flags().FlagSets {
		fs.AddFlagSet(set)
	}
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--client-ca-file=" + pki.caCert,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=Node,RBAC",
		// The defaults (NamespaceLifecycle, ServiceAccount, ValidatingAdmissionPolicy, webhooks,
		// ResourceQuota, ...) stay on; NodeRestriction is what a kubeadm cluster adds.
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=" + saIssuer,
		"--service-account-key-file=" + pki.saKey,
		"--service-account-signing-key-file=" + pki.saKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		// The endpoint reconciler would publish 127.0.0.1 as the "kubernetes" Service's endpoint,
		// which Endpoints validation rejects; nothing in the tests needs in-cluster routing.
		"--endpoint-reconciler-type=none",
	}
	if err := fs.Parse(args); err != nil {
		listener.Close()
		return 0, nil, fmt.Errorf("kube-apiserver flags: %w", err)
	}
	s.SecureServing.Listener = listener
	s.SecureServing.BindPort = port

	// What NewAPIServerCommand does before running: resolve feature gates and versions, and
	// keep the in-process loopback clients from logging the server's own warnings.
	if err := compatibility.DefaultComponentGlobalsRegistry.Set(); err != nil {
		return 0, nil, err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	completed, err := s.Complete(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("complete kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return 0, nil, fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}

	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, completed)
	}()
	return port, done, nil
}
