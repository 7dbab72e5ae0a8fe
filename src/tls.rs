//! TLS on the game port (`--tls-cert` and `--tls-key`): TLS 1.3 and 1.2 only,
//! with rustls, and optionally mutual TLS (`--tls-client-ca`: every client
//! must present a certificate signed by one of those CAs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::{Error as PemError, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, version};

use crate::config::Config;

/// Why TLS cannot be set up; each names the setting whose file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file of certificates could not be read or parsed.
    #[error("{setting} {}: {source}", path.display())]
    Certificates {
        /// `tls_cert` or `tls_client_ca`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: PemError,
    },
    /// A PEM file holds no certificate.
    #[error("{setting} {}: no certificate in the file", path.display())]
    NoCertificate {
        /// `tls_cert` or `tls_client_ca`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The private key could not be read or parsed.
    #[error("tls_key {}: {source}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        source: PemError,
    },
    /// A client CA certificate is not usable as a trust anchor.
    #[error("tls_client_ca {}: {source}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The certificate chain and the key do not make a usable pair (or rustls refused its settings).
    #[error("tls_cert and tls_key do not make a usable pair: {0}")]
    Pair(#[from] tokio_rustls::rustls::Error),
}

/// The acceptor `config` asks for, or `None` for plain TCP.
///
/// # Errors
/// [`TlsError`] naming the setting and file at fault.
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, TlsError> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let chain = certificates("tls_cert", cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.clone(),
        source,
    })?;
    let provider = Arc::new(default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])?;
    let builder = match &config.tls_client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let client_ca = |source: Box<dyn std::error::Error + Send + Sync>| TlsError::ClientCa {
                path: ca.clone(),
                source,
            };
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls_client_ca", ca)? {
                roots.add(cert).map_err(|e| client_ca(e.into()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| client_ca(e.into()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder.with_single_cert(chain, key)?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// Every certificate in the PEM file of `setting`; at least one.
fn certificates(setting: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|source| TlsError::Certificates {
            setting,
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            setting,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}
