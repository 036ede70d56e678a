//! Throwaway certificates for the HTTPS tests: a CA and a server certificate for the given DNS names, made with the
//! `openssl` command (Debian's, which `ca-certificates` depends on), so no certificate-minting crate joins the
//! dependency tree for tests alone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and one server certificate signed by it, in a temporary directory that lives as long as this value.
pub struct TestPki {
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM): what a client must trust.
    pub ca_pem: PathBuf,
    /// The server certificate (PEM), valid for the DNS names asked for.
    pub server_cert: PathBuf,
    /// The server's private key (PEM, PKCS#8).
    pub server_key: PathBuf,
}

impl TestPki {
    /// The CA certificate's PEM text.
    pub fn ca_pem_text(&self) -> String {
        std::fs::read_to_string(&self.ca_pem).expect("read the test CA certificate")
    }
}

/// A fresh CA (P-256, valid one day) and a server certificate for `dns_names` (an IP address among them becomes
/// an IP subject alternative name).
pub fn test_pki(dns_names: &[&str]) -> TestPki {
    let dir = tempfile::tempdir().expect("temporary directory for the test PKI");
    let path = |name: &str| dir.path().join(name);
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=eiam-operator test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir.path(),
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=fake-eiam",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    let san: Vec<String> = dns_names
        .iter()
        .map(|name| match name.parse::<std::net::IpAddr>() {
            Ok(_) => format!("IP:{name}"),
            Err(_) => format!("DNS:{name}"),
        })
        .collect();
    std::fs::write(
        path("server.ext"),
        format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
            san.join(",")
        ),
    )
    .expect("write the certificate extensions");
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    TestPki {
        ca_pem: path("ca.pem"),
        server_cert: path("server.pem"),
        server_key: path("server.key"),
        _dir: dir,
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package `openssl`) to make test certificates");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
