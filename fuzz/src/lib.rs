//! What the fuzz targets share: server limits, the wire formats picked by a byte, the check
//! that a stream a client gets is well-formed, and a generator of JSON request shapes for the
//! structure-aware translator target.

use std::time::Duration;

use arbitrary::Arbitrary;
use infergate::http::ServerLimits;
use infergate::wire::WireApi;
use serde_json::{Map, Number, Value};

/// The `[server]` defaults (`config::ServerConfig::default`).
pub fn default_limits() -> ServerLimits {
    ServerLimits::from_config(&infergate::config::ServerConfig::default())
}

/// Limits small enough that a fuzz input reaches them: a 2 KiB head, 16 headers, a 4 KiB body.
pub fn small_limits() -> ServerLimits {
    ServerLimits {
        max_header_bytes: 2048,
        max_headers: 16,
        max_body_bytes: 4096,
        header_timeout: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(1),
        first_request_timeout: Duration::from_secs(1),
        http2: true,
    }
}

/// Every wire format, in a fixed order.
pub const WIRES: [WireApi; 5] = [
    WireApi::Chat,
    WireApi::Messages,
    WireApi::Responses,
    WireApi::Gemini,
    WireApi::Converse,
];

/// The formats a client can speak.
pub const CLIENT_WIRES: [WireApi; 3] = [WireApi::Chat, WireApi::Messages, WireApi::Responses];

/// A wire format picked by `b` (every format, including pairs no route makes: those must be
/// refused, not panicked on).
pub fn wire(b: u8) -> WireApi {
    WIRES[usize::from(b) % WIRES.len()]
}

/// Asserts that `out` is what a client may be sent as a stream: whole SSE events (it ends
/// at an event boundary), each `data` a JSON document or `[DONE]`.
pub fn assert_client_sse(out: &[u8], what: &str) {
    if out.is_empty() {
        return;
    }
    assert!(
        out.ends_with(b"\n\n"),
        "{what}: stream output does not end at an event boundary: {:?}",
        String::from_utf8_lossy(&out[out.len().saturating_sub(200)..])
    );
    let mut scratch = Vec::new();
    let checked = infergate::translate::for_each_event(out, &mut scratch, |_, data| {
        if data != b"[DONE]" {
            if let Err(e) = serde_json::from_slice::<Value>(data) {
                panic!(
                    "{what}: event data is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(data)
                );
            }
        }
        Ok(())
    });
    assert!(checked.is_ok());
}

/// Asserts that `body` is one JSON document.
pub fn assert_json(body: &[u8], what: &str) {
    if let Err(e) = serde_json::from_slice::<Value>(body) {
        panic!(
            "{what}: not JSON ({e}): {:?}",
            String::from_utf8_lossy(&body[..body.len().min(400)])
        );
    }
}

/// Field names of the request and answer formats the gateway translates.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "function",
    "name",
    "description",
    "parameters",
    "tool_choice",
    "tool_calls",
    "id",
    "arguments",
    "tool_call_id",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "stop_sequences",
    "system",
    "image_url",
    "url",
    "detail",
    "source",
    "media_type",
    "data",
    "input",
    "instructions",
    "call_id",
    "output",
    "reasoning",
    "effort",
    "summary",
    "format",
    "response_format",
    "json_schema",
    "schema",
    "strict",
    "user",
    "metadata",
    "n",
    "seed",
    "thinking",
    "budget_tokens",
    "input_schema",
    "tool_use_id",
    "is_error",
    "cache_control",
    "file",
    "file_data",
    "file_id",
    "filename",
    "input_audio",
    "refusal",
    "reasoning_effort",
    "parallel_tool_calls",
    "disable_parallel_tool_use",
    "output_config",
    "verbosity",
    "previous_response_id",
    "store",
    "background",
    "include",
    "truncation",
    "logprobs",
    "presence_penalty",
    "frequency_penalty",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "status",
    "phase",
    "annotations",
    "signature",
    "reasoning_content",
    "index",
    "choices",
    "message",
    "delta",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "inlineData",
    "mimeType",
    "stopReason",
    "toolUse",
    "toolUseId",
    "contentBlockIndex",
    "start",
    "redacted_thinking",
    "citations",
    "title",
];

/// Values that select a branch of a translator (roles, part and block types, choices).
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "model",
    "function",
    "text",
    "image_url",
    "image",
    "document",
    "file",
    "input_audio",
    "auto",
    "none",
    "required",
    "any",
    "json_schema",
    "json_object",
    "low",
    "medium",
    "high",
    "minimal",
    "message",
    "function_call",
    "function_call_output",
    "input_text",
    "output_text",
    "input_image",
    "input_file",
    "refusal",
    "reasoning",
    "reasoning_text",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "base64",
    "url",
    "ephemeral",
    "enabled",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "end_turn",
    "max_tokens",
    "STOP",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:application/pdf;base64,JVBERi0=",
    "https://example.com/a.png",
    "https://example.com/doc.pdf",
    "image/png",
    "wav",
    "mp3",
    "{\"a\":1}",
    "[DONE]",
    "",
];

/// A JSON value whose keys and strings are mostly the words the translators branch on.
#[derive(Debug, Arbitrary)]
pub enum Json {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (`null` when not finite).
    Float(f64),
    /// A string.
    Str(Text),
    /// An array.
    Array(Vec<Json>),
    /// An object.
    Object(Vec<(Key, Json)>),
}

/// An object key: a known field name, or any string.
#[derive(Debug, Arbitrary)]
pub enum Key {
    /// One of [`KEYS`].
    Known(u8),
    /// Anything.
    Raw(String),
}

/// A string value: a known word, or any string.
#[derive(Debug, Arbitrary)]
pub enum Text {
    /// One of [`WORDS`].
    Known(u8),
    /// Anything.
    Raw(String),
}

impl Key {
    fn as_str(&self) -> &str {
        match self {
            Key::Known(i) => KEYS[usize::from(*i) % KEYS.len()],
            Key::Raw(s) => s,
        }
    }
}

impl Text {
    fn as_str(&self) -> &str {
        match self {
            Text::Known(i) => WORDS[usize::from(*i) % WORDS.len()],
            Text::Raw(s) => s,
        }
    }
}

/// Nesting deeper than this becomes `null` (real requests are a few levels deep).
const MAX_DEPTH: usize = 12;

impl Json {
    /// The value as `serde_json` holds it.
    pub fn to_value(&self) -> Value {
        self.value_at(0)
    }

    fn value_at(&self, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::Number((*i).into()),
            Json::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(t) => Value::String(t.as_str().to_owned()),
            Json::Array(items) => {
                Value::Array(items.iter().map(|v| v.value_at(depth + 1)).collect())
            }
            Json::Object(members) => Value::Object(object(members, depth)),
        }
    }
}

fn object(members: &[(Key, Json)], depth: usize) -> Map<String, Value> {
    members
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.value_at(depth + 1)))
        .collect()
}

/// A request body: an object with a `model` and any other members.
#[derive(Debug, Arbitrary)]
pub struct RequestShape {
    /// The `model` value.
    pub model: Text,
    /// The other members.
    pub members: Vec<(Key, Json)>,
}

impl RequestShape {
    /// The body as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut map = object(&self.members, 0);
        map.insert(
            "model".into(),
            Value::String(self.model.as_str().to_owned()),
        );
        serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
    }
}
