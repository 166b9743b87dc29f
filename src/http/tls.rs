//! TLS termination for the client listener: rustls with the certificate and key from PEM
//! files, re-read when the files change (no restart), ALPN `h2` and `http/1.1`.
//!
//! The handshake and the session run through tokio-rustls on monoio's poll-io bridge
//! (`../shared/notes/runtime.md`: monoio-rustls under h2 panics on io_uring).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerTlsConfig;

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM object of the kind wanted.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The key does not fit the certificate, or rustls refused the configuration.
    #[error("{0}")]
    Config(String),
}

/// The certificate presented to clients; swapped whole when its files change.
#[derive(Debug)]
struct CertStore {
    current: ArcSwap<CertifiedKey>,
    /// The files and their modification times when last loaded.
    source: Mutex<(ServerTlsConfig, Option<(SystemTime, SystemTime)>)>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Accepts TLS connections; shared by every shard.
pub struct TlsTerminator {
    /// Offers `h2` then `http/1.1`.
    with_h2: TlsAcceptor,
    /// Offers `http/1.1` only (when `[server] http2 = false`).
    h1_only: TlsAcceptor,
    certs: Arc<CertStore>,
}

impl std::fmt::Debug for TlsTerminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTerminator").finish_non_exhaustive()
    }
}

impl TlsTerminator {
    /// Loads the certificate and key `files` name.
    pub fn new(files: &ServerTlsConfig) -> Result<Self, TlsError> {
        let key = load(files)?;
        let certs = Arc::new(CertStore {
            current: ArcSwap::from_pointee(key),
            source: Mutex::new((files.clone(), stamps(files))),
        });
        let acceptor = |alpn: &[&[u8]]| -> Result<TlsAcceptor, TlsError> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?
                .with_no_client_auth()
                .with_cert_resolver(certs.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(Self {
            with_h2: acceptor(&[b"h2", b"http/1.1"])?,
            h1_only: acceptor(&[b"http/1.1"])?,
            certs,
        })
    }

    /// The acceptor for a new connection: `http2` offers HTTP/2 through ALPN.
    pub fn acceptor(&self, http2: bool) -> &TlsAcceptor {
        if http2 {
            &self.with_h2
        } else {
            &self.h1_only
        }
    }

    /// Loads the certificate again when `files` differ from the last ones or either file
    /// changed since. A file that can't be loaded leaves the current certificate in place
    /// (and the error is returned, to be logged). Returns whether a new one is in use.
    pub fn reload_if_changed(&self, files: &ServerTlsConfig) -> Result<bool, TlsError> {
        let now = stamps(files);
        {
            let Ok(source) = self.certs.source.lock() else {
                return Ok(false);
            };
            if source.0 == *files && source.1 == now {
                return Ok(false);
            }
        }
        let loaded = load(files);
        // Remember the attempt either way, so a broken file is reported once, not twice a second.
        if let Ok(mut source) = self.certs.source.lock() {
            *source = (files.clone(), now);
        }
        self.certs.current.store(Arc::new(loaded?));
        Ok(true)
    }
}

/// The files' modification times (None when either can't be read).
fn stamps(files: &ServerTlsConfig) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(&files.cert)?, m(&files.key)?))
}

/// Reads the chain and key and checks that they belong together.
fn load(files: &ServerTlsConfig) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: &Path, message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_err(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&files.cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(&files.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_err(&files.key, e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_err(&files.key, e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError::Config(format!("the key does not match the certificate: {e}")))?;
    Ok(certified)
}
