//! The built-in `mock` provider: answers in OpenAI's wire format without any network, so the
//! quickstart runs offline and agents can be tested against the gateway with no provider key.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::call::{Upstream, UpstreamRequest, UpstreamResponse};
use super::client::read_response_head;
use super::conn::UpstreamConn;
use super::error::UpstreamError;
use crate::wire::{Endpoint, Usage};

/// The built-in mock as an [`Upstream`]: it answers in Chat Completions (and OpenAI
/// embeddings) over an in-memory connection, so its answers take the same way through the
/// gateway as a provider's: translation, the cache, the response, the record.
pub struct MockUpstream;

impl Upstream for MockUpstream {
    async fn call(&self, req: &UpstreamRequest<'_>) -> Result<UpstreamResponse, UpstreamError> {
        let body = req.body.contiguous();
        let reply = reply(req.endpoint, &body, req.model, req.stream);
        let mut conn = UpstreamConn::in_memory(&reply.to_http());
        let head = read_response_head(&mut conn, Duration::from_secs(1), false).await?;
        Ok(UpstreamResponse { head, conn })
    }
}

/// What the mock answers.
pub enum MockBody {
    /// A whole JSON response.
    Json(Bytes),
    /// SSE events, each a complete `data: ...\n\n` block.
    Events(Vec<Bytes>),
}

/// The mock's reply to one request.
pub struct MockReply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: MockBody,
    /// Tokens, as the record wants them.
    pub usage: Usage,
}

impl MockReply {
    /// The reply as an HTTP/1.1 response, as a provider would send it.
    pub fn to_http(&self) -> Vec<u8> {
        let (content_type, extra, body): (&str, &str, Vec<u8>) = match &self.body {
            MockBody::Json(b) => ("application/json", "", b.to_vec()),
            MockBody::Events(events) => (
                "text/event-stream",
                "cache-control: no-cache\r\n",
                events.concat(),
            ),
        };
        let mut out = Vec::with_capacity(body.len() + 160);
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
            self.status,
            crate::http::status_reason(self.status),
            body.len()
        );
        out.extend_from_slice(&body);
        out
    }
}

fn last_user_text(req: &Value) -> String {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    for m in messages.iter().rev() {
        if m.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        return match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
    }
    String::new()
}

fn count_tokens(text: &str) -> u64 {
    // A rough count (words and punctuation), good enough for a mock's usage numbers.
    text.split_whitespace().count().max(1) as u64
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Answers one request for `model` (the target's upstream model name).
pub fn reply(endpoint: Endpoint, body: &[u8], model: &str, stream: bool) -> MockReply {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match endpoint {
        Endpoint::Embeddings => embeddings(&req, model),
        _ => chat(&req, model, stream),
    }
}

fn chat(req: &Value, model: &str, stream: bool) -> MockReply {
    let said = last_user_text(req);
    let shown: String = said.chars().take(200).collect();
    let text = format!("This is infergate's built-in mock provider. You said: {shown}");
    let prompt_tokens: u64 = req
        .get("messages")
        .and_then(Value::as_array)
        .map_or(1, |ms| {
            ms.iter()
                .map(|m| m.get("content").map_or(1, |c| count_tokens(&c.to_string())))
                .sum()
        });
    let completion_tokens = count_tokens(&text);
    let usage = Usage {
        input_tokens: prompt_tokens,
        output_tokens: completion_tokens,
        ..Usage::default()
    };
    let id = format!("chatcmpl-mock{:016x}", fastrand::u64(..));
    let created = now_secs();
    let usage_json = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    if !stream {
        let v = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage_json,
            "system_fingerprint": "infergate-mock",
        });
        return MockReply {
            status: 200,
            body: MockBody::Json(Bytes::from(v.to_string())),
            usage,
        };
    }
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let usage_json = include_usage.then_some(usage_json);
    MockReply {
        status: 200,
        body: MockBody::Events(chat_events(&id, created, model, &text, usage_json)),
        usage,
    }
}

/// The streamed form of a chat answer: a role delta, a delta per word, the finish reason,
/// the usage when asked for, `[DONE]`.
fn chat_events(
    id: &str,
    created: u64,
    model: &str,
    text: &str,
    usage_json: Option<Value>,
) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        let v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "infergate-mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        Bytes::from(format!("data: {v}\n\n"))
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for w in words {
        events.push(chunk(json!({"content": w}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if let Some(usage_json) = usage_json {
        let v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "infergate-mock",
            "choices": [],
            "usage": usage_json,
        });
        events.push(Bytes::from(format!("data: {v}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn embeddings(req: &Value, model: &str) -> MockReply {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.to_string()).collect(),
        _ => Vec::new(),
    };
    let dims = req
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(64)
        .clamp(1, 4096) as usize;
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += count_tokens(text);
            json!({"object": "embedding", "index": i, "embedding": hashed_vector(text, dims)})
        })
        .collect();
    let v = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    MockReply {
        status: 200,
        body: MockBody::Json(Bytes::from(v.to_string())),
        usage: Usage {
            input_tokens: tokens,
            ..Usage::default()
        },
    }
}

/// A deterministic unit vector derived from the text (not a semantic embedding).
fn hashed_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        state = (state ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = fastrand::Rng::with_seed(state);
    let mut v: Vec<f32> = (0..dims).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_reply_is_openai_shaped() {
        let r = reply(
            Endpoint::ChatCompletions,
            br#"{"model":"m","messages":[{"role":"user","content":"hello there"}]}"#,
            "mock-1",
            false,
        );
        let MockBody::Json(b) = r.body else {
            panic!("expected json")
        };
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "mock-1");
        assert!(v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("hello there"));
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn stream_ends_with_done_and_usage_when_asked() {
        let r = reply(
            Endpoint::ChatCompletions,
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
            "mock-1",
            true,
        );
        let MockBody::Events(ev) = r.body else {
            panic!("expected events")
        };
        assert_eq!(ev.last().unwrap().as_ref(), b"data: [DONE]\n\n");
        let usage = &ev[ev.len() - 2];
        assert!(std::str::from_utf8(usage).unwrap().contains("\"usage\""));
    }

    #[test]
    fn embeddings_have_requested_dims() {
        let r = reply(
            Endpoint::Embeddings,
            br#"{"model":"e","input":["a","b"],"dimensions":8}"#,
            "e",
            false,
        );
        let MockBody::Json(b) = r.body else {
            panic!("expected json")
        };
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 8);
    }
}
