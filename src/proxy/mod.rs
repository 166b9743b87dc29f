//! The proxy: one client connection's requests, one after another, on the shard that
//! accepted it. Each request is a [`session::Session`] that goes through the phases in
//! [`phases`] (accept, authenticate, normalize, route, admit, guard, schema, cache,
//! forward) until one of them returns an [`outcome::Outcome`]; [`finish::finish`] is the one
//! place that writes the response and sends the record. ARCHITECTURE.md walks a request
//! through them.

mod body_log;
mod caching;
mod client_gone;
mod contain;
mod context;
mod finish;
mod headers;
mod http2;
mod open_sockets;
mod outcome;
mod phases;
mod relay;
mod session;
mod settle;
mod spans;

pub use caching::Caches;
pub use context::{ConnectionSlot, Lifecycle, ShardCtx, ShardLimits};

use std::rc::Rc;
use std::time::Instant;

use monoio::net::TcpStream;

use crate::http::{HttpError, RequestHead, ServerConn, ServerLimits};
use crate::route::RouteTable;
use session::{RequestId, Session};

/// Serves one client connection until it closes, errs, or the shard drains: TLS first when
/// the listener terminates it, then HTTP/2 (ALPN `h2`, or the prior-knowledge preface) or
/// HTTP/1.1. `slot` counts the connection against the shard's limit until it ends.
pub async fn serve_connection(ctx: Rc<ShardCtx>, stream: TcpStream, slot: ConnectionSlot) {
    let _slot = slot;
    let _ = stream.set_nodelay(true);
    let conn = match ctx.tls_server.clone() {
        Some(tls) => match http2::handshake_tls(&ctx, stream, &tls).await {
            Some(http2::Accepted::H2(tls)) => return http2::serve(ctx, *tls).await,
            Some(http2::Accepted::Http1(io)) => ServerConn::with_io(io),
            None => return,
        },
        None => ServerConn::new(stream),
    };
    let mut conn = conn;
    if serve_requests(&ctx, &mut conn).await == Handoff::Http2 {
        return http2::serve_prior_knowledge(ctx, conn).await;
    }
    conn.linger_if_body_unread().await;
}

/// What a connection's HTTP/1.1 loop ended with.
#[derive(Debug, PartialEq, Eq)]
enum Handoff {
    /// The connection is done.
    Closed,
    /// The client opened with the HTTP/2 preface: the HTTP/2 server takes the connection.
    Http2,
}

/// Serves the connection's requests one after another until one ends it.
async fn serve_requests(ctx: &Rc<ShardCtx>, conn: &mut ServerConn) -> Handoff {
    let mut first = true;
    loop {
        let limits = ServerLimits::from_config(&ctx.table.load().server);
        let head = match conn.read_head(&limits, first).await {
            Ok(h) => h,
            Err(HttpError::Http2Preface) => return Handoff::Http2,
            Err(HttpError::Closed) | Err(HttpError::Io(_)) => return Handoff::Closed,
            Err(e) => {
                tracing::debug!(error = %e, shard = ctx.shard_id, "bad request head");
                finish::refuse_head(ctx, conn, &e).await;
                return Handoff::Closed;
            }
        };
        first = false;
        let keep = serve_one(ctx, conn, head, &limits).await;
        if conn.end_request() {
            crate::shard::release_freed_memory();
        }
        // An answer that did not say `connection: close` promised the client this connection
        // for its next request, even when the drain began meanwhile: that request is answered
        // (with `connection: close`, see `Session::new`). Idle connections are closed when the
        // shard's drain ends.
        if !keep {
            return Handoff::Closed;
        }
    }
}

/// Serves one request whose head was read (an HTTP/1.1 request, or an HTTP/2 stream) and
/// contains a panic in it. Returns whether the connection may serve another request.
async fn serve_one(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    head: RequestHead,
    limits: &ServerLimits,
) -> bool {
    let _inflight = ctx.enter();
    // The request runs on the table current when its head arrived (a swap while the
    // connection sat idle must not leave it on the old one).
    let table = ctx.table.load_full();
    // Known outside the request's future, so a panic inside it is recorded as this request.
    let id = RequestId::new(&head);
    // Boxed where it is built: the phases' future is tens of KB. Handed on by value (to
    // `catch_panic`, then `catch_unwind`) it was copied at each step, and held inline it
    // made every idle keep-alive connection's task as large as a request in flight.
    let request = Box::pin(handle_request(ctx, &table, conn, head, limits, id.clone()));
    let result = contain::catch_panic(request).await;
    match result {
        Ok(keep) => keep,
        Err(panic) => {
            tracing::error!(
                shard = ctx.shard_id,
                request_id = %id.id,
                panic = contain::panic_message(&panic),
                "a request panicked; its connection is closed, the shard serves on"
            );
            finish::answer_panic(ctx, conn, id).await;
            false
        }
    }
}

/// Runs one request through the phases and finishes it. Returns whether the connection
/// stays open.
async fn handle_request(
    ctx: &ShardCtx,
    table: &RouteTable,
    conn: &mut ServerConn,
    head: RequestHead,
    limits: &ServerLimits,
    id: RequestId,
) -> bool {
    let mut session = Session::new(ctx, table, conn, head, limits, id);
    let outcome = phases::run(&mut session).await;
    finish::finish(session, outcome).await
}

/// Time since `start` in milliseconds, for records.
pub(crate) fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
