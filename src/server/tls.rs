//! TLS for the ingest listener: rustls (ring), ALPN h2 and http/1.1, optional client
//! certificates (mTLS) checked against `client_ca_file`. Building a config publishes the
//! serving certificate's notAfter as `siemgate_tls_cert_expiry_seconds{listener="ingest"}`.

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

use crate::config::TlsConfig;
use crate::telemetry::{names, Telemetry};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {path}: {error}")]
    Certs { path: String, error: String },
    #[error("no certificate found in {0}")]
    NoCerts(String),
    #[error("cannot read the private key from {path}: {error}")]
    Key { path: String, error: String },
    #[error("TLS setup failed: {0}")]
    Rustls(String),
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |e: rustls_pki_types::pem::Error| TlsError::Certs {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    if certs.is_empty() {
        return Err(TlsError::NoCerts(path.display().to_string()));
    }
    Ok(certs)
}

/// When the leaf (first) certificate of a chain expires: its notAfter, in Unix seconds.
pub fn not_after(chain: &[CertificateDer<'_>]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The ingest listener's current TLS setup (`None`: plain HTTP). Every new connection takes
/// the one in place when it is accepted; a reload swaps in a new one, and connections already
/// open keep theirs.
pub type Current = Arc<arc_swap::ArcSwapOption<rustls::ServerConfig>>;

/// Builds the rustls server config from the files named in `[server.tls]` and publishes the
/// certificate's notAfter.
pub fn server_config(
    cfg: &TlsConfig,
    tel: &Telemetry,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (config, expiry) = build(cfg)?;
    publish_expiry(tel, expiry);
    Ok(config)
}

/// Sets `siemgate_tls_cert_expiry_seconds{listener="ingest"}`: the serving certificate's notAfter.
pub fn publish_expiry(tel: &Telemetry, not_after: i64) {
    tel.gauge(names::TLS_CERT_EXPIRY, &[("listener", "ingest")])
        .set(not_after as f64);
}

/// Builds the rustls server config from the files named in `[server.tls]`, and says when its
/// certificate expires (notAfter, Unix seconds); publishes nothing (a reload publishes once
/// the whole new config is good).
pub fn build(cfg: &TlsConfig) -> Result<(Arc<rustls::ServerConfig>, i64), TlsError> {
    let chain = certs(&cfg.cert_file)?;
    let expiry = not_after(&chain).ok_or_else(|| TlsError::Certs {
        path: cfg.cert_file.display().to_string(),
        error: "the first certificate is not a valid X.509 certificate".into(),
    })?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(|e| TlsError::Key {
        path: cfg.key_file.display().to_string(),
        error: e.to_string(),
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &cfg.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| TlsError::Rustls(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), expiry))
}
