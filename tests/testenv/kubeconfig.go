// kubeconfig.go writes the two client identities the tests use: the admin (client certificate
// in system:masters) and a plain user authenticated by a static bearer token, who has no RBAC
// grants until a test gives it some.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The static-token user: a non-admin principal the tests can act as.
const (
	tokenUserName  = "eiam-test-user"
	tokenUserGroup = "eiam-test-users"
)

// writeTokenFile writes the API server's --token-auth-file with one user and returns its token.
func writeTokenFile(path string) (string, error) {
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	token := hex.EncodeToString(buf)
	// Format: token,user,uid,"group1,group2"
	line := fmt.Sprintf("%s,%s,%s,\"%s\"\n", token, tokenUserName, tokenUserName, tokenUserGroup)
	return token, os.WriteFile(path, []byte(line), 0o600)
}

// writeKubeconfig writes a single-context kubeconfig with everything inline, so it keeps
// working when copied elsewhere (and kube-rs needs no extra files).
func writeKubeconfig(path, server string, caPEM []byte, user *clientcmdapi.AuthInfo, userName string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["eiam-testenv"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[userName] = user
	cfg.Contexts["eiam-testenv"] = &clientcmdapi.Context{Cluster: "eiam-testenv", AuthInfo: userName, Namespace: "default"}
	cfg.CurrentContext = "eiam-testenv"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}
