//! TLS server configuration from PEM files, shared by the HTTPS `/metrics` endpoint and the fake EIAM's HTTPS mode:
//! one way to read a certificate chain and key, one way to build a rustls server (ring, HTTP/1.1).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file that could not be used: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemProblem {
    /// The file at fault.
    pub path: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

/// A PEM certificate chain (at least one certificate) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_pem_pair(
    cert_file: &Path,
    key_file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PemProblem> {
    let problem = |path: &Path, reason: String| PemProblem {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| problem(cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(problem(cert_file, "no CERTIFICATE in it".to_owned()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|e| problem(key_file, e.to_string()))?;
    Ok((chain, key))
}

/// A rustls server (ring, safe default versions) for `chain` and `key`, speaking HTTP/1.1 (axum's `http1`).
pub fn http1_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
