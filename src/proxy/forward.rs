//! Forwarding: try the alias's targets in plan order until one answers. A failure before any
//! byte reached the client (connect error, 5xx, 429, first-byte timeout) moves to the next
//! target; once the client has bytes, the response is relayed to its end.

use std::io::Write as _;
use std::time::Instant;

use bytes::Bytes;

use super::caching::{CacheFill, CacheHit};
use super::headers::{forward_to_upstream, pass_to_client};
use super::relay::{relay_stream, EventTranslator, RelayEnd, RelayPlan};
use super::respond::{write_error, RequestMeta};
use super::{ms_since, ShardCtx};
use crate::api::Dialect;
use crate::api::{ApiError, ChatRequestView, Endpoint, ErrorKind, Usage};
use crate::config::ProviderKind;
use crate::http::{write_head_and_body, BodyFraming, RequestHead, ServerConn};
use crate::observe::{AttemptRecord, RequestRecord};
use crate::route::{ModelRoute, Provider, Target};
use crate::translate::{
    anthropic_error_to_openai, anthropic_to_openai_request, anthropic_to_openai_response,
    assemble_chat_completion, openai_error_to_anthropic, openai_to_anthropic_request,
    openai_to_anthropic_response, replay_chat_completion, AnthropicToOpenAiStream,
    OpenAiToAnthropicStream, TranslateError,
};
use crate::upstream::{
    connect, mock, read_full_body, read_response_head, send_request, UpstreamConn, UpstreamError,
    UpstreamResponseHead,
};

/// Largest non-streamed upstream body the gateway buffers.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// What the forward phase needs from the earlier phases.
pub struct ForwardInput<'a> {
    /// The client's request head.
    pub head: &'a RequestHead,
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The parsed view of the body.
    pub view: &'a ChatRequestView,
    /// The original body bytes.
    pub body: Bytes,
    /// The alias's route.
    pub route: &'a ModelRoute,
    /// Whether the client connection stays open afterwards.
    pub keep_alive: bool,
    /// What to store in the caches once the answer is complete (None: not cached).
    pub cache: Option<CacheFill>,
}

/// A failed attempt whose response may still be the final answer.
enum Failure {
    /// The provider answered with an error status; its body is kept to pass on.
    Status {
        status: u16,
        content_type: Option<Bytes>,
        body: Bytes,
        dialect: Dialect,
    },
    /// No usable response.
    Transport(UpstreamError),
}

/// Runs the forward, respond and record phases. Returns whether the connection stays open.
pub async fn forward(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    meta: &mut RequestMeta,
    mut input: ForwardInput<'_>,
) -> bool {
    let mut rec = meta.base_record(input.endpoint, 0);
    rec.bytes_in = input.body.len();
    if let Some(fill) = &input.cache {
        rec.cache = Some(fill.status);
        rec.cache_note = fill.note.clone();
    }
    let plan = input.route.plan(fastrand::u32(..));
    let mut last: Option<Failure> = None;
    let mut skipped: Vec<String> = Vec::new();
    for &index in plan.indexes() {
        let target = &input.route.targets[index as usize];
        let provider = &target.provider;
        if let Some(why) = &provider.unavailable {
            skipped.push(format!("{}: {why}", provider.name));
            continue;
        }
        let client = input.endpoint.dialect();
        let upstream_dialect = provider.kind.dialect();
        if input.endpoint == Endpoint::Embeddings && upstream_dialect != Dialect::OpenAi {
            skipped.push(format!("{}: no embeddings endpoint", provider.name));
            continue;
        }
        if input.endpoint == Endpoint::CountTokens && upstream_dialect != Dialect::Anthropic {
            // The target can't count: answer with the gateway's estimate.
            return answer_token_estimate(ctx, conn, meta, &input, rec).await;
        }
        let attempt_start = Instant::now();
        if provider.kind == ProviderKind::Mock {
            return answer_from_mock(ctx, conn, meta, &mut input, target, rec, attempt_start).await;
        }
        let body = match upstream_body(&input, target, client, upstream_dialect) {
            Ok(b) => b,
            Err(e) => {
                let err = ApiError::new(
                    ErrorKind::InvalidRequest,
                    "unsupported_parameter",
                    format!("{e} (provider `{}`)", provider.name),
                );
                let ok = write_error(conn, meta, &err, input.keep_alive)
                    .await
                    .is_ok();
                rec.status = err.status();
                rec.error = Some(err.code.to_string());
                rec.latency_ms = ms_since(meta.started);
                ctx.records.send(rec);
                return ok && input.keep_alive;
            }
        };
        let result = call(ctx, provider, &input, &body, upstream_dialect).await;
        let (upstream, resp) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(provider = %provider.name, error = %e, "attempt failed");
                rec.attempts.push(attempt(
                    target,
                    None,
                    Some(e.kind().to_string()),
                    attempt_start,
                ));
                let retry = e.retryable();
                last = Some(Failure::Transport(e));
                if retry {
                    continue;
                }
                break;
            }
        };
        if resp.status >= 500 || resp.status == 429 {
            let (failure, upstream) = keep_error_body(upstream, &resp, upstream_dialect).await;
            if let Some(c) = upstream {
                ctx.pool
                    .put(&provider.pool_key, c, provider.max_idle_per_shard);
            }
            rec.attempts
                .push(attempt(target, Some(resp.status), None, attempt_start));
            last = Some(failure);
            continue;
        }
        // Committed: this response goes to the client.
        rec.provider = Some(provider.name.clone());
        rec.upstream_model = Some(target.model.to_string());
        return respond_with(
            ctx,
            conn,
            meta,
            &mut input,
            target,
            upstream,
            resp,
            rec,
            attempt_start,
        )
        .await;
    }
    // Every target failed or was skipped.
    let attempts = rec.attempts.len();
    let (status, keep) = match last {
        Some(Failure::Status {
            status,
            content_type,
            body,
            dialect,
        }) => {
            // The provider's error body, in the client's dialect.
            let (status, body) =
                error_in_client_dialect(input.endpoint.dialect(), dialect, status, body);
            let n = body.len();
            let mut head = meta
                .head(status)
                .header_display("x-infergate-attempts", attempts);
            if let Some(ct) = &content_type {
                head = head.header("content-type", ct);
            }
            let head = head.finish(BodyFraming::Length(n), input.keep_alive);
            let ok = write_head_and_body(conn.io(), head, body).await.is_ok();
            rec.bytes_out = n as u64;
            rec.error = Some("all_targets_failed".into());
            (status, ok && input.keep_alive)
        }
        other => {
            let err = match other {
                Some(Failure::Transport(e)) => {
                    let kind = match e {
                        UpstreamError::FirstByteTimeout
                        | UpstreamError::ConnectTimeout
                        | UpstreamError::BodyTimeout => ErrorKind::UpstreamTimeout,
                        _ => ErrorKind::UpstreamFailed,
                    };
                    ApiError::new(
                        kind,
                        "upstream_failed",
                        format!(
                            "All {attempts} attempt(s) for model `{}` failed; the last: {e}.",
                            input.route.alias
                        ),
                    )
                }
                _ => ApiError::new(
                    ErrorKind::Unavailable,
                    "no_available_target",
                    format!(
                        "No target of model `{}` is available ({}).",
                        input.route.alias,
                        skipped.join("; ")
                    ),
                ),
            };
            let ok = write_error(conn, meta, &err, input.keep_alive)
                .await
                .is_ok();
            rec.error = Some(err.code.to_string());
            (err.status(), ok && input.keep_alive)
        }
    };
    rec.status = status;
    rec.latency_ms = ms_since(meta.started);
    ctx.records.send(rec);
    keep
}

fn attempt(
    target: &Target,
    status: Option<u16>,
    error: Option<String>,
    start: Instant,
) -> AttemptRecord {
    AttemptRecord {
        provider: target.provider.name.clone(),
        model: target.model.to_string(),
        status,
        error,
        latency_ms: ms_since(start),
    }
}

/// Reads an error response's body (briefly) so it can be the final answer if no target succeeds.
async fn keep_error_body(
    mut upstream: UpstreamConn,
    resp: &UpstreamResponseHead,
    dialect: Dialect,
) -> (Failure, Option<UpstreamConn>) {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let content_type = resp.headers.get("content-type").map(Bytes::copy_from_slice);
    match read_full_body(&mut upstream, resp.body, 1024 * 1024, deadline).await {
        Ok(body) => (
            Failure::Status {
                status: resp.status,
                content_type,
                body,
                dialect,
            },
            resp.keep_alive.then_some(upstream),
        ),
        Err(e) => (Failure::Transport(e), None),
    }
}

/// The request head sent upstream to `provider` (speaking `target`).
fn upstream_head(
    provider: &Provider,
    input: &ForwardInput<'_>,
    target: Dialect,
    body_len: usize,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(512);
    let (authority, prefix) = match &provider.addr {
        Some(a) => (a.authority.as_str(), a.path_prefix.as_str()),
        None => ("", ""),
    };
    let _ = write!(
        h,
        "POST {prefix}{} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n",
        input.endpoint.upstream_suffix(target)
    );
    let same_dialect = input.endpoint.dialect() == target;
    let mut client_accept = false;
    let mut client_version = false;
    for (name, value) in input.head.headers.iter() {
        if !forward_to_upstream(name) {
            continue;
        }
        // Dialect-specific headers only make sense to a provider of the client's dialect.
        let lower_is = |p: &str| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p);
        if !same_dialect && (lower_is("anthropic-") || lower_is("openai-")) {
            continue;
        }
        client_accept |= name.eq_ignore_ascii_case("accept");
        client_version |= name.eq_ignore_ascii_case("anthropic-version");
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(value);
        h.extend_from_slice(b"\r\n");
    }
    if let Some(key) = provider.api_key() {
        match target {
            Dialect::OpenAi => h.extend_from_slice(b"authorization: Bearer "),
            Dialect::Anthropic => h.extend_from_slice(b"x-api-key: "),
        }
        h.extend_from_slice(key.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    if target == Dialect::Anthropic && !client_version {
        h.extend_from_slice(b"anthropic-version: 2023-06-01\r\n");
    }
    if !client_accept {
        h.extend_from_slice(if input.view.stream {
            b"accept: text/event-stream\r\n"
        } else {
            b"accept: application/json\r\n"
        });
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// The body for `target`: the original bytes, or the original with the model name spliced
/// in (two zero-copy slices around the new name); translated when the dialects differ.
fn upstream_body(
    input: &ForwardInput<'_>,
    target: &Target,
    client: Dialect,
    upstream: Dialect,
) -> Result<UpstreamBody, TranslateError> {
    if client != upstream {
        let translated = match (client, upstream) {
            (Dialect::OpenAi, Dialect::Anthropic) => {
                openai_to_anthropic_request(&input.body, &target.model)?
            }
            _ => anthropic_to_openai_request(&input.body, &target.model)?,
        };
        let n = translated.len();
        return Ok(([Bytes::from(translated), Bytes::new(), Bytes::new()], n));
    }
    if *target.model == *input.view.model {
        let n = input.body.len();
        return Ok(([input.body.clone(), Bytes::new(), Bytes::new()], n));
    }
    let span = input.view.model_span;
    let model = Bytes::from(serde_json::Value::from(&*target.model).to_string());
    let parts = [
        input.body.slice(..span.start),
        model,
        input.body.slice(span.end..),
    ];
    let n = parts.iter().map(Bytes::len).sum();
    Ok((parts, n))
}

/// A request body as up to three slices and its total length.
type UpstreamBody = ([Bytes; 3], usize);

/// An error body from a provider of `from`'s dialect, rewritten for a client of `to`'s.
fn error_in_client_dialect(to: Dialect, from: Dialect, status: u16, body: Bytes) -> (u16, Bytes) {
    match (to, from) {
        (Dialect::Anthropic, Dialect::OpenAi) => {
            let (s, b) = openai_error_to_anthropic(status, &body);
            (s, Bytes::from(b))
        }
        (Dialect::OpenAi, Dialect::Anthropic) => {
            let (s, b) = anthropic_error_to_openai(status, &body);
            (s, Bytes::from(b))
        }
        _ => (status, body),
    }
}

/// One attempt at one target: a pooled connection (retried once on a fresh one when the
/// pooled one turns out stale), the request, the response head.
async fn call(
    ctx: &ShardCtx,
    provider: &Provider,
    input: &ForwardInput<'_>,
    body: &UpstreamBody,
    dialect: Dialect,
) -> Result<(UpstreamConn, UpstreamResponseHead), UpstreamError> {
    let (body, len) = body;
    let head = upstream_head(provider, input, dialect, *len);
    let mut pooled = ctx.pool.take(&provider.pool_key);
    loop {
        let was_pooled = pooled.is_some();
        let mut c = match pooled.take() {
            Some(c) => c,
            None => connect(provider, &ctx.tls).await?,
        };
        let sent = send_request(&mut c, head.clone(), body).await;
        let result = match sent {
            Ok(_) => read_response_head(&mut c, provider.first_byte_timeout, false).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(resp) => return Ok((c, resp)),
            Err(e) if was_pooled && e.stale_connection() => {
                tracing::debug!(provider = %provider.name, "stale pooled connection; reconnecting");
                // Try the next pooled connection, or a fresh one.
                pooled = ctx.pool.take(&provider.pool_key);
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Relays a committed response (whole or streamed) and records the request.
#[allow(clippy::too_many_arguments)]
async fn respond_with(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    meta: &RequestMeta,
    input: &mut ForwardInput<'_>,
    target: &Target,
    mut upstream: UpstreamConn,
    resp: UpstreamResponseHead,
    mut rec: RequestRecord,
    attempt_start: Instant,
) -> bool {
    let provider = &target.provider;
    let attempts = rec.attempts.len() + 1;
    let mut head = meta
        .head(resp.status)
        .header("x-infergate-provider", provider.name.as_bytes())
        .header_display("x-infergate-attempts", attempts);
    for (name, value) in resp.headers.iter() {
        if pass_to_client(name) {
            head = head.header(name, value);
        }
    }
    if let Some(fill) = &input.cache {
        head = head.header("x-infergate-cache", fill.status.as_bytes());
    }
    // Only a complete 200 answer is stored.
    let fill = input
        .cache
        .take()
        .filter(|f| resp.status == 200 && f.wants_response());
    rec.status = resp.status;
    let client = input.endpoint.dialect();
    let up = provider.kind.dialect();
    let keep;
    if resp.is_event_stream() && (200..300).contains(&resp.status) {
        let head = head
            .header("x-accel-buffering", b"no")
            .finish(BodyFraming::Chunked, input.keep_alive);
        let deadline = meta.started + provider.total_timeout;
        let mut capture = fill.as_ref().map(|_| Vec::new());
        let alias = &*input.route.alias;
        let translator: Option<Box<dyn EventTranslator>> = match (client, up) {
            (Dialect::Anthropic, Dialect::OpenAi) => {
                Some(Box::new(OpenAiToAnthropicStream::new(alias)))
            }
            (Dialect::OpenAi, Dialect::Anthropic) => Some(Box::new(AnthropicToOpenAiStream::new(
                alias,
                input.view.include_usage,
            ))),
            _ => None,
        };
        let plan = RelayPlan {
            deadline,
            idle: provider.first_byte_timeout,
            capture: capture.as_mut(),
            translator,
        };
        let end = relay_stream(conn.io(), head, &mut upstream, resp.body, plan).await;
        rec.ttfb_ms = Some(end.ttfb_ms(meta.started));
        rec.bytes_out = end.bytes_out;
        rec.finish_reason = end.finish_reason;
        if let Some(u) = end.usage {
            rec.tokens_in = Some(u.input_tokens);
            rec.tokens_out = Some(u.output_tokens);
        }
        match end.end {
            RelayEnd::Complete { upstream_reusable } => {
                if upstream_reusable && resp.keep_alive {
                    ctx.pool
                        .put(&provider.pool_key, upstream, provider.max_idle_per_shard);
                }
                if let (Some(fill), Some(sse), Some(caches)) = (fill, capture, &ctx.caches) {
                    if let Some(whole) = assemble_chat_completion(&sse) {
                        fill.store(caches, Bytes::from(whole));
                    }
                }
                keep = input.keep_alive;
            }
            RelayEnd::ClientGone => {
                rec.status = 499;
                rec.error = Some("client_closed".into());
                keep = false;
            }
            RelayEnd::UpstreamFailed(kind) => {
                rec.error = Some(format!("upstream_stream_{kind}"));
                keep = input.keep_alive;
            }
        }
        rec.attempts.push(attempt(
            target,
            Some(resp.status),
            rec.error.clone(),
            attempt_start,
        ));
    } else {
        let deadline = meta.started + provider.total_timeout;
        match read_full_body(&mut upstream, resp.body, MAX_UPSTREAM_BODY, deadline).await {
            Ok(body) => {
                if resp.keep_alive {
                    ctx.pool
                        .put(&provider.pool_key, upstream, provider.max_idle_per_shard);
                }
                if let Some(u) = Usage::from_openai_body(&body) {
                    rec.tokens_in = Some(u.input_tokens);
                    rec.tokens_out = Some(u.output_tokens);
                }
                let (status, body) = if client == up {
                    (resp.status, body)
                } else if (200..300).contains(&resp.status) {
                    let translated = match (client, up) {
                        (Dialect::Anthropic, _) => {
                            openai_to_anthropic_response(&body, &input.route.alias)
                        }
                        _ => anthropic_to_openai_response(&body, &input.route.alias),
                    };
                    match translated {
                        Ok(b) => (resp.status, Bytes::from(b)),
                        Err(e) => {
                            tracing::warn!(provider = %provider.name, error = %e, "provider response could not be translated");
                            let err = ApiError::new(
                                ErrorKind::UpstreamFailed,
                                "untranslatable_response",
                                format!(
                                    "The response of provider `{}` could not be translated: {e}.",
                                    provider.name
                                ),
                            );
                            (err.status(), err.to_json(client))
                        }
                    }
                } else {
                    error_in_client_dialect(client, up, resp.status, body)
                };
                rec.status = status;
                let head = if status != resp.status {
                    // The status line was already started from the provider's; restart it.
                    let mut h = meta
                        .head(status)
                        .header("x-infergate-provider", provider.name.as_bytes())
                        .header_display("x-infergate-attempts", attempts)
                        .header("content-type", b"application/json");
                    if let Some(fill) = &input.cache {
                        h = h.header("x-infergate-cache", fill.status.as_bytes());
                    }
                    h
                } else {
                    head
                };
                rec.bytes_out = body.len() as u64;
                if let (Some(fill), Some(caches), true) = (fill, &ctx.caches, status == 200) {
                    fill.store(caches, body.clone());
                }
                let head = head.finish(BodyFraming::Length(body.len()), input.keep_alive);
                rec.ttfb_ms = Some(ms_since(meta.started));
                let ok = write_head_and_body(conn.io(), head, body).await.is_ok();
                if !ok {
                    rec.status = 499;
                    rec.error = Some("client_closed".into());
                }
                keep = ok && input.keep_alive;
                rec.attempts
                    .push(attempt(target, Some(resp.status), None, attempt_start));
            }
            Err(e) => {
                // Nothing was sent to the client yet, but the body is lost: report it.
                rec.attempts.push(attempt(
                    target,
                    Some(resp.status),
                    Some(e.kind().to_string()),
                    attempt_start,
                ));
                let err = ApiError::new(
                    ErrorKind::UpstreamFailed,
                    "upstream_failed",
                    format!("The provider's response could not be read: {e}."),
                );
                let ok = write_error(conn, meta, &err, input.keep_alive)
                    .await
                    .is_ok();
                rec.status = err.status();
                rec.error = Some(err.code.to_string());
                keep = ok && input.keep_alive;
            }
        }
    }
    rec.latency_ms = ms_since(meta.started);
    ctx.records.send(rec);
    keep
}

/// Answers from the built-in mock provider.
async fn answer_from_mock(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    meta: &RequestMeta,
    input: &mut ForwardInput<'_>,
    target: &Target,
    mut rec: RequestRecord,
    attempt_start: Instant,
) -> bool {
    let anthropic_client = input.endpoint.dialect() == Dialect::Anthropic;
    let reply = if anthropic_client {
        // The mock speaks OpenAI: translate the request, answer, translate the answer back.
        let body = match anthropic_to_openai_request(&input.body, &target.model) {
            Ok(b) => b,
            Err(e) => {
                let err = ApiError::new(
                    ErrorKind::InvalidRequest,
                    "unsupported_parameter",
                    format!("{e} (provider `{}`)", target.provider.name),
                );
                let ok = write_error(conn, meta, &err, input.keep_alive)
                    .await
                    .is_ok();
                rec.status = err.status();
                rec.error = Some(err.code.to_string());
                ctx.records.send(rec);
                return ok && input.keep_alive;
            }
        };
        let mut reply = mock::reply(
            Endpoint::ChatCompletions,
            &body,
            &target.model,
            input.view.stream,
        );
        reply.body = match reply.body {
            mock::MockBody::Json(b) => mock::MockBody::Json(
                openai_to_anthropic_response(&b, &input.route.alias)
                    .map(Bytes::from)
                    .unwrap_or(b),
            ),
            mock::MockBody::Events(events) => {
                let mut t = OpenAiToAnthropicStream::new(&input.route.alias);
                let mut out = Vec::new();
                for e in &events {
                    let data = e.strip_prefix(b"data: ").unwrap_or(e);
                    let data = data.strip_suffix(b"\n\n").unwrap_or(data);
                    let _ = t.push_event(None, data, &mut out);
                }
                t.finish(&mut out);
                mock::MockBody::Events(vec![Bytes::from(out)])
            }
        };
        reply
    } else {
        mock::reply(
            input.endpoint,
            &input.body,
            &target.model,
            input.view.stream,
        )
    };
    let cache_status = input.cache.as_ref().map(|f| f.status);
    if let (Some(fill), Some(caches)) = (input.cache.take(), &ctx.caches) {
        // The mock's answer is stored like a provider's (useful to try the cache offline).
        let whole = match &reply.body {
            mock::MockBody::Json(b) => Some(b.clone()),
            mock::MockBody::Events(events) => {
                let sse: Vec<u8> = events.iter().flat_map(|e| e.iter().copied()).collect();
                assemble_chat_completion(&sse).map(Bytes::from)
            }
        };
        if let (Some(whole), true) = (whole, fill.wants_response()) {
            fill.store(caches, whole);
        }
    }
    let attempts = rec.attempts.len() + 1;
    let mut head = meta
        .head(reply.status)
        .header("x-infergate-provider", target.provider.name.as_bytes())
        .header_display("x-infergate-attempts", attempts);
    if let Some(status) = cache_status {
        head = head.header("x-infergate-cache", status.as_bytes());
    }
    let (head, body) = match reply.body {
        mock::MockBody::Json(b) => (
            head.header("content-type", b"application/json")
                .finish(BodyFraming::Length(b.len()), input.keep_alive),
            b,
        ),
        mock::MockBody::Events(events) => {
            let refs: Vec<&[u8]> = events.iter().map(|e| e.as_ref()).collect();
            (
                head.header("content-type", b"text/event-stream")
                    .header("cache-control", b"no-cache")
                    .finish(BodyFraming::Chunked, input.keep_alive),
                Bytes::from(chunk_frame(&refs)),
            )
        }
    };
    rec.bytes_out = body.len() as u64;
    rec.ttfb_ms = Some(ms_since(meta.started));
    let ok = write_head_and_body(conn.io(), head, body).await.is_ok();
    rec.status = if ok { reply.status } else { 499 };
    rec.provider = Some(target.provider.name.clone());
    rec.upstream_model = Some(target.model.to_string());
    rec.tokens_in = Some(reply.usage.input_tokens);
    rec.tokens_out = Some(reply.usage.output_tokens);
    rec.attempts
        .push(attempt(target, Some(reply.status), None, attempt_start));
    rec.latency_ms = ms_since(meta.started);
    ctx.records.send(rec);
    ok && input.keep_alive
}

/// Frames SSE events as an HTTP chunked body (one chunk per event, then the last chunk).
fn chunk_frame(events: &[&[u8]]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(events.iter().map(|e| e.len() + 12).sum::<usize>() + 5);
    for e in events {
        let _ = write!(framed, "{:x}\r\n", e.len());
        framed.extend_from_slice(e);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    framed
}

/// Answers from the cache: the stored completion as is, or replayed as a stream.
pub async fn serve_cached(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    meta: &RequestMeta,
    view: &ChatRequestView,
    hit: CacheHit,
    keep_alive: bool,
    bytes_in: usize,
) -> bool {
    let mut rec = meta.base_record(Endpoint::ChatCompletions, 200);
    rec.bytes_in = bytes_in;
    rec.cache = Some(hit.kind);
    rec.cache_similarity = hit.similarity;
    let stored = &hit.response.body;
    if let Some(u) = Usage::from_openai_body(stored) {
        rec.tokens_in = Some(u.input_tokens);
        rec.tokens_out = Some(u.output_tokens);
    }
    let mut head = meta
        .head(200)
        .header("x-infergate-cache", hit.kind.as_bytes())
        .header_display("x-infergate-attempts", 0);
    if let Some(sim) = hit.similarity {
        head = head.header_display("x-infergate-cache-similarity", format_args!("{sim:.4}"));
    }
    let replay = if view.stream {
        replay_chat_completion(stored, view.include_usage)
    } else {
        None
    };
    let (head, body) = match replay {
        Some(sse) => (
            head.header("content-type", b"text/event-stream")
                .header("cache-control", b"no-cache")
                .finish(BodyFraming::Chunked, keep_alive),
            Bytes::from(chunk_frame(&[&sse])),
        ),
        None => (
            head.header("content-type", hit.response.content_type.as_bytes())
                .finish(BodyFraming::Length(stored.len()), keep_alive),
            stored.clone(),
        ),
    };
    rec.bytes_out = body.len() as u64;
    rec.ttfb_ms = Some(ms_since(meta.started));
    let ok = write_head_and_body(conn.io(), head, body).await.is_ok();
    if !ok {
        rec.status = 499;
    }
    rec.latency_ms = ms_since(meta.started);
    ctx.records.send(rec);
    ok && keep_alive
}

/// Answers `count_tokens` with an estimate (about four characters a token) when the target
/// cannot count: Anthropic's SDKs call it before long requests.
async fn answer_token_estimate(
    ctx: &ShardCtx,
    conn: &mut ServerConn,
    meta: &RequestMeta,
    input: &ForwardInput<'_>,
    mut rec: RequestRecord,
) -> bool {
    fn text_len(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.chars().count(),
            serde_json::Value::Array(a) => a.iter().map(text_len).sum(),
            serde_json::Value::Object(o) => o
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "type" | "role" | "id" | "cache_control"))
                .map(|(_, v)| text_len(v))
                .sum(),
            _ => 0,
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&input.body).unwrap_or_default();
    let chars = text_len(&v["messages"]) + text_len(&v["system"]) + text_len(&v["tools"]);
    let tokens = chars.div_ceil(4).max(1);
    let body = Bytes::from(format!("{{\"input_tokens\":{tokens}}}"));
    let head = meta
        .head(200)
        .header("content-type", b"application/json")
        .header("x-infergate-estimate", b"true")
        .finish(BodyFraming::Length(body.len()), input.keep_alive);
    let ok = write_head_and_body(conn.io(), head, body).await.is_ok();
    rec.status = 200;
    rec.tokens_in = Some(tokens as u64);
    rec.latency_ms = ms_since(meta.started);
    ctx.records.send(rec);
    ok && input.keep_alive
}
