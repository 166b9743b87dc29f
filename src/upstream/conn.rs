//! A connection to a provider: plain TCP or TLS (rustls through monoio-rustls), with its read
//! buffer, so bytes read past one response stay with the connection; or one HTTP/2 stream
//! of a shared connection (see [`super::h2pool`]), read the same way.

use std::sync::Arc;

use bytes::BytesMut;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;

use super::error::UpstreamError;
use super::h2call::H2Body;
use super::registry::UpstreamLink;
use crate::route::{Provider, Scheme};

/// The transport of an upstream connection.
pub enum UpstreamIo {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<ClientTlsStream<TcpStream>>),
    /// An answer already in memory (the built-in mock): every byte of the response sits in
    /// the connection's read buffer, reads see the end, writes are discarded.
    Memory,
    /// The body of one HTTP/2 response: reads yield its DATA frames' payload and end at
    /// the end of the stream; the request went out before, so writes are refused.
    H2(Box<H2Body>),
}

impl AsyncReadRent for UpstreamIo {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamIo::Plain(s) => s.read(buf).await,
            UpstreamIo::Tls(s) => s.read(buf).await,
            UpstreamIo::Memory => (Ok(0), buf),
            UpstreamIo::H2(b) => b.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamIo::Plain(s) => s.readv(buf).await,
            UpstreamIo::Tls(s) => s.readv(buf).await,
            // The whole answer sits in the read buffer: the stream has ended.
            UpstreamIo::Memory => (Ok(0), buf),
            // Nothing reads a provider's body vectored.
            UpstreamIo::H2(_) => (Err(std::io::ErrorKind::Unsupported.into()), buf),
        }
    }
}

impl AsyncWriteRent for UpstreamIo {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamIo::Plain(s) => s.write(buf).await,
            UpstreamIo::Tls(s) => s.write(buf).await,
            UpstreamIo::Memory => {
                let n = buf.bytes_init();
                (Ok(n), buf)
            }
            UpstreamIo::H2(_) => (Err(std::io::ErrorKind::Unsupported.into()), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamIo::Plain(s) => s.writev(buf).await,
            UpstreamIo::Tls(s) => s.writev(buf).await,
            // Nothing writes vectored to a provider; a memory peer has no use for it.
            UpstreamIo::Memory | UpstreamIo::H2(_) => {
                (Err(std::io::ErrorKind::Unsupported.into()), buf)
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            UpstreamIo::Plain(s) => s.flush().await,
            UpstreamIo::Tls(s) => s.flush().await,
            UpstreamIo::Memory | UpstreamIo::H2(_) => Ok(()),
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            UpstreamIo::Plain(s) => s.shutdown().await,
            UpstreamIo::Tls(s) => s.shutdown().await,
            UpstreamIo::Memory | UpstreamIo::H2(_) => Ok(()),
        }
    }
}

/// A connection with its read buffer and whether it came from the pool.
pub struct UpstreamConn {
    /// The transport.
    pub io: UpstreamIo,
    /// Bytes read but not yet consumed.
    pub buf: BytesMut,
    /// True when it served an earlier request (a failure before the response may be staleness).
    pub reused: bool,
}

impl UpstreamConn {
    /// A connection whose peer already said everything: `response` (a whole HTTP/1.1
    /// response) is read from memory by the same code that reads a provider's socket.
    pub fn in_memory(response: &[u8]) -> Self {
        Self {
            io: UpstreamIo::Memory,
            buf: BytesMut::from(response),
            reused: false,
        }
    }

    /// Reads once into the buffer's spare capacity; `Ok(0)` is EOF.
    pub async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.io.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        res
    }
}

/// The process-wide TLS client configuration (webpki roots, HTTP/1.1 ALPN).
pub fn tls_connector() -> TlsConnector {
    match client_config(web_roots(), ALPN_HTTP1) {
        Ok(c) => TlsConnector::from(c),
        // ring supports the default versions; this branch only exists to avoid a panic path.
        Err(_) => TlsConnector::from(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    }
}

/// A TLS client that also trusts the CA certificates in a PEM file.
pub fn tls_connector_with_ca_file(path: &std::path::Path) -> Result<TlsConnector, String> {
    let roots = roots_with_ca_file(path)?;
    client_config(roots, ALPN_HTTP1).map(TlsConnector::from)
}

/// The TLS client of an HTTP/2 provider: the web PKI roots (plus `ca_file`), ALPN offering
/// `h2` then `http/1.1`. It is tokio-rustls over monoio's poll-io bridge, the pairing that
/// h2 runs on under io_uring (monoio-rustls under h2 panics there).
pub(crate) fn h2_tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, String> {
    let roots = match ca_file {
        Some(path) => roots_with_ca_file(path)?,
        None => web_roots(),
    };
    client_config(roots, ALPN_H2_HTTP1).map(|c| tokio_rustls::TlsConnector::from(Arc::new(c)))
}

/// A blocking TLS client configuration as a provider's connections use (the web PKI roots,
/// plus `ca_file`; HTTP/1.1 ALPN), for checks run off the shards (`infergate doctor`).
pub fn blocking_client_config(
    ca_file: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = match ca_file {
        Some(path) => roots_with_ca_file(path)?,
        None => web_roots(),
    };
    client_config(roots, ALPN_HTTP1).map(Arc::new)
}

/// ALPN of HTTP/1.1 connections.
const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];
/// ALPN of HTTP/2 providers: h2 preferred, HTTP/1.1 accepted.
const ALPN_H2_HTTP1: &[&[u8]] = &[b"h2", b"http/1.1"];

fn web_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// The web PKI roots and the CA certificates of a PEM file (at least one).
fn roots_with_ca_file(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = web_roots();
    let certs =
        rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())?;
    let mut added = 0;
    for cert in certs {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
        added += 1;
    }
    if added == 0 {
        return Err("no certificate in the file".into());
    }
    Ok(roots)
}

fn client_config(
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(c)
}

/// A TCP connection to the first address the provider's `link` resolved (no timeout: the
/// caller bounds the whole connect).
pub(crate) async fn tcp_connect(
    provider: &Provider,
    link: &UpstreamLink,
) -> Result<TcpStream, UpstreamError> {
    provider.addr.as_ref().ok_or(UpstreamError::NoAddress)?;
    let target = *link
        .resolved
        .load()
        .first()
        .ok_or(UpstreamError::NoAddress)?;
    let tcp = TcpStream::connect_addr(target)
        .await
        .map_err(UpstreamError::Connect)?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// The TLS server name of a provider's host.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, UpstreamError> {
    ServerName::try_from(host.to_string()).map_err(|e| UpstreamError::Tls(e.to_string()))
}

/// Opens a new connection to a provider within its connect timeout, at an address its
/// `link` resolved, over the link's TLS client or the shard's default one.
pub async fn connect(
    provider: &Provider,
    link: &UpstreamLink,
    tls: &TlsConnector,
) -> Result<UpstreamConn, UpstreamError> {
    let addr = provider.addr.as_ref().ok_or(UpstreamError::NoAddress)?;
    let fut = async {
        let tcp = tcp_connect(provider, link).await?;
        match addr.scheme {
            Scheme::Http => Ok(UpstreamIo::Plain(tcp)),
            Scheme::Https => {
                let stream = link
                    .tls
                    .as_ref()
                    .unwrap_or(tls)
                    .connect(server_name(&addr.host)?, tcp)
                    .await
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
                Ok(UpstreamIo::Tls(Box::new(stream)))
            }
        }
    };
    let io = monoio::time::timeout(provider.connect_timeout, fut)
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)??;
    Ok(UpstreamConn {
        io,
        buf: BytesMut::with_capacity(16 * 1024),
        reused: false,
    })
}
