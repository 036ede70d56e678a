// Command testenv runs a real Kubernetes control plane for eiam-operator's tests, in one process:
// embedded etcd, kube-apiserver and the kube-controller-manager controllers an operator relies
// on, all built from the Kubernetes Go modules pinned in go.mod and bound to loopback ports
// picked at start. It writes an admin kubeconfig, a kubeconfig for a non-admin token user and a
// JSON description, prints one "testenv ready" line on stdout, and removes everything it wrote
// when it stops.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
)

// info is what --info-out receives once the control plane is ready.
type info struct {
	Server         string   `json:"server"`
	Version        string   `json:"version"`
	Kubeconfig     string   `json:"kubeconfig"`
	UserKubeconfig string   `json:"userKubeconfig"`
	UserName       string   `json:"userName"`
	UserGroups     []string `json:"userGroups"`
	AdminName      string   `json:"adminName"`
	CAFile         string   `json:"caFile"`
	CRDs           []string `json:"crds"`
	PID            int      `json:"pid"`
	// Node is set when --node runs one.
	Node         *nodeInfo `json:"node,omitempty"`
	DataDir      string    `json:"dataDir"`
	ReadySeconds float64   `json:"readySeconds"`
}

type flags struct {
	outDir         string
	kubeconfig     string
	userKubeconfig string
	infoOut        string
	crdDir         string
	logFile        string
	verbosity      int
	parentPID      int
	watchStdin     bool
	readyTimeout   time.Duration
	node           nodeFlags
}

func parseFlags() flags {
	var f flags
	flag.StringVar(&f.outDir, "out-dir", "", "directory for kubeconfig, user.kubeconfig and testenv.json (default: the temporary data directory)")
	flag.StringVar(&f.kubeconfig, "kubeconfig-out", "", "where to write the admin kubeconfig (default: OUT-DIR/kubeconfig)")
	flag.StringVar(&f.userKubeconfig, "user-kubeconfig-out", "", "where to write the token user's kubeconfig (default: OUT-DIR/user.kubeconfig)")
	flag.StringVar(&f.infoOut, "info-out", "", "where to write the JSON description once ready (default: OUT-DIR/testenv.json)")
	flag.StringVar(&f.crdDir, "crds", "", "install the CustomResourceDefinitions in DIR/*.yaml before the controllers start")
	flag.StringVar(&f.logFile, "log-file", "", "append component logs (apiserver, controllers, etcd) to this file instead of stderr")
	flag.IntVar(&f.verbosity, "v", 0, "klog verbosity of the Kubernetes components")
	flag.IntVar(&f.parentPID, "parent-pid", 0, "stop when the process with this id exits")
	flag.BoolVar(&f.watchStdin, "exit-on-stdin-close", false, "stop when stdin reaches end of file")
	flag.DurationVar(&f.readyTimeout, "ready-timeout", 90*time.Second, "give up when not ready after this long")
	flag.BoolVar(&f.node.enabled, "node", false, "also run a node: containerd, the kubelet, kube-proxy and kube-scheduler (node.go)")
	flag.StringVar(&f.node.binDir, "node-bin", "", "directory of the kubelet and kube-proxy binaries (make node: target/node)")
	flag.Var(&f.node.images, "node-image", "an image archive to load into the node's containerd (repeatable; the pause image among them)")
	flag.StringVar(&f.node.logDir, "node-log-dir", "", "where the node components write their logs (default: OUT-DIR/node-logs)")
	flag.Parse()
	return f
}

func main() {
	started := time.Now()
	f := parseFlags()
	if err := setupLogging(f); err != nil {
		fatalf("%v", err)
	}
	// Decide to stop before anything is started, so a parent that dies during start-up
	// still takes us down.
	stop := stopReasons(f.parentPID, f.watchStdin)

	// Our stdout/stderr may be pipes to a test process that is gone by the time we log our shutdown; without
	// this, Go dies of SIGPIPE on that write and never removes its data directory.
	signal.Ignore(syscall.SIGPIPE)
	sweepStaleDataDirs()
	dataDir, dataLock, err := createDataDir()
	if err != nil {
		fatalf("%v", err)
	}
	outDir := f.outDir
	if outDir == "" {
		outDir = dataDir
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		fatalf("create %s: %v", outDir, err)
	}
	if f.node.enabled && f.node.logDir == "" {
		f.node.logDir = filepath.Join(outDir, "node-logs")
	}
	paths := outputs{
		kubeconfig:     orDefault(f.kubeconfig, filepath.Join(outDir, "kubeconfig")),
		userKubeconfig: orDefault(f.userKubeconfig, filepath.Join(outDir, "user.kubeconfig")),
		info:           orDefault(f.infoOut, filepath.Join(outDir, "testenv.json")),
	}

	ctx, cancel := context.WithCancel(context.Background())
	cp := &controlPlane{dataDir: dataDir, dataLock: dataLock, outputs: paths, cancel: cancel,
		failed: make(chan error, 4), apiStopped: make(chan struct{})}
	go func() {
		reason := <-stop
		logf("stopping: %s", reason)
		cp.shutdown(0)
	}()

	desc, err := cp.start(ctx, f, started)
	if err != nil {
		logf("failed: %v", err)
		cp.shutdown(1)
	}
	if err := writeJSON(paths.info, desc); err != nil {
		logf("failed: %v", err)
		cp.shutdown(1)
	}
	fmt.Printf("testenv ready: kube-apiserver %s at %s in %.1fs (kubeconfig %s, info %s)\n",
		desc.Version, desc.Server, desc.ReadySeconds, paths.kubeconfig, paths.info)

	// Stay up until a stop reason arrives (the goroutine above exits the process) or a
	// component dies on its own.
	select {
	case err = <-cp.failed:
	case <-cp.apiStopped:
		err = fmt.Errorf("kube-apiserver stopped: %v", cp.apiErr)
	}
	if !cp.stopping.Load() {
		logf("failed: %v", err)
	}
	cp.shutdown(1)
}

type outputs struct {
	kubeconfig, userKubeconfig, info string
}

// controlPlane tracks what was started so shutdown can undo it.
type controlPlane struct {
	dataDir  string
	dataLock *os.File // held while dataDir exists; see datadir.go
	outputs  outputs
	cancel   context.CancelFunc
	etcdStop func()
	node     *node
	// apiStopped is closed once kube-apiserver has returned; apiErr is what it returned.
	apiStopped chan struct{}
	apiErr     error
	apiStarted atomic.Bool
	stopping   atomic.Bool
	failed     chan error
	stopOnce   sync.Once
}

func (cp *controlPlane) start(ctx context.Context, f flags, started time.Time) (*info, error) {
	pkiDir := filepath.Join(cp.dataDir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, err
	}
	pki, err := generatePKI(pkiDir)
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(pkiDir, "tokens.csv")
	token, err := writeTokenFile(tokenFile)
	if err != nil {
		return nil, err
	}

	var certs *nodeCerts
	if f.node.enabled {
		if cp.node, err = prepareNode(f.node, cp.dataDir, cp.failed); err != nil {
			return nil, err
		}
		if certs, err = issueNodeCerts(pki.ca, pkiDir); err != nil {
			return nil, err
		}
	}

	etcdLog := "stderr"
	if f.logFile != "" {
		etcdLog = f.logFile
	}
	etcd, etcdURL, err := startEtcd(cp.dataDir, etcdLog)
	if err != nil {
		return nil, err
	}
	cp.etcdStop = etcd.Close
	go func() { cp.failed <- fmt.Errorf("etcd stopped: %v", <-etcd.Err()) }()
	logf("etcd %s ready at %s", etcdVersion(), etcdURL)

	port, apiDone, err := startAPIServer(ctx, pki, tokenFile, filepath.Join(cp.dataDir, "apiserver"), etcdURL, certs)
	if err != nil {
		return nil, err
	}
	cp.apiStarted.Store(true)
	go func() {
		cp.apiErr = <-apiDone
		close(cp.apiStopped)
	}()
	server := "https://127.0.0.1:" + strconv.Itoa(port)

	if err := writeKubeconfig(cp.outputs.kubeconfig, server, pki.caCertPEM,
		&clientcmdapi.AuthInfo{ClientCertificateData: pki.adminCertPEM, ClientKeyData: pki.adminKeyPEM}, pki.adminUserName); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(cp.outputs.userKubeconfig, server, pki.caCertPEM,
		&clientcmdapi.AuthInfo{Token: token}, tokenUserName); err != nil {
		return nil, err
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", cp.outputs.kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}

	deadline, cancelDeadline := context.WithTimeout(ctx, f.readyTimeout)
	defer cancelDeadline()
	if err := cp.waitFor(deadline, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		status := 0
		client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		return status == http.StatusOK, nil
	}); err != nil {
		return nil, err
	}
	logf("kube-apiserver ready at %s after %.1fs", server, time.Since(started).Seconds())

	var crds []string
	if f.crdDir != "" {
		dyn, err := dynamic.NewForConfig(restConfig)
		if err != nil {
			return nil, err
		}
		if crds, err = applyCRDs(deadline, dyn, f.crdDir); err != nil {
			return nil, err
		}
		logf("CRDs established: %s", joinOrNone(crds))
	}

	kcmDone, err := startControllerManager(ctx, cp.outputs.kubeconfig, pki, f.node.enabled)
	if err != nil {
		return nil, err
	}
	go func() { cp.failed <- fmt.Errorf("kube-controller-manager stopped: %v", <-kcmDone) }()
	// The serviceaccount controller creating "default" in "default" shows the controllers run.
	if err := cp.waitFor(deadline, "kube-controller-manager (default ServiceAccount)", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return nil, err
	}

	var nodeDesc *nodeInfo
	if f.node.enabled {
		schedDone, err := startScheduler(ctx, cp.outputs.kubeconfig)
		if err != nil {
			return nil, err
		}
		go func() { cp.failed <- fmt.Errorf("kube-scheduler stopped: %v", <-schedDone) }()
		if err := cp.node.start(deadline, server, pki, certs, client); err != nil {
			return nil, err
		}
		nodeDesc = &nodeInfo{Name: nodeName, IP: nodeIP, PodCIDR: podCIDR, ContainerdSocket: cp.node.socket,
			LogDir: absolute(f.node.logDir)}
		logf("node %s ready after %.1fs", nodeName, time.Since(started).Seconds())
	}

	version, err := client.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("read server version: %w", err)
	}
	return &info{
		Server:         server,
		Version:        version.GitVersion,
		Kubeconfig:     absolute(cp.outputs.kubeconfig),
		UserKubeconfig: absolute(cp.outputs.userKubeconfig),
		UserName:       tokenUserName,
		UserGroups:     []string{tokenUserGroup},
		AdminName:      pki.adminUserName,
		CAFile:         pki.caCert,
		CRDs:           crds,
		PID:            os.Getpid(),
		DataDir:        cp.dataDir,
		ReadySeconds:   time.Since(started).Seconds(),
		Node:           nodeDesc,
	}, nil
}

// waitFor polls check until it holds, failing early when the API server exits.
func (cp *controlPlane) waitFor(ctx context.Context, what string, check wait.ConditionWithContextFunc) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-cp.apiStopped:
			return false, fmt.Errorf("kube-apiserver exited: %v", cp.apiErr)
		case err := <-cp.failed:
			return false, err
		default:
		}
		return check(ctx)
	})
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// shutdown stops the components, removes every file this process wrote, and exits. Stop
// reasons and failing components may call it concurrently: the first caller does the work and
// exits the process, later callers wait for that.
func (cp *controlPlane) shutdown(code int) {
	cp.stopOnce.Do(func() { cp.stopAndExit(code) })
	select {}
}

func (cp *controlPlane) stopAndExit(code int) {
	cp.stopping.Store(true)
	if cp.node != nil {
		// Before the API server goes, so that nothing of the node is left waiting on it.
		cp.node.stop()
	}
	cp.cancel()
	if cp.apiStarted.Load() {
		select {
		case <-cp.apiStopped:
		case <-time.After(5 * time.Second):
			logf("kube-apiserver did not stop within 5s; exiting anyway")
		}
	}
	if cp.etcdStop != nil {
		cp.etcdStop()
	}
	for _, path := range []string{cp.outputs.info, cp.outputs.kubeconfig, cp.outputs.userKubeconfig} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			logf("remove %s: %v", path, err)
		}
	}
	if err := os.RemoveAll(cp.dataDir); err != nil {
		logf("remove %s: %v", cp.dataDir, err)
	}
	cp.dataLock.Close()
	klog.Flush()
	logf("stopped")
	os.Exit(code)
}

// setupLogging routes klog (apiserver, controllers) to --log-file, or stderr by default.
func setupLogging(f flags) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	settings := map[string]string{"v": strconv.Itoa(f.verbosity)}
	if f.logFile != "" {
		settings["logtostderr"] = "false"
		settings["alsologtostderr"] = "false"
		settings["log_file"] = f.logFile
		settings["stderrthreshold"] = "FATAL"
		settings["one_output"] = "true"
	}
	for name, value := range settings {
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("klog flag %s: %w", name, err)
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	// Rename so a reader never sees a half-written file.
	return os.Rename(tmp, path)
}

func orDefault(value, fallback string) string {
	if value != "" {
		return value
	}
	return fallback
}

func absolute(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testenv: "+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	logf(format, args...)
	os.Exit(1)
}
