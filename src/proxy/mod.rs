//! The phases of one proxied request, in the order DESIGN.md gives them: accept/parse,
//! authenticate, normalize, route, forward, respond, record. One connection's requests run
//! here one after another on the shard that accepted it.

mod caching;
mod client_gone;
mod contain;
mod context;
mod forward;
mod headers;
mod relay;
mod respond;

pub use caching::Caches;
pub use context::{ConnectionSlot, Lifecycle, ShardCtx, ShardLimits};

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use monoio::net::TcpStream;

use crate::api::{ApiError, ErrorKind, RequestBodyError};
use crate::http::{BodyLength, HttpError, Method, RequestHead, ServerConn, ServerLimits};
use crate::policy::KeyCheck;
use crate::wire::Endpoint;
use respond::{write_error, write_error_with, write_json, RequestMeta};

/// Serves one client connection until it closes, errs, or the shard drains. `slot` counts
/// the connection against the shard's limit until it ends.
pub async fn serve_connection(ctx: Rc<ShardCtx>, stream: TcpStream, slot: ConnectionSlot) {
    let _slot = slot;
    let mut conn = ServerConn::new(stream);
    serve_requests(&ctx, &mut conn).await;
    conn.linger_if_body_unread().await;
}

/// Serves the connection's requests one after another until one ends it.
async fn serve_requests(ctx: &Rc<ShardCtx>, conn: &mut ServerConn) {
    let mut first = true;
    loop {
        let limits = ServerLimits::from_config(&ctx.table.load().server);
        let head = match conn.read_head(&limits, first).await {
            Ok(h) => h,
            Err(HttpError::Closed) | Err(HttpError::Io(_)) => return,
            Err(e) => {
                tracing::debug!(error = %e, shard = ctx.shard_id, "bad request head");
                reject_unreadable(ctx, conn, &e, None).await;
                return;
            }
        };
        first = false;
        let _inflight = ctx.enter();
        // The request runs on the table current when its head arrived (a swap while the
        // connection sat idle must not leave it on the old one).
        let table = ctx.table.load_full();
        let request = handle_request(ctx, &table, conn, head, &limits);
        let keep = match contain::catch_panic(request).await {
            Ok(keep) => keep,
            Err(panic) => {
                contain::answer_panic(ctx, conn, &panic).await;
                return;
            }
        };
        if conn.end_request() {
            crate::shard::release_freed_memory();
        }
        if !keep || ctx.lifecycle.is_draining() {
            return;
        }
    }
}

/// Answers a request whose head or body could not be read, then the connection closes.
/// `endpoint` is known once the head was read: the error then comes in its dialect.
async fn reject_unreadable(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    e: &HttpError,
    endpoint: Option<Endpoint>,
) {
    let Some(status) = e.status() else { return };
    let (kind, code) = match status {
        431 => (
            ErrorKind::HeadersTooLarge,
            "request_header_fields_too_large",
        ),
        413 => (ErrorKind::PayloadTooLarge, "request_too_large"),
        408 => (ErrorKind::RequestTimeout, "request_timeout"),
        503 => (ErrorKind::Unavailable, "gateway_busy"),
        _ => (ErrorKind::InvalidRequest, "invalid_request"),
    };
    let err = ApiError::new(kind, code, e.to_string());
    let mut meta = RequestMeta::new(ctx.shard_id);
    let endpoint = endpoint.unwrap_or(Endpoint::ChatCompletions);
    meta.dialect = endpoint.error_wire();
    let retry: &[(&str, &[u8])] = if status == 503 {
        &[("retry-after", b"1")]
    } else {
        &[]
    };
    let _ = write_error_with(conn, &meta, &err, false, retry).await;
    ctx.records.send(meta.record_for_error(endpoint, &err, 0));
}

/// Whether the request announced a body (a request answered without reading its body can't
/// keep the connection).
fn announces_body(head: &RequestHead) -> bool {
    head.headers.get("transfer-encoding").is_some()
        || head
            .headers
            .get_str("content-length")
            .is_some_and(|v| v.trim() != "0")
}

/// The gateway key a client presented: `Authorization: Bearer K` or `x-api-key: K`.
fn presented_key(head: &RequestHead) -> Option<&[u8]> {
    if let Some(v) = head.headers.get("authorization") {
        let v = v.trim_ascii();
        if let Some((scheme, key)) = v.split_at_checked(7) {
            if scheme.eq_ignore_ascii_case(b"bearer ") && !key.is_empty() {
                return Some(key.trim_ascii());
            }
        }
    }
    head.headers.get("x-api-key").map(<[u8]>::trim_ascii)
}

async fn handle_request(
    ctx: &ShardCtx,
    table: &crate::route::RouteTable,
    conn: &mut ServerConn,
    head: RequestHead,
    limits: &ServerLimits,
) -> bool {
    let mut meta = RequestMeta::new(ctx.shard_id);
    let keep_alive = head.wants_keep_alive() && !ctx.lifecycle.is_draining();
    let body_unread_keep = keep_alive && !announces_body(&head);

    // Parse: which endpoint.
    let Some(endpoint) = Endpoint::from_path(head.path()) else {
        let err = ApiError::new(
            ErrorKind::NotFound,
            "unknown_url",
            format!(
                "Unknown request URL: {} {}",
                method_name(head.method),
                head.path()
            ),
        );
        return finish_error(
            ctx,
            conn,
            &meta,
            Endpoint::ChatCompletions,
            &err,
            body_unread_keep,
            0,
        )
        .await;
    };
    meta.dialect = endpoint.error_wire();
    let want = if endpoint == Endpoint::Models {
        Method::Get
    } else {
        Method::Post
    };
    if head.method != want {
        let err = ApiError::new(
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            format!(
                "{} is not allowed on {}",
                method_name(head.method),
                head.path()
            ),
        );
        return finish_error(ctx, conn, &meta, endpoint, &err, body_unread_keep, 0).await;
    }

    // Authenticate, before any body is read or any upstream work.
    match table.keys.check(presented_key(&head)) {
        KeyCheck::Open => {}
        KeyCheck::Accepted(name) => meta.key = Some(name.to_string()),
        KeyCheck::Missing => {
            let err = ApiError::new(
                ErrorKind::Authentication,
                "missing_api_key",
                "You didn't provide an API key. Send a gateway key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
            );
            return finish_error(ctx, conn, &meta, endpoint, &err, body_unread_keep, 0).await;
        }
        KeyCheck::Rejected => {
            let err = ApiError::new(
                ErrorKind::Authentication,
                "invalid_api_key",
                "Incorrect API key provided.",
            );
            return finish_error(ctx, conn, &meta, endpoint, &err, body_unread_keep, 0).await;
        }
    }

    if endpoint == Endpoint::Models {
        let ok = write_json(conn, &meta, 200, table.models_json.clone(), keep_alive, &[])
            .await
            .is_ok();
        let mut rec = meta.base_record(endpoint, 200);
        rec.bytes_out = table.models_json.len() as u64;
        ctx.records.send(rec);
        return ok && keep_alive;
    }

    // Framing first: a request whose body can't be delimited is answered and closed
    // before anything else is judged.
    let framing_error = match head.body_framing() {
        Err(why) => Some(HttpError::Malformed(why)),
        Ok(BodyLength::Length(n)) if n > limits.max_body_bytes as u64 => {
            Some(HttpError::BodyTooLarge)
        }
        Ok(_) => None,
    };
    if let Some(e) = framing_error {
        tracing::debug!(error = %e, "request body refused");
        reject_unreadable(ctx, conn, &e, Some(endpoint)).await;
        return false;
    }
    if let Some(err) = browser_guard(table, &head) {
        return finish_error(ctx, conn, &meta, endpoint, &err, body_unread_keep, 0).await;
    }
    if ctx.failpoints {
        failpoint(&head);
    }

    let mut permit = ctx.bodies.permit();
    let body: Bytes = match conn.read_body(&head, limits, &mut permit).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "request body refused");
            if e.status().is_some() {
                reject_unreadable(ctx, conn, &e, Some(endpoint)).await;
            }
            return false;
        }
    };

    // Normalize: the borrowed view of the body.
    let parsed = ctx.scratch.borrow_mut().parse(endpoint, &body);
    let view = match parsed {
        Ok(v) => v,
        Err(e) => {
            let code = match &e {
                RequestBodyError::InvalidJson(_) | RequestBodyError::NotAnObject => "invalid_json",
                RequestBodyError::Missing(_) => "missing_required_parameter",
                RequestBodyError::WrongType { .. } => "invalid_type",
                RequestBodyError::DuplicateKey(_) => "duplicate_key",
            };
            let mut err = ApiError::new(ErrorKind::InvalidRequest, code, e.to_string());
            err.param = e.param();
            return finish_error(ctx, conn, &meta, endpoint, &err, keep_alive, body.len()).await;
        }
    };
    meta.model = Some(crate::api::bounded(&view.model));
    meta.stream = view.stream;

    // Route.
    let Some(route) = table.model(&view.model) else {
        let err = ApiError::new(
            ErrorKind::NotFound,
            "model_not_found",
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                crate::api::bounded(&view.model)
            ),
        )
        .with_param("model");
        return finish_error(ctx, conn, &meta, endpoint, &err, keep_alive, body.len()).await;
    };

    // Cache: an identical or equivalent answer from memory.
    let mut cache = None;
    if endpoint == Endpoint::ChatCompletions {
        if let (Some(policy), Some(caches)) = (&route.cache, &ctx.caches) {
            let tenant = meta.key.clone().unwrap_or_default();
            match caching::lookup(caches, policy, &tenant, &route.alias, &head, &body).await {
                Ok(hit) => {
                    return forward::serve_cached(
                        ctx,
                        conn,
                        &meta,
                        &view,
                        hit,
                        keep_alive,
                        body.len(),
                    )
                    .await
                }
                Err(fill) => cache = Some(fill),
            }
        }
    }

    // Forward, respond, record.
    let input = forward::ForwardInput {
        head: &head,
        endpoint,
        view: &view,
        body,
        route,
        keep_alive,
        cache,
    };
    forward::forward(ctx, conn, &mut meta, input).await
}

async fn finish_error(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    meta: &RequestMeta,
    endpoint: Endpoint,
    err: &ApiError,
    keep_alive: bool,
    bytes_in: usize,
) -> bool {
    tracing::debug!(status = err.status(), code = err.code, message = %err.message, "request refused");
    let ok = write_error(conn, meta, err, keep_alive).await.is_ok();
    ctx.records
        .send(meta.record_for_error(endpoint, err, bytes_in));
    ok && keep_alive
}

/// In open mode (no gateway keys) the only thing between a web page and the provider keys
/// is the browser's same-origin rule: a page may POST `text/plain` anywhere without asking.
/// So a request that carries a foreign `Origin`, or a POST body that is not JSON (which no
/// browser sends cross-origin without a preflight the gateway never grants), is refused
/// unless `[auth]` allows it.
fn browser_guard(table: &crate::route::RouteTable, head: &RequestHead) -> Option<ApiError> {
    if !table.keys.is_open() {
        return None;
    }
    let auth = &table.browser;
    if let Some(origin) = head.headers.get("origin") {
        if !auth.origin_allowed(origin) {
            return Some(ApiError::new(
                ErrorKind::PermissionDenied,
                "origin_not_allowed",
                "Requests from web pages are refused while the gateway runs without keys; list the origin in [auth] allowed_origins or configure keys.",
            ));
        }
    }
    if head.method == Method::Post && !auth.any_content_type && !is_json(head) {
        return Some(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "unsupported_content_type",
            "Send the body as JSON with 'content-type: application/json'.",
        ));
    }
    None
}

/// Whether the request declares a JSON body (`application/json`, any parameters).
fn is_json(head: &RequestHead) -> bool {
    head.headers.get("content-type").is_some_and(|v| {
        let media = v.split(|&b| b == b';').next().unwrap_or_default();
        media.trim_ascii().eq_ignore_ascii_case(b"application/json")
    })
}

/// Fault injection for the containment tests (only with `INFERGATE_FAILPOINTS=1`):
/// `x-infergate-failpoint: panic` panics inside the request, `kill-shard` panics in a task
/// of its own that nothing catches, as a bug outside any request would.
#[allow(clippy::panic)] // Deliberate: these panics are what the containment tests inject.
fn failpoint(head: &RequestHead) {
    match head.headers.get("x-infergate-failpoint") {
        Some(b"panic") => std::panic::panic_any("failpoint: panic inside a request"),
        Some(b"kill-shard") => {
            monoio::spawn(async { std::panic::panic_any("failpoint: panic outside any request") });
        }
        _ => {}
    }
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Head => "HEAD",
        Method::Other => "this method",
    }
}

/// Time since `start` in milliseconds, for records.
pub(crate) fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
