// certs.go holds the throw-away PKI of one control plane: a CA, the API server's serving
// certificate, the admin's client certificate and the service-account signing key. Everything
// is generated at start so no key material is ever committed or shared between runs.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// authority is a self-signed CA that signs the serving and client certificates.
type authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// pkiFiles are the paths of the generated material, as the API server flags want them.
type pkiFiles struct {
	caCert        string
	servingCert   string
	servingKey    string
	saKey         string
	adminCertPEM  []byte
	adminKeyPEM   []byte
	caCertPEM     []byte
	adminUserName string
	// ca signs the node's client certificates (node.go) after the fact.
	ca *authority
}

// certValidity is long enough for a developer who keeps one control plane running for days.
const certValidity = 30 * 24 * time.Hour

func newAuthority(commonName string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key, certPEM: encodePEM("CERTIFICATE", der)}, nil
}

// issue signs a fresh P-256 key for tmpl and returns the certificate and PKCS#8 key as PEM.
func (a *authority) issue(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = randomSerial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(certValidity)
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodePEM("CERTIFICATE", der), encodePEM("PRIVATE KEY", keyDER), nil
}

// generatePKI writes the CA, the serving pair and the service-account key under dir and
// returns the admin client certificate in memory (it only goes into the admin kubeconfig).
func generatePKI(dir string) (*pkiFiles, error) {
	ca, err := newAuthority("eiam-testenv-ca")
	if err != nil {
		return nil, fmt.Errorf("generate CA: %w", err)
	}
	servingCert, servingKey, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP(serviceIP)},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	})
	if err != nil {
		return nil, fmt.Errorf("issue serving certificate: %w", err)
	}
	// system:masters is the group RBAC bootstraps as cluster-admin: the admin kubeconfig
	// must be able to do anything, including installing CRDs and RBAC for the tests.
	const adminUser = "eiam-testenv-admin"
	adminCert, adminKey, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: adminUser, Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("issue admin certificate: %w", err)
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saKeyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}

	files := &pkiFiles{
		caCert:        filepath.Join(dir, "ca.crt"),
		servingCert:   filepath.Join(dir, "apiserver.crt"),
		servingKey:    filepath.Join(dir, "apiserver.key"),
		saKey:         filepath.Join(dir, "service-account.key"),
		adminCertPEM:  adminCert,
		adminKeyPEM:   adminKey,
		caCertPEM:     ca.certPEM,
		adminUserName: adminUser,
		ca:            ca,
	}
	for path, data := range map[string][]byte{
		files.caCert:      ca.certPEM,
		files.servingCert: servingCert,
		files.servingKey:  servingKey,
		files.saKey:       encodePEM("EC PRIVATE KEY", saKeyDER),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func encodePEM(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func randomSerial() *big.Int {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		// crypto/rand never fails on Linux; a fixed serial would still be valid for a test CA.
		return big.NewInt(time.Now().UnixNano())
	}
	return serial.Add(serial, big.NewInt(1))
}
