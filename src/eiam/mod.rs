//! The EIAM OpenAPI client: a pure request signer, a typed client, credential providers and errors.

pub mod budget;
pub mod client;
pub mod clock;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod expiration;
pub mod limits;
pub mod observe;
pub mod request;
pub mod secret;
pub mod signer;
pub mod types;

pub use client::{Admission, CallGate, ClientConfig, Deferral, EiamClient, Fence};
pub use credentials::{CredentialError, CredentialProvider, Credentials, StaticProvider};
pub use endpoint::Endpoint;
pub use error::{EiamError, ErrorBody};
pub use request::SignatureVersion;
pub use secret::SecretString;

/// Installs rustls' ring crypto provider as the process default, once.
///
/// reqwest is built with `rustls-no-provider` and kube uses ring, so exactly one provider must be installed before
/// the first TLS client is built. Calling this again (or after someone else installed one) is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn install_crypto_provider_is_idempotent() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
