//! HTTP/2 connections from clients: the TLS handshake that may choose `h2` through ALPN, the
//! switch from a plain connection that opened with the prior-knowledge preface, and the
//! connection loop that serves each stream as one request on its own task, through the same
//! phases, session and `finish` as an HTTP/1.1 request.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::poll_io::{AsyncRead, AsyncWrite};
use monoio::io::IntoPollIo;
use monoio::net::TcpStream;

use super::{finish, serve_one, ShardCtx};
use crate::http::h2::{request_head, H2Responder, Rewind};
use crate::http::tls::TlsTerminator;
use crate::http::{ClientIo, PollRent, ServerConn, ServerLimits, TlsClientStream};

/// A TLS connection after its handshake.
pub(super) enum Accepted {
    /// The client chose HTTP/2.
    H2(Box<TlsClientStream>),
    /// HTTP/1.1 over TLS.
    Http1(ClientIo),
}

/// Runs the TLS handshake within the first-request timeout; `None` when it failed (logged).
pub(super) async fn handshake_tls(
    ctx: &ShardCtx,
    stream: TcpStream,
    tls: &TlsTerminator,
) -> Option<Accepted> {
    let (http2, wait) = {
        let table = ctx.table.load();
        (
            table.server.http2,
            Duration::from_millis(table.server.first_request_timeout_ms),
        )
    };
    let io = match stream.into_poll_io() {
        Ok(io) => io,
        Err(e) => {
            tracing::debug!(shard = ctx.shard_id, error = %e, "socket could not switch to poll IO");
            return None;
        }
    };
    let session = match monoio::time::timeout(wait, tls.acceptor(http2).accept(io)).await {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => {
            tracing::debug!(shard = ctx.shard_id, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(shard = ctx.shard_id, "TLS handshake timed out");
            return None;
        }
    };
    if session.get_ref().1.alpn_protocol() == Some(b"h2") {
        Some(Accepted::H2(Box::new(session)))
    } else {
        Some(Accepted::Http1(ClientIo::Tls(Box::new(PollRent::new(
            session,
        )))))
    }
}

/// Serves HTTP/2 on a connection whose first bytes were the prior-knowledge preface (they
/// are read again by the HTTP/2 server).
pub(super) async fn serve_prior_knowledge(ctx: Rc<ShardCtx>, conn: ServerConn) {
    let (io, read) = conn.into_parts();
    match io {
        ClientIo::Plain(tcp) => match tcp.into_poll_io() {
            Ok(poll) => serve(ctx, Rewind::new(read.freeze(), poll)).await,
            Err(e) => tracing::debug!(error = %e, "socket could not switch to poll IO"),
        },
        ClientIo::Tls(tls) => serve(ctx, Rewind::new(read.freeze(), tls.into_inner())).await,
        ClientIo::H2(_) => {}
    }
}

/// Serves an HTTP/2 connection until the client closes it, it stays idle past the keep-alive
/// timeout, or the shard drains (then GOAWAY, and the open streams finish).
pub(super) async fn serve<T: AsyncRead + AsyncWrite + Unpin + 'static>(ctx: Rc<ShardCtx>, io: T) {
    let (max_streams, limits) = {
        let table = ctx.table.load();
        (
            table.server.http2_max_streams,
            ServerLimits::from_config(&table.server),
        )
    };
    let handshake =
        crate::http::h2::builder(max_streams, limits.max_header_bytes).handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout(limits.first_request_timeout, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(shard = ctx.shard_id, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    let streams = Rc::new(OpenStreams::new());
    let closing = closing_time(&ctx, &streams, limits.keepalive_timeout);
    let mut closing = std::pin::pin!(closing);
    let mut shutting_down = false;
    loop {
        let next = if shutting_down {
            Next::Stream(conn.accept().await)
        } else {
            monoio::select! {
                stream = conn.accept() => Next::Stream(stream),
                () = &mut closing => Next::Close,
            }
        };
        match next {
            Next::Close => {
                conn.graceful_shutdown();
                shutting_down = true;
            }
            Next::Stream(None) => return,
            Next::Stream(Some(Err(e))) => {
                tracing::debug!(shard = ctx.shard_id, error = %e, "HTTP/2 connection ended");
                return;
            }
            Next::Stream(Some(Ok((request, respond)))) => {
                let open = OpenStreams::enter(&streams);
                monoio::spawn(serve_stream(Rc::clone(&ctx), request, respond, open));
            }
        }
    }
}

/// What the connection loop woke up for.
enum Next<S> {
    /// A new stream (or the connection's end).
    Stream(Option<Result<S, h2::Error>>),
    /// Time to close: the shard drains, or the connection sat idle too long.
    Close,
}

/// Serves one stream as one request.
async fn serve_stream(
    ctx: Rc<ShardCtx>,
    request: http::Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
    _open: OpenStream,
) {
    let limits = ServerLimits::from_config(&ctx.table.load().server);
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let mut conn = ServerConn::for_h2(H2Responder::new(respond), body, declared);
    match request_head(&parts, &limits) {
        Ok(head) => {
            // `serve_one` boxes the request's large future itself, so the stream's task
            // stays small.
            serve_one(&ctx, &mut conn, head, &limits).await;
        }
        Err(e) => {
            tracing::debug!(error = %e, shard = ctx.shard_id, "bad HTTP/2 request head");
            finish::refuse_head(&ctx, &mut conn, &e).await;
        }
    }
    conn.linger_if_body_unread().await;
}

/// Resolves when the connection should close: the shard drains, or no stream has been open
/// for the keep-alive timeout. Checked once a second.
async fn closing_time(ctx: &ShardCtx, streams: &OpenStreams, keepalive: Duration) {
    loop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        if ctx.lifecycle.is_draining() {
            return;
        }
        if streams.open.get() == 0 && streams.idle_since.get().elapsed() >= keepalive {
            return;
        }
    }
}

/// The streams of one connection being served, and since when none has been.
struct OpenStreams {
    open: Cell<usize>,
    idle_since: Cell<Instant>,
}

impl OpenStreams {
    fn new() -> Self {
        Self {
            open: Cell::new(0),
            idle_since: Cell::new(Instant::now()),
        }
    }

    fn enter(this: &Rc<Self>) -> OpenStream {
        this.open.set(this.open.get() + 1);
        OpenStream(Rc::clone(this))
    }
}

/// One stream being served; counted until dropped.
struct OpenStream(Rc<OpenStreams>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let s = &self.0;
        s.open.set(s.open.get().saturating_sub(1));
        s.idle_since.set(Instant::now());
    }
}
