// node.go runs one real node beside the control plane when --node is given: Debian's containerd (runc, cgroupfs)
// with the CNI bridge plugin, the kubelet and kube-proxy built from the same Kubernetes release as the API server
// (tests/node), and a sandbox image built locally. Pods scheduled there really run: the kubelet mounts their
// ServiceAccount token, runs their probes and restarts their containers; kube-proxy routes the "kubernetes"
// Service to the API server. Everything lives under the data directory except what the kernel keeps globally (a
// bridge, iptables chains, network namespaces), which stop removes, and a run killed before it could is swept at
// the next start.
package main

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The node's fixed names and addresses. They are global to the machine (a bridge, iptables rules), so one node
// runs at a time, guarded by nodeLockPath.
const (
	nodeName   = "testenv-node"
	nodeBridge = "eiam-node0"
	// nodeIP is the bridge's address: the pods' gateway, the node's InternalIP, and where the API server listens
	// for pods (besides loopback) and advertises itself as the "kubernetes" Service's endpoint.
	nodeIP       = "10.244.0.1"
	podCIDR      = "10.244.0.0/24"
	nodeLockPath = "/run/lock/eiam-testenv-node.lock"
	// pauseImage is the sandbox image; hack/build-node.sh builds it and passes its archive with --node-image.
	pauseImage = "localhost/pause:testenv"
)

// nodeFlags configure --node.
type nodeFlags struct {
	enabled bool
	binDir  string
	images  stringList
	logDir  string
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// nodeInfo is the node's part of testenv.json.
type nodeInfo struct {
	Name             string `json:"name"`
	IP               string `json:"ip"`
	PodCIDR          string `json:"podCIDR"`
	ContainerdSocket string `json:"containerdSocket"`
	LogDir           string `json:"logDir"`
}

// node is what was started, so stop can undo it in reverse.
type node struct {
	flags      nodeFlags
	dir        string
	lock       *os.File
	socket     string
	bridgeUp   bool
	containerd *exec.Cmd
	kubelet    *exec.Cmd
	kubeProxy  *exec.Cmd
	failed     chan<- error
	// dead receives the exit of any component, so a wait during start fails at once instead of at its deadline.
	dead chan error
}

// nodeCerts are the client identities of the node's components, issued by the control plane's CA.
type nodeCerts struct {
	kubelet, kubeProxy, apiserverClient certPair
}

type certPair struct{ cert, key string }

// prepareNode takes the node lock, sweeps what a killed run left, and creates the bridge, whose address the API
// server must be able to listen on before it starts.
func prepareNode(f nodeFlags, dataDir string, failed chan<- error) (*node, error) {
	for _, tool := range []string{"containerd", "ctr", "ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("--node needs %s on PATH (make node installs Debian's containerd, "+
				"containernetworking-plugins, iproute2 and iptables): %w", tool, err)
		}
	}
	for _, bin := range []string{"kubelet", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(f.binDir, bin)); err != nil {
			return nil, fmt.Errorf("--node: %s missing in %s (make node builds it): %w", bin, f.binDir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		return nil, fmt.Errorf("--node: no CNI bridge plugin in %s (Debian's containernetworking-plugins): %w", cniBinDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(nodeLockPath), 0o755); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(nodeLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", nodeLockPath, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another testenv runs a node (%s is locked): one node per machine, its bridge "+
			"and iptables rules are global", nodeLockPath)
	}
	n := &node{flags: f, dir: filepath.Join(dataDir, "node"), lock: lock, failed: failed, dead: make(chan error, 8)}
	n.socket = filepath.Join(n.dir, "containerd.sock")
	for _, sub := range []string{"", "cni/net.d", "cni/ipam", "kubelet", "pki", "run"} {
		if err := os.MkdirAll(filepath.Join(n.dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(f.logDir, 0o755); err != nil {
		return nil, err
	}
	// Holding the lock, nothing else owns the bridge or the chains: what exists is a killed run's.
	n.removeGlobalState()
	for _, args := range [][]string{
		{"link", "add", nodeBridge, "type", "bridge"},
		{"addr", "add", nodeIP + "/24", "dev", nodeBridge},
		{"link", "set", nodeBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return n, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	n.bridgeUp = true
	return n, nil
}

// cniBinDir is where Debian's containernetworking-plugins puts the plugins.
const cniBinDir = "/usr/lib/cni"

// issueNodeCerts makes the kubelet's (system:node:NAME in system:nodes, which the Node authorizer and the
// NodeRestriction admission plugin recognise), kube-proxy's (system:kube-proxy, bound to system:node-proxier by
// RBAC's bootstrap policy) and the API server's client certificate toward the kubelet.
func issueNodeCerts(ca *authority, dir string) (*nodeCerts, error) {
	issue := func(name string, subject pkix.Name) (certPair, error) {
		cert, key, err := ca.issue(&x509.Certificate{
			Subject:     subject,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return certPair{}, fmt.Errorf("issue %s certificate: %w", name, err)
		}
		pair := certPair{cert: filepath.Join(dir, name+".crt"), key: filepath.Join(dir, name+".key")}
		if err := os.WriteFile(pair.cert, cert, 0o600); err != nil {
			return certPair{}, err
		}
		return pair, os.WriteFile(pair.key, key, 0o600)
	}
	var certs nodeCerts
	var err error
	if certs.kubelet, err = issue("kubelet", pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}); err != nil {
		return nil, err
	}
	if certs.kubeProxy, err = issue("kube-proxy", pkix.Name{CommonName: "system:kube-proxy"}); err != nil {
		return nil, err
	}
	// kubeadm gives the API server's kubelet client a cluster-admin group as well.
	if certs.apiserverClient, err = issue("apiserver-kubelet-client", pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}); err != nil {
		return nil, err
	}
	return &certs, nil
}

// start runs containerd, loads the images, then the kubelet and kube-proxy, and waits until the node is Ready and
// the "kubernetes" Service answers on its ClusterIP.
func (n *node) start(ctx context.Context, server string, pki *pkiFiles, certs *nodeCerts, client kubernetes.Interface) error {
	if err := n.startContainerd(ctx); err != nil {
		return err
	}
	for _, image := range n.flags.images {
		out, err := exec.CommandContext(ctx, "ctr", "--address", n.socket, "--namespace", "k8s.io", "images", "import", image).CombinedOutput()
		if err != nil {
			return fmt.Errorf("import %s into containerd: %v: %s", image, err, out)
		}
		logf("node: imported %s", strings.TrimSpace(string(out)))
	}

	kubeletKubeconfig := filepath.Join(n.dir, "kubelet.kubeconfig")
	if err := writeCertKubeconfig(kubeletKubeconfig, server, pki, certs.kubelet, "system:node:"+nodeName); err != nil {
		return err
	}
	proxyKubeconfig := filepath.Join(n.dir, "kube-proxy.kubeconfig")
	if err := writeCertKubeconfig(proxyKubeconfig, server, pki, certs.kubeProxy, "system:kube-proxy"); err != nil {
		return err
	}
	kubeletPort, err := freePortOn(nodeIP)
	if err != nil {
		return err
	}
	config := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(config, []byte(kubeletConfig(n.dir, n.socket, pki.caCert, kubeletPort)), 0o600); err != nil {
		return err
	}
	n.kubelet, err = n.spawn("kubelet", filepath.Join(n.flags.binDir, "kubelet"),
		"--config="+config,
		"--kubeconfig="+kubeletKubeconfig,
		"--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.dir, "pki"),
		"--hostname-override="+nodeName,
		"--node-ip="+nodeIP,
		"--v=1")
	if err != nil {
		return err
	}
	proxyConfig := filepath.Join(n.dir, "kube-proxy.yaml")
	if err := os.WriteFile(proxyConfig, []byte(kubeProxyConfig(proxyKubeconfig)), 0o600); err != nil {
		return err
	}
	n.kubeProxy, err = n.spawn("kube-proxy", filepath.Join(n.flags.binDir, "kube-proxy"), "--config="+proxyConfig, "--v=1")
	if err != nil {
		return err
	}

	if err := n.poll(ctx, "node "+nodeName+" Ready", func() (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}); err != nil {
		return err
	}
	// kube-proxy programs the ClusterIP for this host's own connections too: a TCP connection from here
	// shows the pods' path to the API server works.
	return n.poll(ctx, "the kubernetes Service at "+serviceIP+":443 (kube-proxy)", func() (bool, error) {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(serviceIP, "443"), time.Second)
		if err != nil {
			return false, nil
		}
		conn.Close()
		return true, nil
	})
}

func (n *node) startContainerd(ctx context.Context) error {
	config := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(config, []byte(containerdConfig(n.dir, n.socket)), 0o600); err != nil {
		return err
	}
	conflist := filepath.Join(n.dir, "cni/net.d/10-testenv.conflist")
	if err := os.WriteFile(conflist, []byte(cniConfig(filepath.Join(n.dir, "cni/ipam"))), 0o600); err != nil {
		return err
	}
	var err error
	if n.containerd, err = n.spawn("containerd", "containerd", "--config", config); err != nil {
		return err
	}
	return n.poll(ctx, "containerd", func() (bool, error) {
		return exec.CommandContext(ctx, "ctr", "--address", n.socket, "version").Run() == nil, nil
	})
}

// spawn starts a node component with its output in LOG-DIR/NAME.log; its exit is a failure of the control plane
// unless stop is under way.
func (n *node) spawn(name, bin string, args ...string) (*exec.Cmd, error) {
	logFile, err := os.OpenFile(filepath.Join(n.flags.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A testenv that is SIGKILLed takes its node processes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logf("node: %s started (pid %d, log %s)", name, cmd.Process.Pid, logFile.Name())
	go func() {
		err := cmd.Wait()
		logFile.Close()
		// The log goes with the data directory of a test's control plane: quote its end.
		tail, _ := os.ReadFile(logFile.Name())
		exited := fmt.Errorf("node: %s exited: %v (log %s), ending:\n%s", name, err, logFile.Name(), lastLines(string(tail), 20))
		n.dead <- exited
		select {
		case n.failed <- exited:
		default:
		}
	}()
	return cmd, nil
}

// stop ends the node's pods and components and removes what they made outside the data directory.
func (n *node) stop() {
	terminate(n.kubeProxy)
	terminate(n.kubelet)
	if n.containerd != nil {
		// The kubelet is gone: remove every pod sandbox through the CRI, which also stops its containers and lets
		// CNI release its address and its network namespace.
		if err := removeSandboxes(n.socket); err != nil {
			logf("node: remove pod sandboxes: %v", err)
		}
		terminate(n.containerd)
	}
	n.removeGlobalState()
	unmountUnder(n.dir)
	if n.lock != nil {
		n.lock.Close()
	}
}

// removeGlobalState deletes what the node makes outside the data directory: the bridge, the iptables chains of
// kube-proxy and the kubelet, and the kubelet's device-manager socket.
func (n *node) removeGlobalState() {
	if kubeProxy := filepath.Join(n.flags.binDir, "kube-proxy"); fileExists(kubeProxy) {
		if out, err := exec.Command(kubeProxy, "--cleanup").CombinedOutput(); err != nil {
			logf("node: kube-proxy --cleanup: %v: %s", err, lastLines(string(out), 5))
		}
	}
	// The kubelet's own chains, which kube-proxy --cleanup leaves.
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, rule := range [][]string{
			{"-D", "INPUT", "-j", "KUBE-FIREWALL"}, {"-D", "OUTPUT", "-j", "KUBE-FIREWALL"},
			{"-F", "KUBE-FIREWALL"}, {"-X", "KUBE-FIREWALL"},
			{"-t", "mangle", "-X", "KUBE-IPTABLES-HINT"},
			{"-t", "mangle", "-X", "KUBE-KUBELET-CANARY"}, {"-t", "nat", "-X", "KUBE-KUBELET-CANARY"},
			{"-t", "filter", "-X", "KUBE-KUBELET-CANARY"},
		} {
			_ = exec.Command(tool, rule...).Run() // absent chains are fine
		}
	}
	// The kubelet's device-manager socket has a fixed path, whatever --root-dir says; the directories go only if
	// nothing else is in them.
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	_ = os.Remove("/var/lib/kubelet/device-plugins")
	_ = os.Remove("/var/lib/kubelet")
	if out, err := exec.Command("ip", "link", "show", nodeBridge).CombinedOutput(); err == nil && len(out) > 0 {
		if out, err := exec.Command("ip", "link", "delete", nodeBridge).CombinedOutput(); err != nil {
			logf("node: delete bridge %s: %v: %s", nodeBridge, err, out)
		}
	}
	n.bridgeUp = false
}

// removeSandboxes stops and removes every pod sandbox containerd's CRI knows.
func removeSandboxes(socket string) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	cri := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := cri.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, sandbox := range list.Items {
		if _, err := cri.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", sandbox.Metadata.GetName(), err))
		}
		if _, err := cri.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandbox.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", sandbox.Metadata.GetName(), err))
		}
	}
	if len(list.Items) > 0 {
		logf("node: removed %d pod sandboxes", len(list.Items))
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount below dir, deepest first: the kubelet's token volumes and its bind mount of
// its root directory, containerd's root filesystems.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, point := range points {
		if err := syscall.Unmount(point, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			logf("unmount %s: %v", point, err)
		}
	}
}

// terminate sends SIGTERM and waits up to 10 s, then SIGKILLs.
func terminate(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if errors.Is(cmd.Process.Signal(syscall.Signal(0)), os.ErrProcessDone) {
			return
		}
	}
	_ = cmd.Process.Kill()
}

func writeCertKubeconfig(path, server string, pki *pkiFiles, pair certPair, user string) error {
	cert, err := os.ReadFile(pair.cert)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(pair.key)
	if err != nil {
		return err
	}
	return writeKubeconfig(path, server, pki.caCertPEM,
		&clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}, user)
}

func freePortOn(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// poll checks every 200 ms until ok, ctx ends or a node component exits.
func (n *node) poll(ctx context.Context, what string, check func() (bool, error)) error {
	for {
		select {
		case err := <-n.dead:
			return fmt.Errorf("waiting for %s: %w", what, err)
		default:
		}
		ok, err := check()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// containerdConfig keeps all of containerd's state under dir: its root, state, socket and runc's state, so it
// never meets a containerd the machine may run itself.
func containerdConfig(dir, socket string) string {
	return `version = 2
root = "` + dir + `/containerd/root"
state = "` + dir + `/containerd/state"
[grpc]
  address = "` + socket + `"
[plugins."io.containerd.internal.v1.opt"]
  path = "` + dir + `/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + pauseImage + `"
  # Nothing may lower an OOM score here (CAP_SYS_RESOURCE is not in this machine's bounding set): without this,
  # runc fails every sandbox on the kubelet's -998 with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pods' network namespaces under the state directory, not /run/netns: a run that is killed leaves them inside
  # its data directory, which the next start sweeps.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "` + dir + `/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "` + cniBinDir + `"
    conf_dir = "` + dir + `/cni/net.d"
`
}

// cniConfig is a bridge on nodeBridge (which prepareNode made, with the gateway address) and host-local IPAM.
func cniConfig(ipamDir string) string {
	return `{
  "cniVersion": "1.0.0",
  "name": "testenv",
  "plugins": [
    {"type": "bridge", "bridge": "` + nodeBridge + `", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "` + ipamDir + `",
              "ranges": [[{"subnet": "` + podCIDR + `", "gateway": "` + nodeIP + `"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`
}

// kubeletConfig: cgroup v1 with cgroupfs (kubelet 1.35+ refuses cgroup v1 unless failCgroupV1 is false), the API
// server's CA for client certificates and webhook authorization (as kubeadm sets it up), no image garbage
// collection (the images cannot be pulled again: there is no registry) and no eviction on a busy test machine.
func kubeletConfig(dir, socket, caFile string, port int) string {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://` + socket + `
address: ` + nodeIP + `
port: ` + strconv.Itoa(port) + `
readOnlyPort: 0
healthzPort: 0
podCIDR: ` + podCIDR + `
podLogsDir: ` + dir + `/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ` + caFile + `}
authorization:
  mode: Webhook
clusterDomain: cluster.local
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
resolvConf: /etc/resolv.conf
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
serializeImagePulls: false
`
}

// kubeProxyConfig: iptables mode; no conntrack tuning (the sysctls are the machine's, not ours to change).
func kubeProxyConfig(kubeconfig string) string {
	return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ` + kubeconfig + `
mode: iptables
clusterCIDR: ` + podCIDR + `
hostnameOverride: ` + nodeName + `
bindAddress: 127.0.0.1
healthzBindAddress: ""
metricsBindAddress: ""
nodePortAddresses: [` + nodeIP + `/32]
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`
}
