//! Serde types for the parts of OpenAI Chat Completions that translation reads and writes
//! (`openai-python` `types/chat/`). Every object keeps the fields it does not model in
//! `extra`, so translation can refuse what it cannot carry instead of dropping it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions` request body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatRequest {
    /// Model id.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Deprecated output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Output cap (reasoning included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Up to 4 stop sequences: a string or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Stream the answer as SSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Function tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"none" | "auto" | "required"` or `{"type":"function","function":{"name":..}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// `text`, `json_object` or `json_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `minimal | low | medium | high` (reasoning models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Number of choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// A single sequence.
    One(String),
    /// Several sequences.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` before `[DONE]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of the conversation (any role).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ChatMessage {
    /// `system | developer | user | assistant | tool`.
    pub role: String,
    /// A string or content parts; `null` on assistant messages with tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// Participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Assistant tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On `tool` messages: the call answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Assistant refusal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<ContentPart>),
}

/// A content part: `text`, `image_url`, `file`, `input_audio` or `refusal`; the fields of the
/// kinds not used stay `None`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ContentPart {
    /// The part's kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// `text` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `image_url` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    /// `file` parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileData>,
    /// `refusal` parts (assistant history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Everything else (e.g. `input_audio`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContentPart {
    /// A `text` part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "text".into(),
            text: Some(text.into()),
            ..Self::default()
        }
    }
}

/// `image_url`: an http(s) URL or a `data:<media type>;base64,<data>` URL.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ImageUrl {
    /// The URL.
    pub url: String,
    /// `auto | low | high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `file`: inline data (a base64 data URL) or an uploaded file id.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FileData {
    /// `data:<media type>;base64,<data>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
    /// Id of an uploaded file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool definition (`{"type":"function","function":{...}}`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Tool {
    /// Always `function` for what translates.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A function the model may call.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionDef {
    /// Name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Structured-outputs strictness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none | auto | required`.
    Mode(String),
    /// A named function.
    Named(NamedToolChoice),
}

/// `{"type":"function","function":{"name":..}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedToolChoice {
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function to call.
    pub function: FunctionName,
}

/// A function named in `tool_choice`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionName {
    /// Name.
    pub name: String,
}

/// An assistant tool call.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolCall {
    /// Call id (`call_...`).
    pub id: String,
    /// `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The call.
    pub function: FunctionCall,
}

/// Function name and JSON-encoded arguments.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionCall {
    /// Name.
    pub name: String,
    /// Arguments as a JSON string.
    pub arguments: String,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponseFormat {
    /// `text | json_object | json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat>,
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JsonSchemaFormat {
    /// Name of the format.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Strict adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A non-streamed `chat.completion` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Model.
    pub model: String,
    /// Choices (translation uses the first).
    pub choices: Vec<Choice>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Choice {
    /// Position.
    pub index: u32,
    /// The assistant message.
    pub message: ResponseMessage,
    /// Log probabilities (always `null` here).
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// `stop | length | tool_calls | content_filter | function_call`.
    pub finish_reason: Option<String>,
}

/// The assistant message of a response.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ResponseMessage {
    /// `assistant`.
    pub role: String,
    /// Text, or `null`.
    pub content: Option<String>,
    /// Refusal text, or `null`.
    #[serde(default)]
    pub refusal: Option<String>,
    /// Tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Reasoning text, as OpenAI-compatible servers (vLLM, DeepSeek) send it; not in OpenAI's own API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

/// `usage` (`CompletionUsage`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Sum of both.
    pub total_tokens: u64,
    /// Breakdown of the prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from the prompt cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// A `chat.completion.chunk` streaming event, borrowing its strings where it can.
#[derive(Debug, Deserialize)]
pub struct ChatChunk<'a> {
    /// Completion id.
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    /// Choice deltas (empty on the usage chunk).
    #[serde(default)]
    pub choices: Vec<ChunkChoice<'a>>,
    /// Usage (last chunk, with `include_usage`).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// A mid-stream error, as OpenAI-compatible servers send it.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// One choice delta of a chunk.
#[derive(Debug, Deserialize)]
pub struct ChunkChoice<'a> {
    /// The delta.
    #[serde(borrow, default)]
    pub delta: ChunkDelta<'a>,
    /// Set on the last chunk of the choice.
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// The delta of a chunk.
#[derive(Debug, Default, Deserialize)]
pub struct ChunkDelta<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
    /// Reasoning text (OpenAI-compatible servers).
    #[serde(borrow, default)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// Refusal text.
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
    /// Tool call fragments.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

/// A fragment of a tool call; `id` and `function.name` come on the first one.
#[derive(Debug, Deserialize)]
pub struct ToolCallDelta<'a> {
    /// Which call (parallel calls have distinct indexes).
    pub index: u32,
    /// Call id.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// Name and arguments fragment.
    #[serde(borrow, default)]
    pub function: Option<FunctionDelta<'a>>,
}

/// `function` of a tool call fragment.
#[derive(Debug, Default, Deserialize)]
pub struct FunctionDelta<'a> {
    /// Name (first fragment).
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// A piece of the arguments JSON.
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
}

/// OpenAI error body: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The `error` object.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Error type, e.g. `invalid_request_error`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The parameter at fault.
    #[serde(default)]
    pub param: Option<Value>,
    /// Machine-readable code.
    #[serde(default)]
    pub code: Option<Value>,
}
