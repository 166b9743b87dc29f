//! Reply: the provider's answer was taken. A stream becomes a relay plan; a whole body is
//! read (the client may leave meanwhile), translated to the client's format when the
//! formats differ, and its response head is built once.

use std::time::Instant;

use bytes::Bytes;

use super::super::client_gone::unless_client_leaves;
use super::super::headers::{is_rate_limit_header, pass_to_client};
use super::super::outcome::{Body, Outcome, PendingAttempt, PoolReturn, Response, StreamBody};
use super::super::relay::UpstreamFrames;
use super::super::session::{ClientRequest, Session};
use super::attempt::{error_for_client, record};
use crate::api::{is_whole_json, ApiError, ErrorKind};
use crate::guardrails::schema::{check_all, output_texts, SchemaCheckedStream, Violation};
use crate::http::ResponseHead;
use crate::route::{InFlightPermit, Target};
use crate::translate::{replay_as_stream, Bridge, StreamTranslator};
use crate::upstream::{read_full_body, UpstreamResponse, UpstreamResponseHead};
use crate::wire::{Usage, WireApi};
use std::cell::RefCell;
use std::rc::Rc;

/// Largest non-streamed upstream body the gateway buffers.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// A provider answer the gateway committed to.
pub struct Taken<'t> {
    /// The target that answered.
    pub target: &'t Target,
    /// The format it answered in.
    pub wire: WireApi,
    /// How its answer reaches the client's format (`None`: the same format).
    pub bridge: Option<Bridge>,
    /// Its response.
    pub response: UpstreamResponse,
    /// The attempt's place in its provider's `max_concurrency`: given back once the body
    /// is read, or with the stream when the relay ends.
    pub permit: InFlightPermit,
    /// When the attempt began.
    pub started: Instant,
    /// The alias the client asked for (translated answers name it as the model).
    pub alias: &'t str,
}

/// The client's response for a taken answer; `Err` when its output failed the JSON schema
/// (the answer was thrown away and the attempt recorded as such).
pub async fn answer(
    s: &mut Session<'_>,
    request: &ClientRequest,
    taken: Taken<'_>,
) -> Result<Outcome, Violation> {
    let head = &taken.response.head;
    let ok_status = (200..300).contains(&head.status);
    let streamed = ok_status
        && (head.is_event_stream()
            || taken.wire == WireApi::Converse
                && head.content_type_is(b"application/vnd.amazon.eventstream"));
    if streamed && !request.view.stream {
        // The client can't read a stream it did not ask for: the answer is refused (the
        // connection is dropped with it, mid-body).
        let error = Some("unexpected_stream".to_string());
        let (target, status) = (taken.target, head.status);
        s.record.attempts.push(record(
            target,
            Some(status),
            error,
            (taken.started, s.started),
        ));
        return Ok(Outcome::Fail(ApiError::new(
            ErrorKind::UpstreamFailed,
            "upstream_unexpected_stream",
            "The provider answered with a stream to a request for a whole answer.",
        )));
    }
    if streamed {
        Ok(Outcome::Respond(Box::new(stream(s, request, taken))))
    } else {
        whole(s, request, taken).await
    }
}

/// A streamed answer: the head now, the body relayed by `finish`.
fn stream(s: &mut Session<'_>, request: &ClientRequest, taken: Taken<'_>) -> Response {
    let Taken {
        target,
        wire,
        bridge,
        response,
        permit,
        started,
        alias,
    } = taken;
    let provider = &target.provider;
    let status = response.head.status;
    let include_usage = request.view.include_usage;
    let translator = match bridge.map(|b| b.stream(alias, include_usage, &request.body)) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            tracing::warn!(provider = %provider.name, error = %e, "no stream translator");
            None
        }
        None => None,
    };
    let translator = checked_stream(s, translator);
    let translator = super::guard::stream(s, translator);
    // The attempt is recorded when the stream ends: it counts now.
    let attempts = s.record.attempts.len() + 1;
    let mut head = upstream_head(
        s,
        target,
        status,
        attempts,
        Some(&response.head),
        bridge.is_some(),
    );
    if bridge.is_some() {
        head = head
            .header("content-type", b"text/event-stream")
            .header("cache-control", b"no-cache");
    }
    let reuse = response.head.keep_alive.then(|| PoolReturn {
        key: provider.pool_key.clone(),
        max_idle: provider.max_idle_per_shard,
    });
    let body = StreamBody {
        framing: response.head.body,
        upstream: response.conn,
        frames: if wire.streams_sse() {
            UpstreamFrames::Sse
        } else {
            UpstreamFrames::AwsEventStream
        },
        translator,
        deadline: s.started + provider.total_timeout,
        idle: provider.stream_idle_timeout,
        reuse,
        permit,
        attempt: PendingAttempt {
            provider: provider.name.clone(),
            model: target.model.to_string(),
            status,
            started,
            start_ms: super::attempt::offset_ms(s.started, started),
        },
    };
    Response {
        status,
        head,
        body: Body::Stream(Box::new(body)),
        usage: None,
        error: None,
    }
}

/// The stream translator with the JSON-schema check at the stream's end, when the answer
/// has a schema to match; what it finds is noted in the record when the stream ends.
fn checked_stream(
    s: &mut Session<'_>,
    translator: Option<Box<dyn StreamTranslator>>,
) -> Option<Box<dyn StreamTranslator>> {
    if s.schemas.is_empty() {
        return translator;
    }
    let verdict = Rc::new(RefCell::new(None));
    s.stream_verdict = Some(Rc::clone(&verdict));
    let client = s.endpoint.client_wire().unwrap_or(WireApi::Chat);
    Some(Box::new(SchemaCheckedStream::new(
        translator,
        client,
        s.schemas.clone(),
        verdict,
    )))
}

/// Notes a streamed answer's schema violation, once the stream ended.
pub fn note_stream_schema(s: &mut Session<'_>) {
    let Some(verdict) = s.stream_verdict.take() else {
        return;
    };
    let found = verdict.borrow_mut().take();
    if let Some(violation) = found {
        tracing::debug!(request_id = %s.request_id, %violation, "streamed output failed its JSON schema");
        s.record.error = Some("json_schema_violation".into());
    }
}

/// A whole answer: read, translated if the formats differ, checked against its schemas,
/// answered.
async fn whole(
    s: &mut Session<'_>,
    request: &ClientRequest,
    taken: Taken<'_>,
) -> Result<Outcome, Violation> {
    let Taken {
        target,
        bridge,
        response,
        permit,
        started,
        alias,
        ..
    } = taken;
    let UpstreamResponse { head, mut conn } = response;
    let provider = &target.provider;
    let status = head.status;
    let deadline = s.started + provider.total_timeout;
    let read = read_full_body(&mut conn, head.body, MAX_UPSTREAM_BODY, deadline);
    let Some(read) = unless_client_leaves(s.conn.watch(), read).await else {
        let closed = Some("client_closed".to_string());
        s.record
            .attempts
            .push(record(target, Some(status), closed, (started, s.started)));
        return Ok(Outcome::ClientGone);
    };
    // The exchange with the provider is over, however the read ended (the client leaving
    // returned above, dropping the permit with it).
    drop(permit);
    let body = match read {
        Ok(body) => body,
        Err(e) => {
            // Nothing was sent to the client yet, but the body is lost: report it.
            let kind = Some(e.kind().to_string());
            s.record
                .attempts
                .push(record(target, Some(status), kind, (started, s.started)));
            let error = if e.is_timeout() {
                ErrorKind::UpstreamTimeout
            } else {
                ErrorKind::UpstreamFailed
            };
            return Ok(Outcome::Fail(ApiError::new(
                error,
                "upstream_failed",
                format!("The provider's response could not be read: {e}."),
            )));
        }
    };
    if bridge.is_none() && (200..300).contains(&status) && !is_whole_json(&body) {
        // Passed through as it is, a body cut short or not JSON at all would reach the
        // client (and the cache) as a success.
        tracing::warn!(provider = %provider.name, bytes = body.len(), "provider answer is not whole JSON");
        let kind = Some("malformed_body".to_string());
        s.record
            .attempts
            .push(record(target, Some(status), kind, (started, s.started)));
        return Ok(Outcome::Fail(ApiError::new(
            ErrorKind::UpstreamFailed,
            "upstream_malformed_response",
            "The provider's answer is not a whole JSON document.",
        )));
    }
    if request.view.stream && s.replay_stream.is_none() && (200..300).contains(&status) {
        // A whole answer to a request for a stream: sent as the stream that was asked for.
        s.replay_stream = Some(request.view.include_usage);
    }
    s.record
        .attempts
        .push(record(target, Some(status), None, (started, s.started)));
    if head.keep_alive {
        s.ctx
            .pool
            .put(&provider.pool_key, conn, provider.max_idle_per_shard);
    }
    let answer = Answer {
        target,
        bridge,
        head: &head,
        alias,
    };
    let response = whole_response(s, request, answer, body);
    check_output(s, target, &response)?;
    let outcome = super::guard::response(s, response);
    Ok(match (outcome, s.replay_stream) {
        (Outcome::Respond(r), Some(include_usage)) => {
            Outcome::Respond(Box::new(as_stream(s, *r, include_usage)))
        }
        (outcome, _) => outcome,
    })
}

/// Checks a successful whole answer's output against the session's schemas. A violation
/// marks the attempt and keeps what the thrown-away answer used, to be charged.
fn check_output(s: &mut Session<'_>, target: &Target, r: &Response) -> Result<(), Violation> {
    if s.schemas.is_empty() || !(200..300).contains(&r.status) {
        return Ok(());
    }
    let Body::Full(body) = &r.body else {
        return Ok(());
    };
    let client = s.endpoint.client_wire().unwrap_or(WireApi::Chat);
    let violation = output_texts(client, body)
        .iter()
        .find_map(|o| check_all(&s.schemas, &o.text).err());
    let Some(violation) = violation else {
        return Ok(());
    };
    tracing::debug!(request_id = %s.request_id, provider = %target.provider.name, %violation, "output failed its JSON schema");
    if let Some(a) = s.record.attempts.last_mut() {
        a.error = Some("json_schema_violation".into());
    }
    let price = s.price.take();
    let cost = price
        .zip(r.usage)
        .map_or(0, |(p, u)| super::super::settle::cost_micros(&p, &u));
    s.discarded.add(r.usage, cost);
    s.record.provider = None;
    s.record.upstream_model = None;
    Err(violation)
}

/// A checked whole answer sent as the stream the client asked for (`buffer_stream`).
fn as_stream(s: &Session<'_>, mut r: Response, include_usage: bool) -> Response {
    let client = s.endpoint.client_wire().unwrap_or(WireApi::Chat);
    let Body::Full(body) = &r.body else {
        return r;
    };
    if !(200..300).contains(&r.status) {
        return r;
    }
    match replay_as_stream(client, body, include_usage) {
        Some(events) => {
            r.body = Body::Events(Bytes::from(events));
            r
        }
        None => r,
    }
}

/// A whole provider answer, read.
struct Answer<'t> {
    target: &'t Target,
    bridge: Option<Bridge>,
    head: &'t UpstreamResponseHead,
    alias: &'t str,
}

/// The client's response for a whole provider body: passed through, or translated (a
/// translated answer gets its own head, so the provider's headers that describe the body
/// are not passed on).
fn whole_response(
    s: &Session<'_>,
    request: &ClientRequest,
    answer: Answer<'_>,
    body: Bytes,
) -> Response {
    let Answer {
        target,
        bridge,
        head: upstream,
        alias,
    } = answer;
    let status = upstream.status;
    let (final_status, body, usage) = match bridge {
        None => {
            let usage = Usage::from_openai_body(&body);
            (status, body, usage)
        }
        Some(b) if (200..300).contains(&status) => {
            translate_body(s, request, (target, alias), b, status, &body)
        }
        Some(_) => {
            let error_type = upstream.headers.get("x-amzn-errortype");
            let (s2, b, _) = error_for_client(bridge, status, error_type, body);
            (s2, b, None)
        }
    };
    // A buffered stream's head is the stream's: `finish` sets its content type.
    let replayed = s.replay_stream.is_some() && (200..300).contains(&final_status);
    let rewritten = final_status != status || bridge.is_some() || replayed;
    let attempts = s.record.attempts.len();
    let passed = (!rewritten).then_some(upstream);
    let head = upstream_head(s, target, final_status, attempts, passed, rewritten);
    let head = if rewritten && !replayed {
        head.header("content-type", b"application/json")
    } else {
        head
    };
    let mut r = Response::full(final_status, head, body);
    r.usage = usage;
    r
}

/// A successful body in the client's format, or the gateway's 502 when it can't be.
fn translate_body(
    s: &Session<'_>,
    request: &ClientRequest,
    (target, alias): (&Target, &str),
    bridge: Bridge,
    status: u16,
    body: &[u8],
) -> (u16, Bytes, Option<Usage>) {
    match bridge.response(body, alias, &request.body) {
        Ok(t) => (status, Bytes::from(t.body), t.usage),
        Err(e) => {
            let provider = &target.provider.name;
            tracing::warn!(provider = %provider, error = %e, "provider response could not be translated");
            let err = ApiError::new(
                ErrorKind::UpstreamFailed,
                "untranslatable_response",
                format!("The response of provider `{provider}` could not be translated: {e}."),
            );
            (err.status(), err.to_json(s.dialect), None)
        }
    }
}

/// The head of a provider's answer: the gateway's headers, the provider's that describe
/// the answer (unless `rewritten`: then the caller sets the content type), the cache status.
fn upstream_head(
    s: &Session<'_>,
    target: &Target,
    status: u16,
    attempts: usize,
    upstream: Option<&UpstreamResponseHead>,
    rewritten: bool,
) -> ResponseHead {
    let mut head = s
        .response_head(status)
        .header("x-infergate-provider", target.provider.name.as_bytes())
        .header_display("x-infergate-attempts", attempts);
    if let Some(r) = upstream {
        for (name, value) in r.headers.iter() {
            let ours = s.rate.any() && is_rate_limit_header(name);
            if pass_to_client(name)
                && !ours
                && !(rewritten && name.eq_ignore_ascii_case("content-type"))
            {
                head = head.header(name, value);
            }
        }
    }
    if let Some(fill) = &s.cache {
        head = head.header("x-infergate-cache", fill.status.as_bytes());
    }
    head
}
