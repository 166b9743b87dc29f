//! Serde types for the parts of Anthropic Messages that translation reads and writes
//! (`anthropic-sdk-python` `types/`). Every object keeps the fields it does not model in
//! `extra`, so translation can refuse what it cannot carry instead of dropping it, and a
//! body read and written again keeps `cache_control` and everything else.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/messages` request body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MessagesRequest {
    /// Model id.
    pub model: String,
    /// Alternating user/assistant turns.
    pub messages: Vec<Message>,
    /// Output cap; required by Anthropic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// System prompt: a string or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// Stream the answer as SSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Tool definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `auto | any | tool | none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// `{"user_id": ..}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Extended thinking: `{"type":"enabled","budget_tokens":N}` or `{"type":"disabled"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Output format (structured outputs) and effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One turn.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Message {
    /// `user | assistant`.
    pub role: String,
    /// A string or content blocks.
    pub content: Content,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Content: a string (shorthand for one text block) or blocks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<Block>),
}

impl Default for Content {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

/// A content block of any kind (`text`, `image`, `document`, `tool_use`, `tool_result`,
/// `thinking`, `redacted_thinking`, ...); the fields of the kinds not used stay `None`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Block {
    /// The block's kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// `text` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `image` and `document` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// `tool_use` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `tool_use` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `tool_use` input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// `tool_result`: the call answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// `tool_result` content: a string or blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// `tool_result`: the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// `thinking` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// `thinking` signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// `document` title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Prompt-cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    /// Everything else (`citations`, `context`, `data`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Block {
    /// A `text` block.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "text".into(),
            text: Some(text.into()),
            ..Self::default()
        }
    }
}

/// Where an image or document comes from: `base64`, `url` or `text`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Source {
    /// `base64 | url | text | file | content`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `image/png`, `application/pdf`, `text/plain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Base64 (or plain text) data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// For `url` sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool definition.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Tool {
    /// Name.
    pub name: String,
    /// `custom` (or absent) for client tools; server tools have other types.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Schema-validated tool use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Prompt-cache breakpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ToolChoice {
    /// `auto | any | tool | none`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `tool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At most one tool use (not on `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// `metadata`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Metadata {
    /// An opaque end-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `thinking`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Thinking {
    /// `enabled | disabled | adaptive`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Tokens thinking may use (`enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `output_config`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OutputConfig {
    /// `{"type":"json_schema","schema":{..}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<OutputFormat>,
    /// `low | medium | high | xhigh | max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `output_config.format`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OutputFormat {
    /// `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The schema.
    pub schema: Value,
}

/// A non-streamed `message` response.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MessageResponse {
    /// `msg_...`.
    pub id: String,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `assistant`.
    pub role: String,
    /// Model.
    pub model: String,
    /// Content blocks.
    pub content: Vec<Block>,
    /// `end_turn | max_tokens | stop_sequence | tool_use | pause_turn | refusal | ...`.
    pub stop_reason: Option<String>,
    /// The stop sequence matched, if any.
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: Usage,
}

/// `usage`: `input_tokens` excludes the cached tokens counted separately.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// Anthropic error body: `{"type":"error","error":{"type","message"}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ErrorEnvelope {
    /// `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: ErrorBody,
}

/// The `error` object.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ErrorBody {
    /// `invalid_request_error | authentication_error | ... | overloaded_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// Any Anthropic stream event's `data`, with the fields of all kinds optional.
#[derive(Debug, Deserialize)]
pub struct StreamEvent<'a> {
    /// `message_start | content_block_start | content_block_delta | ... | error`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// `message_start`: the message with empty content.
    #[serde(default)]
    pub message: Option<StartMessage>,
    /// Block events: the block's index.
    #[serde(default)]
    pub index: Option<u32>,
    /// `content_block_start`: the block.
    #[serde(default)]
    pub content_block: Option<StartBlock>,
    /// `content_block_delta` and `message_delta`: the change.
    #[serde(borrow, default)]
    pub delta: Option<EventDelta<'a>>,
    /// `message_delta`: cumulative usage.
    #[serde(default)]
    pub usage: Option<DeltaUsage>,
    /// `error`: the error.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// The message of `message_start`.
#[derive(Debug, Deserialize)]
pub struct StartMessage {
    /// `msg_...`.
    #[serde(default)]
    pub id: String,
    /// Usage so far (input tokens).
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The block of `content_block_start`.
#[derive(Debug, Deserialize)]
pub struct StartBlock {
    /// `text | tool_use | thinking | redacted_thinking | ...`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `tool_use` id.
    #[serde(default)]
    pub id: Option<String>,
    /// `tool_use` name.
    #[serde(default)]
    pub name: Option<String>,
    /// Initial text (normally empty).
    #[serde(default)]
    pub text: Option<String>,
}

/// `delta` of `content_block_delta` (`text_delta`, `input_json_delta`, `thinking_delta`,
/// `signature_delta`) or of `message_delta` (`stop_reason`).
#[derive(Debug, Default, Deserialize)]
pub struct EventDelta<'a> {
    /// Delta kind (block deltas only).
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    /// `text_delta`.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// `input_json_delta`.
    #[serde(borrow, default)]
    pub partial_json: Option<Cow<'a, str>>,
    /// `thinking_delta`.
    #[serde(borrow, default)]
    pub thinking: Option<Cow<'a, str>>,
    /// `message_delta`.
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// `usage` of `message_delta` (cumulative).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct DeltaUsage {
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens, when reported here.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Cache writes, when reported here.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache reads, when reported here.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}
