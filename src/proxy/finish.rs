//! The one way out of a request: [`finish`] writes the answer an [`Outcome`] names, hands
//! a cleanly ended upstream connection back to the pool, stores a complete answer in the
//! cache, and sends the record. No other code writes a response or sends a record.

use bytes::Bytes;

use super::caching::CacheFill;
use super::outcome::{Body, Outcome, PendingAttempt, Response, StreamBody};
use super::relay::{relay_stream, RelayEnd, RelayPlan};
use super::session::{RequestId, Session};
use super::ShardCtx;
use crate::api::{ApiError, ErrorKind};
use crate::http::{write_head_and_body, BodyFraming, HttpError, ResponseHead, ServerConn};
use crate::observe::{AttemptRecord, RequestRecord};
use crate::translate::assemble_chat_completion;
use crate::wire::{Endpoint, WireApi};

/// Carries out the outcome and sends the record. Returns whether the connection stays open.
pub async fn finish(mut s: Session<'_>, outcome: Outcome) -> bool {
    let keep = match outcome {
        Outcome::Respond(r) => respond(&mut s, *r).await,
        Outcome::Fail(err) => fail(&mut s, &err).await,
        Outcome::Refuse(e) => refuse(&mut s, &e).await,
        Outcome::ClientGone => {
            tracing::debug!(request_id = %s.request_id, "client closed the connection while waiting; upstream call cancelled");
            client_gone(&mut s.record);
            false
        }
    };
    super::settle::settle(&mut s);
    s.record.latency_ms = s.elapsed_ms();
    s.record.overhead_ms = s.record.gateway_ms();
    super::spans::end(&s);
    s.ctx.metrics.observe(&s.record);
    s.ctx.records.send(s.record);
    keep
}

/// Writes a response; a stream is relayed to its end.
async fn respond(s: &mut Session<'_>, r: Response) -> bool {
    let keep = s.can_keep_alive();
    s.record.status = r.status;
    s.record.set_usage(r.usage);
    s.usage = r.usage;
    if let Some(code) = r.error {
        s.record.error = Some(code.to_string());
    }
    let (head, body) = match r.body {
        Body::Stream(stream) => return relay(s, r.head, *stream, keep).await,
        Body::Full(body) => {
            if let Some(redactions) = &s.log_bodies {
                s.record.response_body = Some(super::body_log::json_body(redactions, &body));
            }
            (r.head.finish(BodyFraming::Length(body.len()), keep), body)
        }
        Body::Events(events) => {
            if let Some(redactions) = &s.log_bodies {
                s.record.response_body = Some(super::body_log::text_body(redactions, &events));
            }
            (
                r.head
                    .header("content-type", b"text/event-stream")
                    .header("cache-control", b"no-cache")
                    .finish(BodyFraming::Chunked, keep),
                Bytes::from(chunk_frame(&events)),
            )
        }
    };
    s.record.bytes_out = body.len() as u64;
    s.record.ttfb_ms = Some(s.elapsed_ms());
    let stored = (r.status == 200).then(|| body.clone());
    let ok = write_head_and_body(s.conn.io(), head, body).await.is_ok();
    if !ok {
        client_gone(&mut s.record);
    }
    if let (Some(body), Some(fill)) = (stored, s.cache.take()) {
        store(s.ctx, fill, body);
    }
    ok && keep
}

/// Relays a provider's stream, then settles the connection, the cache and the attempt.
async fn relay(s: &mut Session<'_>, head: ResponseHead, stream: StreamBody, keep: bool) -> bool {
    let ctx = s.ctx;
    let _open = ctx.metrics.open_stream();
    let StreamBody {
        mut upstream,
        framing,
        frames,
        translator,
        deadline,
        idle,
        reuse,
        permit,
        attempt,
    } = stream;
    let head = head
        .header("x-accel-buffering", b"no")
        .finish(BodyFraming::Chunked, keep);
    let fill = s
        .cache
        .take()
        .filter(|f| s.record.status == 200 && f.wants_response());
    // The answer is kept whole for the cache, or for the record with `log_bodies`.
    let mut capture = (fill.is_some() || s.log_bodies.is_some()).then(Vec::new);
    let plan = RelayPlan {
        deadline,
        idle,
        capture: capture.as_mut(),
        translator,
        client: s.endpoint.client_wire().unwrap_or(WireApi::Chat),
        upstream_frames: frames,
        kill: s.run.as_mut().and_then(|t| t.signal.take()),
    };
    let end = relay_stream(s.conn.io(), head, &mut upstream, framing, plan).await;
    if s.ctx.failpoints {
        stream_failpoint(&s.head);
    }
    // The provider's answer has ended (a panic anywhere before drops it on unwinding).
    drop(permit);
    if let (Some(redactions), Some(events)) = (&s.log_bodies, &capture) {
        s.record.response_body = Some(super::body_log::text_body(redactions, events));
    }
    super::phases::note_stream(s);
    let rec = &mut s.record;
    rec.ttfb_ms = Some(end.ttfb_ms(s.started));
    rec.bytes_out = end.bytes_out;
    rec.finish_reason = end.finish_reason;
    rec.set_usage(end.usage);
    s.usage = end.usage;
    let keep = match end.end {
        RelayEnd::Complete { upstream_reusable } => {
            if let (true, Some(pool)) = (upstream_reusable, reuse) {
                s.ctx.pool.put(&pool.key, upstream, pool.max_idle);
            }
            if let (Some(fill), Some(sse)) = (fill, capture) {
                if let Some(whole) = assemble_chat_completion(&sse) {
                    store(s.ctx, fill, Bytes::from(whole));
                }
            }
            keep
        }
        RelayEnd::ClientGone => {
            client_gone(rec);
            false
        }
        RelayEnd::UpstreamFailed(kind) => {
            rec.error = Some(format!("upstream_stream_{kind}"));
            keep
        }
    };
    let error = rec.error.clone();
    rec.attempts.push(attempt_record(attempt, error));
    keep
}

/// `x-infergate-failpoint: panic-after-stream` (with `INFERGATE_FAILPOINTS=1`) panics once
/// a stream was relayed, while its concurrency permit is still held: the tests check that
/// unwinding gives it back.
#[allow(clippy::panic)] // Deliberate: this panic is what the tests inject.
fn stream_failpoint(head: &crate::http::RequestHead) {
    if head.headers.get("x-infergate-failpoint") == Some(b"panic-after-stream") {
        std::panic::panic_any("failpoint: panic after a stream");
    }
}

/// Stores a complete 200 answer (one `chat.completion`) in the caches.
fn store(ctx: &ShardCtx, fill: CacheFill, body: Bytes) {
    if let (Some(caches), true) = (&ctx.caches, fill.wants_response()) {
        fill.store(caches, body);
    }
}

/// Answers an error in the client's dialect.
async fn fail(s: &mut Session<'_>, err: &ApiError) -> bool {
    tracing::debug!(status = err.status(), code = err.code, message = %err.message, "request refused");
    let keep = s.can_keep_alive();
    s.record.status = err.status();
    s.record.error = Some(err.code.to_string());
    let mut head = s.response_head(err.status());
    if let Some(secs) = err.retry_after_s {
        head = head.header_display("retry-after", secs);
    }
    let (head, body) = error_response(head, err, s.dialect, &[], keep);
    write_head_and_body(s.conn.io(), head, body).await.is_ok() && keep
}

/// Answers a request that could not be read, and closes.
async fn refuse(s: &mut Session<'_>, e: &HttpError) -> bool {
    tracing::debug!(error = %e, "request refused");
    let Some(err) = unreadable_error(e) else {
        // Nothing to answer (the client went away mid-body).
        client_gone(&mut s.record);
        return false;
    };
    s.record.status = err.status();
    s.record.error = Some(err.code.to_string());
    let head = s.response_head(err.status());
    let (head, body) = error_response(head, &err, s.dialect, retry_after(&err), false);
    let _ = write_head_and_body(s.conn.io(), head, body).await;
    false
}

/// Answers a request whose head could not be read (no session exists yet), records it,
/// and the connection closes.
pub async fn refuse_head(ctx: &ShardCtx, conn: &mut ServerConn, e: &HttpError) {
    let Some(err) = unreadable_error(e) else {
        return;
    };
    let request_id = format!("{:032x}", fastrand::u128(..));
    let mut record = RequestRecord::started(request_id.clone(), ctx.shard_id);
    let head = ResponseHead::new(Vec::with_capacity(256), err.status())
        .header("x-infergate-request-id", request_id.as_bytes());
    let wire = Endpoint::ChatCompletions.error_wire();
    let (head, body) = error_response(head, &err, wire, retry_after(&err), false);
    let _ = write_head_and_body(conn.io(), head, body).await;
    record.status = err.status();
    record.error = Some(err.code.to_string());
    ctx.metrics.observe(&record);
    ctx.records.send(record);
}

/// Answers a request that panicked (unless its response had begun), records it under its
/// id and endpoint, and the connection closes.
pub async fn answer_panic(ctx: &ShardCtx, conn: &mut ServerConn, id: RequestId) {
    let err = ApiError::new(
        ErrorKind::Internal,
        "internal_error",
        "The gateway failed while serving this request; it was logged.",
    );
    let endpoint = id.endpoint.unwrap_or(Endpoint::ChatCompletions);
    let mut record = RequestRecord::started(id.id.as_str().to_owned(), ctx.shard_id);
    record.endpoint = endpoint.as_str();
    record.status = err.status();
    if !conn.response_started() {
        let head = ResponseHead::new(Vec::with_capacity(256), err.status())
            .header("x-infergate-request-id", record.request_id.as_bytes());
        let (head, body) = error_response(head, &err, endpoint.error_wire(), &[], false);
        let _ = write_head_and_body(conn.io(), head, body).await;
    }
    record.error = Some("internal_panic".into());
    ctx.metrics.observe(&record);
    ctx.records.send(record);
}

/// The error body in `wire`'s format with its head.
fn error_response(
    head: ResponseHead,
    err: &ApiError,
    wire: WireApi,
    extra: &[(&str, &[u8])],
    keep: bool,
) -> (Vec<u8>, Bytes) {
    let body = err.to_json(wire);
    let mut head = head.header("content-type", b"application/json");
    for (name, value) in extra {
        head = head.header(name, value);
    }
    (head.finish(BodyFraming::Length(body.len()), keep), body)
}

/// The API error for a request that could not be read (`None`: nothing to answer).
fn unreadable_error(e: &HttpError) -> Option<ApiError> {
    let (kind, code) = match e.status()? {
        431 => (
            ErrorKind::HeadersTooLarge,
            "request_header_fields_too_large",
        ),
        413 => (ErrorKind::PayloadTooLarge, "request_too_large"),
        408 => (ErrorKind::RequestTimeout, "request_timeout"),
        503 => (ErrorKind::Unavailable, "gateway_busy"),
        _ => (ErrorKind::InvalidRequest, "invalid_request"),
    };
    Some(ApiError::new(kind, code, e.to_string()))
}

/// A busy gateway tells the client when to come back.
fn retry_after(err: &ApiError) -> &'static [(&'static str, &'static [u8])] {
    if err.status() == 503 {
        &[("retry-after", b"1")]
    } else {
        &[]
    }
}

/// The record of a request whose client went away.
fn client_gone(record: &mut RequestRecord) {
    record.status = 499;
    record.error = Some("client_closed".into());
}

/// The record of a streamed attempt, once the stream ended.
fn attempt_record(a: PendingAttempt, error: Option<String>) -> AttemptRecord {
    AttemptRecord {
        provider: a.provider,
        model: a.model,
        status: Some(a.status),
        error,
        latency_ms: super::ms_since(a.started),
        start_ms: a.start_ms,
    }
}

/// Frames an event stream as one HTTP chunk and the last chunk.
fn chunk_frame(events: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(events.len() + 24);
    if !events.is_empty() {
        framed.extend_from_slice(format!("{:x}\r\n", events.len()).as_bytes());
        framed.extend_from_slice(events);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    framed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_stream_is_one_chunk_and_the_end() {
        assert_eq!(
            chunk_frame(b"data: x\n\n"),
            b"9\r\ndata: x\n\n\r\n0\r\n\r\n"
        );
        assert_eq!(chunk_frame(b""), b"0\r\n\r\n");
    }

    #[test]
    fn unreadable_requests_map_to_their_status() {
        let e = unreadable_error(&HttpError::BodyTooLarge).unwrap();
        assert_eq!((e.status(), e.code), (413, "request_too_large"));
        assert!(unreadable_error(&HttpError::Closed).is_none());
        let busy = ApiError::new(ErrorKind::Unavailable, "gateway_busy", "busy");
        assert_eq!(retry_after(&busy).len(), 1);
    }
}
