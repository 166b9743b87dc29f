//! HTTP/2 in mockllm: h2c with prior knowledge on the HTTP/1.1 port (a connection's first
//! bytes say which it speaks), and h2 over TLS when started with `--tls-cert`/`--tls-key`
//! (tokio-rustls over monoio's poll-io bridge, ALPN `h2`). Each stream is one request,
//! answered by the same handlers, knobs and faults as HTTP/1.1 (see [`super::peer`]).

use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::io::IntoPollIo;
use monoio::net::TcpStream;

use super::dialect::Dialect;
use super::handler::{handle, ServerContext};
use super::peer::{H2Peer, Peer};
use super::request::{Request, MAX_BODY_BYTES, MAX_HEADERS};
use super::respond::write_json;

/// Streams a client may have open at once on one connection.
const MAX_STREAMS: u32 = 256;
/// Largest request header block accepted.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// A TLS server configuration for `--tls-cert`/`--tls-key` (PEM files), offering `h2`.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves one TLS connection: the handshake, then HTTP/2.
pub async fn serve_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    ctx: Rc<ServerContext>,
) {
    let Ok(io) = stream.into_poll_io() else {
        return;
    };
    if let Ok(tls) = acceptor.accept(io).await {
        serve(tls, ctx).await;
    }
}

/// Serves an HTTP/2 connection: each stream is spawned as its own task on this thread.
pub async fn serve<T>(io: T, ctx: Rc<ServerContext>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    ctx.stats.count_http2_connection();
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(io)
        .await;
    let Ok(mut conn) = handshake else {
        return;
    };
    while let Some(next) = conn.accept().await {
        let Ok((request, respond)) = next else {
            return;
        };
        monoio::spawn(serve_stream(request, respond, ctx.clone()));
    }
    // The client said goodbye: the streams still running finish.
    let _ = std::future::poll_fn(|cx| conn.poll_closed(cx)).await;
}

/// Reads one stream's request and answers it like an HTTP/1.1 request.
async fn serve_stream(
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    ctx: Rc<ServerContext>,
) {
    ctx.stats.count_http2_request();
    let (parts, mut body) = request.into_parts();
    let mut peer = Peer::H2(H2Peer::new(respond));
    if parts.headers.len() > MAX_HEADERS {
        let body = Dialect::OpenAi.error_body(431, "request too large");
        let _ = write_json(&mut peer, 431, &body, false, "").await;
        return;
    }
    let mut data = Vec::new();
    let mut too_large = false;
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return;
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > MAX_BODY_BYTES {
            too_large = true;
            break;
        }
        data.extend_from_slice(&chunk);
    }
    if too_large {
        let body = Dialect::OpenAi.error_body(413, "request too large");
        let _ = write_json(&mut peer, 413, &body, false, "").await;
        return;
    }
    // The authority stands for the HTTP/1.1 `host` header.
    let authority = parts.uri.authority().map(|a| a.as_str());
    let headers: Vec<(&str, &[u8])> = authority
        .map(|a| ("host", a.as_bytes()))
        .into_iter()
        .chain(
            parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        )
        .collect();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::new(parts.method.as_str(), target, &headers, &ctx.config);
    request.body = data;
    let _ = handle(&mut peer, request, &ctx).await;
    if let Peer::H2(peer) = &mut peer {
        peer.finish();
    }
}

/// A connection whose first bytes were already read (to look for the preface): they are
/// read again first.
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    /// `inner`, with `prefix` in front of what it reads.
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Self {
            prefix: Bytes::from(prefix),
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
