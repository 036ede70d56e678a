// etcd.go starts the embedded etcd 3.6 that backs the API server. It runs in this process
// (go.etcd.io/etcd/server/v3/embed), on loopback, without fsync: the data is thrown away.
package main

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	etcdversion "go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
)

// startEtcd starts a single-member etcd under dir and returns it with its client URL.
// embed needs concrete ports in its URLs (they are advertised to the cluster), so free
// ports are picked first; a lost race for a port is retried with new ones.
func startEtcd(dir, logOutput string) (*embed.Etcd, string, error) {
	// etcd preallocates each 64 MB WAL segment (plus the next one); a test run writes a few MB, so small
	// segments keep the data directory around 10 MB instead of 130 MB.
	wal.SegmentSizeBytes = 4 * 1000 * 1000
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		clientPort, err := freePort()
		if err != nil {
			return nil, "", err
		}
		peerPort, err := freePort()
		if err != nil {
			return nil, "", err
		}
		clientURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(clientPort)}
		peerURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(peerPort)}

		cfg := embed.NewConfig()
		cfg.Name = "testenv"
		cfg.Dir = filepath.Join(dir, fmt.Sprintf("etcd-%d", attempt))
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		cfg.UnsafeNoFsync = true
		// The API server relies on progress notifications for consistent reads from its
		// watch cache; this is the interval kubeadm configures.
		cfg.WatchProgressNotifyInterval = 5 * time.Second
		cfg.Logger = "zap"
		cfg.LogLevel = "warn"
		cfg.LogOutputs = []string{logOutput}

		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "address already in use") {
				continue
			}
			return nil, "", fmt.Errorf("start etcd: %w", err)
		}
		select {
		case <-e.Server.ReadyNotify():
			return e, clientURL.String(), nil
		case err := <-e.Err():
			e.Close()
			return nil, "", fmt.Errorf("etcd failed while starting: %w", err)
		case <-time.After(30 * time.Second):
			e.Close()
			return nil, "", fmt.Errorf("etcd was not ready after 30s")
		}
	}
	return nil, "", fmt.Errorf("start etcd: no free ports after 5 attempts: %w", lastErr)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// etcdVersion reports the embedded etcd's version for the start-up log.
func etcdVersion() string {
	return etcdversion.Version
}
