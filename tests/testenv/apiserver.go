// apiserver.go runs the real kube-apiserver (k8s.io/kubernetes/cmd/kube-apiserver/app) in this
// process, configured through its own command-line flags so it behaves as in a cluster:
// TLS with our CA, client-certificate and static-token authentication, Node+RBAC
// authorization, the default admission plugins and a service-account issuer for TokenRequest.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

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
func startAPIServer(ctx context.Context, pki *pkiFiles, tokenFile, certDir, etcdURL string, nodeCerts *nodeCerts) (int, <-chan error, error) {
	var listener net.Listener
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, fmt.Errorf("listen for kube-apiserver: %w", err)
	}
	port := listener.Addr().(*net.TCPAddr).Port
	if nodeCerts != nil {
		// Pods reach the API server through the "kubernetes" Service, which kube-proxy sends to the node's
		// address: listen there too, on the same port, and keep loopback for everything else.
		onNode, err := net.Listen("tcp", net.JoinHostPort(nodeIP, strconv.Itoa(port)))
		if err != nil {
			listener.Close()
			return 0, nil, fmt.Errorf("listen for kube-apiserver on the node address: %w", err)
		}
		listener = newMultiListener(listener, onNode)
	}

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
	if nodeCerts != nil {
		args = append(args,
			// The "kubernetes" Service's endpoint is the node address, where pods can reach us; the lease
			// reconciler publishes it as in a cluster.
			"--advertise-address="+nodeIP,
			"--endpoint-reconciler-type=lease",
			// kubectl logs and the like: the API server calls the kubelet with its own client certificate.
			"--kubelet-client-certificate="+nodeCerts.apiserverClient.cert,
			"--kubelet-client-key="+nodeCerts.apiserverClient.key,
			"--kubelet-preferred-address-types=InternalIP",
		)
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

// multiListener accepts from several listeners as one.
type multiListener struct {
	listeners []net.Listener
	conns     chan acceptResult
	closed    chan struct{}
	closeOnce sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

func newMultiListener(listeners ...net.Listener) *multiListener {
	m := &multiListener{listeners: listeners, conns: make(chan acceptResult), closed: make(chan struct{})}
	for _, l := range listeners {
		go func(l net.Listener) {
			for {
				conn, err := l.Accept()
				select {
				case m.conns <- acceptResult{conn, err}:
				case <-m.closed:
					if conn != nil {
						conn.Close()
					}
					return
				}
				if err != nil {
					return
				}
			}
		}(l)
	}
	return m
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case r := <-m.conns:
		return r.conn, r.err
	case <-m.closed:
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	var errs []error
	for _, l := range m.listeners {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// Addr is the first (loopback) listener's: the port both share.
func (m *multiListener) Addr() net.Addr { return m.listeners[0].Addr() }
