//! One attempt at one target: skip it if it can't serve the endpoint or its provider is at
//! its `max_concurrency`, build the body in the provider's format, call its [`Upstream`],
//! and classify the answer: taken, or a failure another target may fix. The attempt holds
//! its provider's [`InFlightPermit`](crate::route::InFlightPermit) until its answer ends.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::super::client_gone::unless_client_leaves;
use super::super::outcome::Outcome;
use super::super::session::{ClientRequest, Session};
use super::{estimate, reply};
use crate::api::{ApiError, ErrorKind};
use crate::guardrails::schema::Violation;
use crate::observe::AttemptRecord;
use crate::route::{
    exhausted_for, retry_after, AttemptResult, EjectPolicy, HealthBoard, ModelRoute, Provider,
    Publish, Target,
};
use crate::translate::{Bridge, TranslateError};
use crate::upstream::{
    read_full_body, status_is_retryable, ProviderUpstream, TraceHeaders, Upstream, UpstreamBody,
    UpstreamError, UpstreamRequest, UpstreamResponse,
};
use crate::wire::{Endpoint, WireApi};

/// Longest wait for a failed provider's error body, and the most kept of it.
const ERROR_BODY_TIME: Duration = Duration::from_secs(5);
const ERROR_BODY_MAX: usize = 1024 * 1024;

/// What one attempt came to.
pub enum Attempt {
    /// The request ends here: a provider's answer was taken, or the gateway answers.
    Answer(Outcome),
    /// The target failed before any byte reached the client.
    Retry(Failure),
    /// The target can't serve this request (why, for the `no_available_target` error).
    Skip(String),
    /// The target's provider has `max_concurrency` attempts in flight: nothing was sent.
    Full,
}

/// A failed attempt whose response may still be the final answer.
pub enum Failure {
    /// The provider answered with an error status; its body is kept to pass on.
    Status(FailedStatus),
    /// No usable response.
    Transport(UpstreamError),
    /// An answer whose output failed its JSON schema (thrown away; the same target may be
    /// asked again).
    Invalid(Violation),
}

impl Failure {
    /// Whether the next target may be tried.
    pub fn may_retry(&self) -> bool {
        match self {
            Failure::Status(_) | Failure::Invalid(_) => true,
            Failure::Transport(e) => e.retryable(),
        }
    }
}

/// A provider's error answer, kept in case no other target succeeds.
pub struct FailedStatus {
    status: u16,
    /// The provider's content type.
    pub content_type: Option<Bytes>,
    body: Bytes,
    /// Bedrock's `x-amzn-errortype` header.
    error_type: Option<Bytes>,
    /// How the body reaches the client's format (`None`: the same format).
    bridge: Option<Bridge>,
}

impl FailedStatus {
    /// The status and body in the client's format; the flag says whether it was rewritten.
    pub fn for_client(&self) -> (u16, Bytes, bool) {
        error_for_client(
            self.bridge,
            self.status,
            self.error_type.as_deref(),
            self.body.clone(),
        )
    }
}

/// Runs one attempt at `target`.
pub async fn run(
    s: &mut Session<'_>,
    request: &ClientRequest,
    route: &ModelRoute,
    target: &Target,
) -> Attempt {
    let alias = &*route.alias;
    let provider = &target.provider;
    if let Some(why) = cannot_serve(s.endpoint, provider) {
        return Attempt::Skip(format!("{}: {why}", provider.name));
    }
    let wire = provider.wire_for(s.endpoint);
    if s.endpoint == Endpoint::CountTokens && wire != WireApi::Messages {
        return Attempt::Answer(estimate::answer(s, request));
    }
    // Held until the attempt's answer has ended: dropped here on every failure, after the
    // body is read for a whole answer, with the relay's end for a stream.
    let Some(permit) = provider.try_acquire() else {
        return Attempt::Full;
    };
    // Only set when the formats differ: same-format traffic passes through.
    let bridge = s
        .endpoint
        .client_wire()
        .map(|c| Bridge::new(c, wire))
        .filter(|b| !b.is_passthrough());
    let started = Instant::now();
    let body = match upstream_body(request, target, bridge) {
        Ok(b) => b,
        Err(e) => {
            return Attempt::Answer(Outcome::Fail(ApiError::new(
                ErrorKind::InvalidRequest,
                "unsupported_parameter",
                format!("{e} (provider `{}`)", provider.name),
            )))
        }
    };
    let call = UpstreamRequest {
        provider,
        endpoint: s.endpoint,
        wire,
        model: &target.model,
        stream: request.view.stream,
        client_headers: &s.head.headers,
        body,
        trace: trace_headers(s),
    };
    let (ctx, table) = (s.ctx, s.table);
    let upstream = ProviderUpstream::for_provider(provider, &ctx.pool, &ctx.tls, &ctx.upstreams);
    let signal = s.run.as_mut().and_then(|t| t.signal.as_mut());
    let health = Health {
        ctx,
        board: &table.state.board,
        target,
        eject: route.eject,
        started,
    };
    ctx.health.begin(&provider.name, &target.model, started);
    // Both futures are pinned where they are built and passed on as `Pin<&mut _>`: moved
    // by value into each wrapper, the provider call's state was copied at every step.
    let result = {
        let call = std::pin::pin!(upstream.call(&call));
        let call = std::pin::pin!(unless_killed(signal, call));
        unless_client_leaves(s.conn.watch(), call).await
    };
    health.end(result.as_ref());
    let Some(result) = result else {
        let closed = Some("client_closed".to_string());
        s.record
            .attempts
            .push(record(target, None, closed, (started, s.started)));
        return Attempt::Answer(Outcome::ClientGone);
    };
    let Some(result) = result else {
        let killed = Some("run_killed".to_string());
        s.record
            .attempts
            .push(record(target, None, killed, (started, s.started)));
        return Attempt::Answer(Outcome::Fail(ApiError::new(
            ErrorKind::PermissionDenied,
            "run_killed",
            "The agent run was killed by an operator; this call was cut.",
        )));
    };
    match result {
        Err(e) => {
            tracing::debug!(provider = %provider.name, error = %e, "attempt failed");
            let kind = Some(e.kind().to_string());
            s.record
                .attempts
                .push(record(target, None, kind, (started, s.started)));
            Attempt::Retry(Failure::Transport(e))
        }
        Ok(response) if status_is_retryable(response.head.status) => {
            let status = response.head.status;
            let failure = keep_error_body(s, target, response, bridge).await;
            s.record
                .attempts
                .push(record(target, Some(status), None, (started, s.started)));
            Attempt::Retry(failure)
        }
        Ok(response) => {
            s.record.provider = Some(provider.name.clone());
            s.record.upstream_model = Some(target.model.to_string());
            s.price = s
                .table
                .governance
                .prices
                .get(&target.model)
                .map(|p| p.price);
            let taken = reply::Taken {
                target,
                wire,
                bridge,
                response,
                permit,
                started,
                alias,
            };
            match reply::answer(s, request, taken).await {
                Ok(outcome) => Attempt::Answer(outcome),
                Err(violation) => Attempt::Retry(Failure::Invalid(violation)),
            }
        }
    }
}

/// Tells the shard's [`RouteHealth`](crate::route::RouteHealth) how an attempt at one
/// target ended.
struct Health<'a> {
    ctx: &'a crate::proxy::context::ShardCtx,
    /// Where a change of the target's state is published at once.
    board: &'a HealthBoard,
    target: &'a Target,
    eject: EjectPolicy,
    started: Instant,
}

impl Health<'_> {
    fn end(&self, result: Option<&Option<Result<UpstreamResponse, UpstreamError>>>) {
        let now = Instant::now();
        let (provider, model) = (&*self.target.provider.name, &*self.target.model);
        let health = &self.ctx.health;
        let outcome = match result {
            Some(Some(Ok(r))) if r.head.status == 429 => {
                AttemptResult::RateLimited(retry_after(&r.head.headers))
            }
            Some(Some(Ok(r))) if status_is_retryable(r.head.status) => AttemptResult::Failed,
            Some(Some(Ok(r))) => {
                if let Some(wait) = exhausted_for(&r.head.headers) {
                    health.bench(provider, model, wait, now);
                }
                AttemptResult::Answered(now.saturating_duration_since(self.started))
            }
            Some(Some(Err(e))) if e.retryable() => AttemptResult::Failed,
            _ => AttemptResult::Neutral,
        };
        health.end(provider, model, outcome, self.eject, now);
        health.publish(self.board, self.ctx.shard_id, Publish::StateChanges);
    }
}

/// Runs `call` unless the agent run is killed first (`None`); without a run, just `call`.
async fn unless_killed<F: std::future::Future + Unpin>(
    signal: Option<&mut event_listener::EventListener>,
    call: F,
) -> Option<F::Output> {
    let Some(signal) = signal else {
        return Some(call.await);
    };
    match futures_util::future::select(call, signal).await {
        futures_util::future::Either::Left((out, _)) => Some(out),
        futures_util::future::Either::Right(((), _)) => None,
    }
}

/// Why `provider` can't serve this request now, if it can't.
fn cannot_serve(endpoint: Endpoint, provider: &Provider) -> Option<&str> {
    if let Some(why) = &provider.unavailable {
        return Some(why);
    }
    (endpoint == Endpoint::Embeddings && !provider.spec.embeddings)
        .then_some("no embeddings endpoint")
}

/// The record of one attempt that began at `started`, in a request that began at `since`.
pub fn record(
    target: &Target,
    status: Option<u16>,
    error: Option<String>,
    (started, since): (Instant, Instant),
) -> AttemptRecord {
    AttemptRecord {
        provider: target.provider.name.clone(),
        model: target.model.to_string(),
        status,
        error,
        latency_ms: super::super::ms_since(started),
        start_ms: offset_ms(since, started),
    }
}

/// Milliseconds from `since` to `at`.
pub fn offset_ms(since: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(since).as_secs_f64() * 1000.0
}

/// The trace headers of the attempt about to be made (the next one recorded): its own span
/// as the provider's parent. `None` with tracing off.
fn trace_headers(s: &Session<'_>) -> Option<TraceHeaders> {
    let cx = &s.trace;
    cx.propagate.then(|| TraceHeaders {
        traceparent: cx.traceparent(cx.attempt_span_id(s.record.attempts.len())),
        tracestate: cx.parent.is_some(),
    })
}

/// Reads an error response's body (briefly) so it can be the final answer if no target
/// succeeds; the connection goes back to the pool when it can.
async fn keep_error_body(
    s: &Session<'_>,
    target: &Target,
    mut response: UpstreamResponse,
    bridge: Option<Bridge>,
) -> Failure {
    let head = &response.head;
    let content_type = head.headers.get("content-type").map(Bytes::copy_from_slice);
    let error_type = head
        .headers
        .get("x-amzn-errortype")
        .map(Bytes::copy_from_slice);
    let deadline = Instant::now() + ERROR_BODY_TIME;
    let read = read_full_body(&mut response.conn, head.body, ERROR_BODY_MAX, deadline).await;
    match read {
        Ok(body) => {
            if response.head.keep_alive {
                let p = &target.provider;
                s.ctx
                    .pool
                    .put(&p.pool_key, response.conn, p.max_idle_per_shard);
            }
            Failure::Status(FailedStatus {
                status: response.head.status,
                content_type,
                body,
                error_type,
                bridge,
            })
        }
        Err(e) => Failure::Transport(e),
    }
}

/// The body for the provider: the original bytes, or the original with the model name
/// spliced in (two zero-copy slices around the new name); translated through `bridge` (set
/// only when the formats differ).
fn upstream_body(
    request: &ClientRequest,
    target: &Target,
    bridge: Option<Bridge>,
) -> Result<UpstreamBody, TranslateError> {
    if let Some(bridge) = bridge {
        let translated = bridge.request(&request.body, &target.model)?;
        return Ok(UpstreamBody::whole(Bytes::from(translated)));
    }
    if *target.model == *request.view.model {
        return Ok(UpstreamBody::whole(request.body.clone()));
    }
    let span = request.view.model_span;
    Ok(UpstreamBody::spliced([
        request.body.slice(..span.start),
        target.model_json.clone(),
        request.body.slice(span.end..),
    ]))
}

/// A provider's error body in the client's format (`bridge` is set only when the formats
/// differ); the flag says whether it was rewritten.
pub fn error_for_client(
    bridge: Option<Bridge>,
    status: u16,
    error_type: Option<&[u8]>,
    body: Bytes,
) -> (u16, Bytes, bool) {
    match bridge {
        Some(b) => {
            let error_type = error_type.and_then(|t| std::str::from_utf8(t).ok());
            let (s, body) = b.error(status, error_type, &body);
            (s, Bytes::from(body), true)
        }
        None => (status, body, false),
    }
}
