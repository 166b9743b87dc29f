//! Serving one connection: routing, the OpenAI endpoints, token pacing and faults.

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::config::{MockConfig, RequestKnobs};
use super::fault::Fault;
use super::request::{Connection, Method, ReadError, Request};
use super::stats::{Endpoint, MockStats};
use super::text;
use super::wire;
use crate::http1::reason_phrase;

/// What every connection task of a server thread shares.
pub struct ServerContext {
    pub config: Arc<MockConfig>,
    pub stats: Arc<MockStats>,
}

/// Whether the connection may serve another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// Serves requests on `stream` until the client closes it or a response closes it.
pub async fn serve_connection(stream: TcpStream, ctx: Rc<ServerContext>) {
    let mut conn = Connection::new(stream);
    loop {
        let request = match conn.read_request(&ctx.config).await {
            Ok(r) => r,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return,
            Err(ReadError::Malformed(msg)) => {
                ctx.stats.count_request(Endpoint::BadRequest);
                let _ = write_error(&mut conn.stream, 400, msg, false).await;
                return;
            }
            Err(ReadError::TooLarge(status)) => {
                ctx.stats.count_request(Endpoint::BadRequest);
                let _ = write_error(&mut conn.stream, status, "request too large", false).await;
                return;
            }
        };
        match handle(&mut conn.stream, request, &ctx).await {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close) | Err(_) => return,
        }
    }
}

async fn handle(
    stream: &mut TcpStream,
    request: Request,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    let knobs = match request.knobs {
        Ok(k) => k,
        Err(msg) => {
            ctx.stats.count_request(Endpoint::BadRequest);
            return write_error(stream, 400, &msg, keep_alive).await;
        }
    };
    match (request.method, request.path.as_str()) {
        (Method::Post, "/v1/chat/completions") => {
            chat(stream, &request.body, knobs, keep_alive, ctx).await
        }
        (Method::Post, "/v1/embeddings") => {
            embeddings(stream, &request.body, knobs, keep_alive, ctx).await
        }
        (Method::Get, "/v1/models") => {
            ctx.stats.count_request(Endpoint::Models);
            let data = ctx
                .config
                .models
                .iter()
                .map(|id| wire::ModelInfo {
                    id,
                    object: "model",
                    created: 1_700_000_000,
                    owned_by: "mockllm",
                })
                .collect();
            let body = serde_json::to_vec(&wire::ModelList {
                object: "list",
                data,
            })
            .unwrap_or_default();
            write_json(stream, 200, &body, keep_alive, "").await
        }
        (Method::Get, "/mock/stats") => {
            let body = serde_json::to_vec(&ctx.stats.snapshot()).unwrap_or_default();
            write_json(stream, 200, &body, keep_alive, "").await
        }
        _ => {
            ctx.stats.count_request(Endpoint::NotFound);
            let msg = format!("Unknown request URL: {}", request.path);
            write_error(stream, 404, &msg, keep_alive).await
        }
    }
}

/// Injects the faults that happen before any answer; returns `Some` when it did.
async fn fault_before_answer(
    stream: &mut TcpStream,
    fault: Option<Fault>,
    keep_alive: bool,
    stats: &MockStats,
) -> Option<std::io::Result<Next>> {
    let fault = fault?;
    match fault {
        Fault::Status(status) => {
            stats.count_fault(fault);
            let msg = format!("mockllm injected fault: status {status}");
            let extra = if status == 429 {
                "retry-after: 1\r\n"
            } else {
                ""
            };
            let body = wire::error_json(status, &msg);
            Some(write_json(stream, status, &body, keep_alive, extra).await)
        }
        Fault::Reset => {
            stats.count_fault(fault);
            reset(stream);
            Some(Ok(Next::Close))
        }
        Fault::Stall => {
            stats.count_fault(fault);
            wait_for_client_to_leave(stream).await;
            Some(Ok(Next::Close))
        }
        Fault::ResetMidStream | Fault::StallMidStream => None,
    }
}

async fn chat(
    stream: &mut TcpStream,
    body: &[u8],
    knobs: RequestKnobs,
    keep_alive: bool,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let request: wire::ChatRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            ctx.stats.count_request(Endpoint::BadRequest);
            let msg = format!("We could not parse the JSON body of your request: {e}");
            return write_error(stream, 400, &msg, keep_alive).await;
        }
    };
    let streaming = request.stream.unwrap_or(false);
    ctx.stats.count_request(if streaming {
        Endpoint::ChatStream
    } else {
        Endpoint::Chat
    });
    if let Some(done) = fault_before_answer(stream, knobs.fault, keep_alive, &ctx.stats).await {
        return done;
    }
    let prompt = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.as_ref())
        .map(|c| c.text())
        .unwrap_or_default();
    let prompt_chars: usize = request
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .map(|c| c.text_len())
        .sum();
    let mut count = knobs.tokens;
    let mut finish_reason = "stop";
    if let Some(limit) = request.max_completion_tokens.or(request.max_tokens) {
        if limit < count {
            count = limit;
            finish_reason = "length";
        }
    }
    let prompt_tokens = text::estimate_tokens(prompt_chars);
    let reply = Reply {
        id: format!(
            "chatcmpl-{}",
            std::iter::repeat_with(fastrand::alphanumeric)
                .take(24)
                .collect::<String>()
        ),
        created: unix_now(),
        model: request.model,
        tokens: text::reply_tokens(&prompt, count),
        finish_reason,
        usage: wire::Usage {
            prompt_tokens,
            completion_tokens: count,
            total_tokens: prompt_tokens + count,
        },
    };
    if let Some(mid_stream) = knobs.fault {
        ctx.stats.count_fault(mid_stream);
    }
    if streaming {
        let include_usage = request
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        stream_reply(stream, &reply, &knobs, include_usage, keep_alive).await
    } else {
        complete_reply(stream, &reply, &knobs, keep_alive).await
    }
}

/// Everything needed to render a completion, streamed or not.
struct Reply {
    id: String,
    created: u64,
    model: String,
    tokens: Vec<String>,
    finish_reason: &'static str,
    usage: wire::Usage,
}

impl Reply {
    fn chunk_json(&self, delta: wire::Delta<'_>, finish: Option<&'static str>) -> Vec<u8> {
        serde_json::to_vec(&wire::ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: "fp_mockllm",
            choices: vec![wire::ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            usage: None,
        })
        .unwrap_or_default()
    }

    fn usage_chunk_json(&self) -> Vec<u8> {
        serde_json::to_vec(&wire::ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            system_fingerprint: "fp_mockllm",
            choices: Vec::new(),
            usage: Some(self.usage),
        })
        .unwrap_or_default()
    }

    fn completion_json(&self, content: &str) -> Vec<u8> {
        serde_json::to_vec(&wire::ChatCompletion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: &self.model,
            choices: [wire::Choice {
                index: 0,
                message: wire::AssistantMessage {
                    role: "assistant",
                    content,
                    refusal: None,
                },
                logprobs: None,
                finish_reason: self.finish_reason,
            }],
            usage: self.usage,
            system_fingerprint: "fp_mockllm",
        })
        .unwrap_or_default()
    }
}

async fn complete_reply(
    stream: &mut TcpStream,
    reply: &Reply,
    knobs: &RequestKnobs,
    keep_alive: bool,
) -> std::io::Result<Next> {
    let generation = knobs.ttft + knobs.itl * u32::try_from(reply.tokens.len()).unwrap_or(0);
    sleep_if_any(generation).await;
    let mut content: String = reply.tokens.concat();
    let mut body = reply.completion_json(&content);
    if let Some(target) = knobs.body_bytes {
        if body.len() < target {
            let pad = target - body.len();
            content.extend(" pad".chars().cycle().take(pad));
            body = reply.completion_json(&content);
        }
    }
    match knobs.fault {
        Some(Fault::ResetMidStream) | Some(Fault::StallMidStream) => {
            let head = response_head(200, "application/json", Some(body.len()), true, "");
            let half = body.len() / 2;
            let mut out = head.into_bytes();
            out.extend_from_slice(&body[..half]);
            write(stream, out).await?;
            mid_stream_fault(stream, knobs.fault).await
        }
        _ => write_json(stream, 200, &body, keep_alive, "").await,
    }
}

async fn stream_reply(
    stream: &mut TcpStream,
    reply: &Reply,
    knobs: &RequestKnobs,
    include_usage: bool,
    keep_alive: bool,
) -> std::io::Result<Next> {
    let fault_after = if matches!(
        knobs.fault,
        Some(Fault::ResetMidStream) | Some(Fault::StallMidStream)
    ) {
        Some(reply.tokens.len() / 2)
    } else {
        None
    };
    sleep_if_any(knobs.ttft).await;
    let head = response_head(
        200,
        "text/event-stream; charset=utf-8",
        None,
        keep_alive,
        "cache-control: no-cache\r\n",
    );
    let role = reply.chunk_json(
        wire::Delta {
            role: Some("assistant"),
            content: Some(""),
        },
        None,
    );
    let mut first = head.into_bytes();
    push_sse_chunk(&mut first, &role);
    write(stream, first).await?;
    for (i, token) in reply.tokens.iter().enumerate() {
        if fault_after == Some(i) {
            return mid_stream_fault(stream, knobs.fault).await;
        }
        if i > 0 {
            sleep_if_any(knobs.itl).await;
        }
        let json = reply.chunk_json(
            wire::Delta {
                role: None,
                content: Some(token),
            },
            None,
        );
        let mut out = Vec::with_capacity(json.len() + 16);
        push_sse_chunk(&mut out, &json);
        write(stream, out).await?;
    }
    if fault_after.is_some() {
        return mid_stream_fault(stream, knobs.fault).await;
    }
    let mut out = Vec::with_capacity(512);
    push_sse_chunk(
        &mut out,
        &reply.chunk_json(wire::Delta::default(), Some(reply.finish_reason)),
    );
    write(stream, out).await?;
    if include_usage {
        let mut out = Vec::with_capacity(512);
        push_sse_chunk(&mut out, &reply.usage_chunk_json());
        write(stream, out).await?;
    }
    let mut out = Vec::with_capacity(32);
    push_sse_chunk(&mut out, b"[DONE]");
    out.extend_from_slice(b"0\r\n\r\n");
    write(stream, out).await?;
    Ok(if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    })
}

async fn mid_stream_fault(stream: &mut TcpStream, fault: Option<Fault>) -> std::io::Result<Next> {
    match fault {
        Some(Fault::StallMidStream) => wait_for_client_to_leave(stream).await,
        _ => reset(stream),
    }
    Ok(Next::Close)
}

async fn embeddings(
    stream: &mut TcpStream,
    body: &[u8],
    knobs: RequestKnobs,
    keep_alive: bool,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let request: wire::EmbeddingsRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            ctx.stats.count_request(Endpoint::BadRequest);
            let msg = format!("We could not parse the JSON body of your request: {e}");
            return write_error(stream, 400, &msg, keep_alive).await;
        }
    };
    let Some(inputs) = embedding_inputs(&request.input) else {
        ctx.stats.count_request(Endpoint::BadRequest);
        return write_error(stream, 400, "'$.input' is invalid.", keep_alive).await;
    };
    let dimensions = request
        .dimensions
        .unwrap_or(ctx.config.embedding_dimensions);
    if dimensions == 0 || dimensions > 16_384 {
        ctx.stats.count_request(Endpoint::BadRequest);
        return write_error(stream, 400, "'dimensions' is out of range.", keep_alive).await;
    }
    ctx.stats.count_request(Endpoint::Embeddings);
    if let Some(done) = fault_before_answer(stream, knobs.fault, keep_alive, &ctx.stats).await {
        return done;
    }
    sleep_if_any(knobs.ttft).await;
    let base64 = request.encoding_format.as_deref() == Some("base64");
    let mut prompt_tokens = 0u32;
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            prompt_tokens = prompt_tokens.saturating_add(text::estimate_tokens(input.len()));
            let v = text::embedding_vector(input, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                wire::EmbeddingValue::Base64(text::base64_encode(&bytes))
            } else {
                wire::EmbeddingValue::Float(v)
            };
            wire::Embedding {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let body = serde_json::to_vec(&wire::EmbeddingList {
        object: "list",
        data,
        model: &request.model,
        usage: wire::EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
    .unwrap_or_default();
    if matches!(
        knobs.fault,
        Some(Fault::ResetMidStream) | Some(Fault::StallMidStream)
    ) {
        if let Some(f) = knobs.fault {
            ctx.stats.count_fault(f);
        }
        let mut out =
            response_head(200, "application/json", Some(body.len()), true, "").into_bytes();
        out.extend_from_slice(&body[..body.len() / 2]);
        write(stream, out).await?;
        return mid_stream_fault(stream, knobs.fault).await;
    }
    write_json(stream, 200, &body, keep_alive, "").await
}

/// The byte strings to embed: a string, an array of strings, a token array, or an array
/// of token arrays (token arrays are hashed as their JSON text).
fn embedding_inputs(input: &serde_json::Value) -> Option<Vec<Vec<u8>>> {
    use serde_json::Value;
    match input {
        Value::String(s) => Some(vec![s.as_bytes().to_vec()]),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        ),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            Some(vec![input.to_string().into_bytes()])
        }
        Value::Array(items) if items.iter().all(Value::is_array) => {
            Some(items.iter().map(|i| i.to_string().into_bytes()).collect())
        }
        _ => None,
    }
}

fn push_sse_chunk(out: &mut Vec<u8>, json: &[u8]) {
    // One HTTP chunk holding one SSE event: "data: JSON\n\n".
    let len = json.len() + 8;
    out.extend_from_slice(format!("{len:x}\r\ndata: ").as_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n\r\n");
}

fn response_head(
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    keep_alive: bool,
    extra: &str,
) -> String {
    let framing = match content_length {
        Some(len) => format!("content-length: {len}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_string(),
    };
    let connection = if keep_alive {
        ""
    } else {
        "connection: close\r\n"
    };
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n{framing}{connection}{extra}\r\n",
        reason_phrase(status)
    )
}

async fn write_json(
    stream: &mut TcpStream,
    status: u16,
    body: &[u8],
    keep_alive: bool,
    extra: &str,
) -> std::io::Result<Next> {
    let mut out = response_head(
        status,
        "application/json",
        Some(body.len()),
        keep_alive,
        extra,
    )
    .into_bytes();
    out.extend_from_slice(body);
    write(stream, out).await?;
    Ok(if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    })
}

async fn write_error(
    stream: &mut TcpStream,
    status: u16,
    message: &str,
    keep_alive: bool,
) -> std::io::Result<Next> {
    let body = wire::error_json(status, message);
    write_json(stream, status, &body, keep_alive, "").await
}

async fn write(stream: &mut TcpStream, out: Vec<u8>) -> std::io::Result<()> {
    let (res, _) = stream.write_all(out).await;
    res.map(|_| ())
}

/// Arms a TCP reset: with SO_LINGER at zero, the close that follows (the caller drops the
/// connection) sends RST instead of FIN.
fn reset(stream: &mut TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd owned by `stream`; `linger` outlives the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Reads and discards until the client closes the connection (a stalled upstream).
async fn wait_for_client_to_leave(stream: &mut TcpStream) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn sleep_if_any(d: Duration) {
    if !d.is_zero() {
        monoio::time::sleep(d).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
