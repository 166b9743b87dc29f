//! Forwarding: try the alias's targets in plan order until one answers. A failure before any
//! byte reached the client (connect error, 5xx, 429, first-byte timeout) moves to the next
//! target; once the client has bytes, the response is relayed to its end.

use std::io::Write as _;
use std::time::Instant;

use bytes::Bytes;

use super::caching::{CacheFill, CacheHit};
use super::client_gone::unless_client_leaves;
use super::headers::pass_to_client;
use super::relay::{relay_stream, RelayEnd, RelayPlan, UpstreamFrames};
use super::respond::{write_error, RequestMeta};
use super::{ms_since, ShardCtx};
use crate::api::{ApiError, ChatRequestView, ErrorKind};
use crate::config::{AuthStyle, ProviderKind};
use crate::http::{write_head_and_body, BodyFraming, RequestHead, ServerConn};
use crate::observe::{AttemptRecord, RequestRecord};
use crate::route::{ModelRoute, Provider, Target};
use crate::translate::{
    assemble_chat_completion, for_each_event, replay_chat_completion, Bridge, TranslateError,
};
use crate::upstream::{
    connect, mock, read_full_body, read_response_head, send_request, UpstreamConn, UpstreamError,
    UpstreamResponseHead,
};
use crate::wire::{Endpoint, Usage, WireApi};

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
        /// Bedrock's `x-amzn-errortype` header.
        error_type: Option<Bytes>,
        /// How the body reaches the client's format (`None`: the same format).
        bridge: Option<Bridge>,
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
        let Some(target) = input.route.targets.get(index as usize) else {
            continue;
        };
        let provider = &target.provider;
        if let Some(why) = &provider.unavailable {
            skipped.push(format!("{}: {why}", provider.name));
            continue;
        }
        let wire = provider.wire_for(input.endpoint);
        // Only set when the formats differ: same-format traffic passes through.
        let bridge = input
            .endpoint
            .client_wire()
            .map(|c| Bridge::new(c, wire))
            .filter(|b| !b.is_passthrough());
        if input.endpoint == Endpoint::Embeddings && !provider.spec.embeddings {
            skipped.push(format!("{}: no embeddings endpoint", provider.name));
            continue;
        }
        if input.endpoint == Endpoint::CountTokens && wire != WireApi::Messages {
            // The target can't count: answer with the gateway's estimate.
            return answer_token_estimate(ctx, conn, meta, &input, rec).await;
        }
        let attempt_start = Instant::now();
        if provider.kind == ProviderKind::Mock {
            return answer_from_mock(ctx, conn, meta, &mut input, target, rec, attempt_start).await;
        }
        let body = match upstream_body(&input, target, bridge) {
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
        let attempt_call = call(ctx, provider, &input, &body, wire, &target.model);
        let Some(result) = unless_client_leaves(conn.stream(), attempt_call).await else {
            rec.attempts.push(attempt(
                target,
                None,
                Some("client_closed".into()),
                attempt_start,
            ));
            return client_left(ctx, meta, rec);
        };
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
            let (failure, upstream) = keep_error_body(upstream, &resp, bridge).await;
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
            wire,
            bridge,
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
            error_type,
            bridge,
        }) => {
            // The provider's error body, in the client's format.
            let (status, body, translated) = error_for_client(bridge, status, error_type, body);
            let n = body.len();
            let mut head = meta
                .head(status)
                .header_display("x-infergate-attempts", attempts);
            match (&content_type, translated) {
                (Some(ct), false) => head = head.header("content-type", ct),
                _ => head = head.header("content-type", b"application/json"),
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
    bridge: Option<Bridge>,
) -> (Failure, Option<UpstreamConn>) {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let content_type = resp.headers.get("content-type").map(Bytes::copy_from_slice);
    let error_type = resp
        .headers
        .get("x-amzn-errortype")
        .map(Bytes::copy_from_slice);
    match read_full_body(&mut upstream, resp.body, 1024 * 1024, deadline).await {
        Ok(body) => (
            Failure::Status {
                status: resp.status,
                content_type,
                body,
                error_type,
                bridge,
            },
            resp.keep_alive.then_some(upstream),
        ),
        Err(e) => (Failure::Transport(e), None),
    }
}

/// The request head sent upstream to `provider` (speaking `wire`), credentials included.
fn upstream_head(
    provider: &Provider,
    input: &ForwardInput<'_>,
    wire: WireApi,
    model: &str,
    body: &UpstreamBody,
) -> Vec<u8> {
    let (parts, body_len) = body;
    let mut h = Vec::with_capacity(512);
    let authority = provider.addr.as_ref().map_or("", |a| a.authority.as_str());
    let path = provider.request_path(input.endpoint, wire, model, input.view.stream);
    let _ = write!(
        h,
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n",
    );
    // Dialect-specific headers only make sense to a provider of the client's family.
    let client = input.endpoint.client_wire();
    let pass_anthropic = client == Some(WireApi::Messages) && wire == WireApi::Messages;
    let openai_family = |w: Option<WireApi>| matches!(w, Some(WireApi::Chat | WireApi::Responses));
    let pass_openai = openai_family(client) && openai_family(Some(wire)) || client.is_none();
    let mut client_accept = false;
    let mut client_version = false;
    let headers = &input.head.headers;
    for (name, value) in headers.iter() {
        if !provider.forward_headers.allows(name) || headers.has_token("connection", name) {
            continue;
        }
        let lower_is = |p: &str| {
            name.get(..p.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(p))
        };
        if (!pass_anthropic && lower_is("anthropic-")) || (!pass_openai && lower_is("openai-")) {
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
        let name: &[u8] = match provider.auth_style() {
            AuthStyle::Bearer | AuthStyle::SigV4 => b"authorization: Bearer ",
            AuthStyle::XApiKey => b"x-api-key: ",
            AuthStyle::AzureApiKey => b"api-key: ",
            AuthStyle::GoogApiKey => b"x-goog-api-key: ",
        };
        h.extend_from_slice(name);
        h.extend_from_slice(key.as_bytes());
        h.extend_from_slice(b"\r\n");
    } else if provider.auth_style() == AuthStyle::SigV4 {
        sign_aws(provider, &mut h, authority, &path, parts);
    }
    if wire == WireApi::Messages && !client_version {
        h.extend_from_slice(b"anthropic-version: 2023-06-01\r\n");
    }
    if !client_accept && wire != WireApi::Converse {
        h.extend_from_slice(if input.view.stream {
            b"accept: text/event-stream\r\n"
        } else {
            b"accept: application/json\r\n"
        });
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// Adds AWS SigV4 headers for a Bedrock call (`authorization`, `x-amz-date`, and the
/// session token of temporary credentials). The signed headers are the host and the content
/// type; the body hash covers the exact bytes sent.
fn sign_aws(provider: &Provider, h: &mut Vec<u8>, authority: &str, path: &str, body: &[Bytes; 3]) {
    let (Some(creds), Some(region)) = (&provider.aws, &provider.region) else {
        return;
    };
    let whole: Vec<u8>;
    let bytes: &[u8] = if body[1].is_empty() && body[2].is_empty() {
        &body[0]
    } else {
        whole = body.iter().flat_map(|b| b.iter().copied()).collect();
        &whole
    };
    match crate::upstream::sigv4::sign_headers(
        creds,
        region,
        "bedrock",
        "POST",
        authority,
        path,
        &[("content-type", "application/json")],
        bytes,
        std::time::SystemTime::now(),
    ) {
        Ok(headers) => {
            for (name, value) in headers {
                h.extend_from_slice(name.as_bytes());
                h.extend_from_slice(b": ");
                h.extend_from_slice(value.as_bytes());
                h.extend_from_slice(b"\r\n");
            }
        }
        Err(e) => tracing::warn!(provider = %provider.name, error = %e, "request not signed"),
    }
}

/// The body for the provider: the original bytes, or the original with the model name
/// spliced in (two zero-copy slices around the new name); translated through `bridge` (set
/// only when the formats differ).
fn upstream_body(
    input: &ForwardInput<'_>,
    target: &Target,
    bridge: Option<Bridge>,
) -> Result<UpstreamBody, TranslateError> {
    if let Some(bridge) = bridge {
        let translated = bridge.request(&input.body, &target.model)?;
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

/// A provider's error body in the client's format (`bridge` is set only when the formats
/// differ); the flag says whether it was rewritten.
fn error_for_client(
    bridge: Option<Bridge>,
    status: u16,
    error_type: Option<Bytes>,
    body: Bytes,
) -> (u16, Bytes, bool) {
    match bridge {
        Some(b) => {
            let error_type = error_type
                .as_deref()
                .and_then(|t| std::str::from_utf8(t).ok());
            let (s, body) = b.error(status, error_type, &body);
            (s, Bytes::from(body), true)
        }
        None => (status, body, false),
    }
}

/// One attempt at one target: a pooled connection (retried once on a fresh one when the
/// pooled one turns out stale), the request, the response head.
async fn call(
    ctx: &ShardCtx,
    provider: &Provider,
    input: &ForwardInput<'_>,
    body: &UpstreamBody,
    wire: WireApi,
    model: &str,
) -> Result<(UpstreamConn, UpstreamResponseHead), UpstreamError> {
    let head = upstream_head(provider, input, wire, model, body);
    let (body, _) = body;
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
    wire: WireApi,
    bridge: Option<Bridge>,
) -> bool {
    let provider = &target.provider;
    let attempts = rec.attempts.len() + 1;
    let ok_status = (200..300).contains(&resp.status);
    let streamed = ok_status
        && (resp.is_event_stream()
            || wire == WireApi::Converse
                && resp.content_type_is(b"application/vnd.amazon.eventstream"));
    let mut head = meta
        .head(resp.status)
        .header("x-infergate-provider", provider.name.as_bytes())
        .header_display("x-infergate-attempts", attempts);
    for (name, value) in resp.headers.iter() {
        // A translated body gets its own content type.
        if pass_to_client(name) && !(bridge.is_some() && name.eq_ignore_ascii_case("content-type"))
        {
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
    let keep;
    if streamed {
        let translator = match bridge
            .map(|b| b.stream(&input.route.alias, input.view.include_usage, &input.body))
        {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                tracing::warn!(provider = %provider.name, error = %e, "no stream translator");
                None
            }
            None => None,
        };
        let mut head = head.header("x-accel-buffering", b"no");
        if bridge.is_some() {
            head = head
                .header("content-type", b"text/event-stream")
                .header("cache-control", b"no-cache");
        }
        let head = head.finish(BodyFraming::Chunked, input.keep_alive);
        let deadline = meta.started + provider.total_timeout;
        let mut capture = fill.as_ref().map(|_| Vec::new());
        let plan = RelayPlan {
            deadline,
            idle: provider.first_byte_timeout,
            capture: capture.as_mut(),
            translator,
            client: input.endpoint.client_wire().unwrap_or(WireApi::Chat),
            upstream_frames: if wire.streams_sse() {
                UpstreamFrames::Sse
            } else {
                UpstreamFrames::AwsEventStream
            },
        };
        let end = relay_stream(conn.io(), head, &mut upstream, resp.body, plan).await;
        rec.ttfb_ms = Some(end.ttfb_ms(meta.started));
        rec.bytes_out = end.bytes_out;
        rec.finish_reason = end.finish_reason;
        if let Some(u) = end.usage {
            rec.tokens_in = Some(u.prompt_tokens());
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
        let read = read_full_body(&mut upstream, resp.body, MAX_UPSTREAM_BODY, deadline);
        let Some(read) = unless_client_leaves(conn.stream(), read).await else {
            rec.attempts.push(attempt(
                target,
                Some(resp.status),
                Some("client_closed".into()),
                attempt_start,
            ));
            return client_left(ctx, meta, rec);
        };
        match read {
            Ok(body) => {
                if resp.keep_alive {
                    ctx.pool
                        .put(&provider.pool_key, upstream, provider.max_idle_per_shard);
                }
                let mut usage = None;
                let (status, body) = match bridge {
                    None => {
                        usage = Usage::from_openai_body(&body);
                        (resp.status, body)
                    }
                    Some(b) if ok_status => {
                        match b.response(&body, &input.route.alias, &input.body) {
                            Ok(t) => {
                                usage = t.usage;
                                (resp.status, Bytes::from(t.body))
                            }
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
                                (err.status(), err.to_json(meta.dialect))
                            }
                        }
                    }
                    Some(_) => {
                        let error_type = resp
                            .headers
                            .get("x-amzn-errortype")
                            .map(Bytes::copy_from_slice);
                        let (s, b, _) = error_for_client(bridge, resp.status, error_type, body);
                        (s, b)
                    }
                };
                if let Some(u) = usage {
                    rec.tokens_in = Some(u.prompt_tokens());
                    rec.tokens_out = Some(u.output_tokens);
                }
                rec.status = status;
                let head = if status != resp.status || bridge.is_some() {
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

/// Records a request whose client hung up before its answer was ready; the upstream call
/// was dropped with it, so the provider stops working for nobody.
fn client_left(ctx: &ShardCtx, meta: &RequestMeta, mut rec: RequestRecord) -> bool {
    tracing::debug!(request_id = %meta.request_id, "client closed the connection while waiting; upstream call cancelled");
    rec.status = 499;
    rec.error = Some("client_closed".into());
    rec.latency_ms = ms_since(meta.started);
    ctx.records.send(rec);
    false
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
    // The mock speaks Chat Completions: other clients are translated there and back.
    let bridge = input
        .endpoint
        .client_wire()
        .map(|c| Bridge::new(c, WireApi::Chat))
        .filter(|b| !b.is_passthrough());
    let reply = if let Some(bridge) = bridge {
        let body = match bridge.request(&input.body, &target.model) {
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
        let alias = &*input.route.alias;
        reply.body = match reply.body {
            mock::MockBody::Json(b) => match bridge.response(&b, alias, &input.body) {
                Ok(t) => mock::MockBody::Json(Bytes::from(t.body)),
                Err(_) => {
                    let (_, body) = bridge.error(reply.status, None, &b);
                    mock::MockBody::Json(Bytes::from(body))
                }
            },
            mock::MockBody::Events(events) => {
                let mut out = Vec::new();
                if let Ok(Some(mut t)) = bridge.stream(alias, input.view.include_usage, &input.body)
                {
                    let mut scratch = Vec::new();
                    for e in &events {
                        let _ = for_each_event(e, &mut scratch, |name, data| {
                            t.push_event(name, data, &mut out)
                        });
                    }
                    t.finish(&mut out);
                }
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
    rec.tokens_in = Some(reply.usage.prompt_tokens());
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
        rec.tokens_in = Some(u.prompt_tokens());
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
    let field = |k: &str| v.get(k).map_or(0, text_len);
    let chars = field("messages") + field("system") + field("tools");
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
