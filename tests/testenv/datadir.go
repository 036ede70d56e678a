// datadir.go owns the temporary data directory (etcd data, certificates, token file). A control plane that is
// SIGKILLed cannot remove it, so each directory carries a lock held for the process's lifetime, and every start
// sweeps directories whose lock is free: their owner is gone.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const dataDirPattern = "eiam-testenv-*"

// createDataDir makes a fresh data directory under the system temp dir and locks it. The returned file holds the
// lock; keep it open until the directory is removed.
func createDataDir() (string, *os.File, error) {
	dir, err := os.MkdirTemp("", dataDirPattern)
	if err != nil {
		return "", nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	return dir, lock, nil
}

// lockDir takes the exclusive lock of dir without waiting.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sweepStaleDataDirs removes data directories left behind by control planes that were killed. A directory
// without a lock file is left alone: it may belong to one that is starting right now.
func sweepStaleDataDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dataDirPattern))
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, ".lock")); err != nil {
			continue
		}
		lock, err := lockDir(dir)
		if err != nil {
			continue // its control plane is running
		}
		// A control plane killed with a node (--node) leaves its containers' processes and mounts behind.
		deleteContainersUnder(dir)
		killProcessesUnder(dir)
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			logf("remove stale data directory %s: %v", dir, err)
		} else {
			logf("removed the data directory of a control plane that was killed: %s", dir)
		}
		lock.Close()
	}
}

// killProcessesUnder SIGKILLs every process whose command line names a path under dir: the containerd shims and
// containers of a node whose control plane was killed (its containerd, kubelet and kube-proxy die with it, by
// their parent-death signal; the shims are made to outlive containerd).
func killProcessesUnder(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, path := range procs {
		cmdline, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(cmdline), dir+"/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// deleteContainersUnder force-deletes (SIGKILL, then remove) the containers runc keeps state for under the node's
// runc root in dir (containerdConfig sets it), which a killed shim would otherwise leave running.
func deleteContainersUnder(dir string) {
	root := filepath.Join(dir, "node", "run", "runc")
	entries, err := os.ReadDir(filepath.Join(root, "k8s.io"))
	if err != nil {
		return
	}
	for _, entry := range entries {
		if out, err := exec.Command("runc", "--root", filepath.Join(root, "k8s.io"), "delete", "--force", entry.Name()).CombinedOutput(); err != nil {
			logf("runc delete %s: %v: %s", entry.Name(), err, out)
		}
	}
}
