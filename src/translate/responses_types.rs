//! Serde types for the parts of the OpenAI Responses API that translation reads and writes
//! (`openai-python` `types/responses/`). Request objects keep the fields they do not model in
//! `extra`, so translation can refuse what it cannot carry instead of dropping it; output
//! objects serialize exactly the fields OpenAI documents.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::openai_types as oa;

/// `POST /v1/responses` request body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ResponsesRequest {
    /// Model id.
    pub model: String,
    /// A string (one user message) or a list of input items.
    #[serde(default)]
    pub input: Option<Input>,
    /// A system message placed before the input.
    #[serde(default)]
    pub instructions: Option<String>,
    /// Tools (function tools are flat: `{"type":"function","name",..}`).
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// `"none" | "auto" | "required"` or an object naming a tool.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// Whether the model may call several tools in one turn.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Output format and verbosity.
    #[serde(default)]
    pub text: Option<TextConfig>,
    /// Output cap (reasoning included).
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// Sampling temperature, 0 to 2.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// End-user id (deprecated by OpenAI in favour of `safety_identifier`).
    #[serde(default)]
    pub user: Option<String>,
    /// Stable end-user id for abuse detection.
    #[serde(default)]
    pub safety_identifier: Option<String>,
    /// Prompt-cache bucketing key.
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
    /// Processing tier.
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Up to 16 string pairs, echoed in the response.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Reasoning options (`effort`, `summary`).
    #[serde(default)]
    pub reasoning: Option<ReasoningConfig>,
    /// Stream the answer as SSE.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options (`include_obfuscation`).
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Store the response for later retrieval (OpenAI's default is `true`).
    #[serde(default)]
    pub store: Option<bool>,
    /// `auto | disabled`.
    #[serde(default)]
    pub truncation: Option<String>,
    /// Extra output to include (`reasoning.encrypted_content`, ...).
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Cap on built-in tool calls.
    #[serde(default)]
    pub max_tool_calls: Option<u64>,
    /// Continue a stored response.
    #[serde(default)]
    pub previous_response_id: Option<String>,
    /// Continue a stored conversation.
    #[serde(default)]
    pub conversation: Option<Value>,
    /// Run asynchronously.
    #[serde(default)]
    pub background: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `input`: a string or a list of items.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Input {
    /// One user message.
    Text(String),
    /// Messages, function calls, function call outputs, reasoning items, ...
    Items(Vec<InputItem>),
}

/// One input item. `type` is `message` (or absent, for `{"role","content"}`), `function_call`,
/// `function_call_output`, `reasoning`, ...; the fields of the kinds not used stay `None`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct InputItem {
    /// The item's kind; absent on "easy" messages.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Messages: `user | assistant | system | developer`.
    #[serde(default)]
    pub role: Option<String>,
    /// Messages: a string or parts; reasoning items: `reasoning_text` parts.
    #[serde(default)]
    pub content: Option<Content>,
    /// Item id (`msg_…`, `fc_…`, `rs_…`) when an output item is sent back.
    #[serde(default)]
    pub id: Option<String>,
    /// `in_progress | completed | incomplete` when an output item is sent back.
    #[serde(default)]
    pub status: Option<String>,
    /// Assistant messages: `commentary | final_answer`.
    #[serde(default)]
    pub phase: Option<String>,
    /// Function calls and their outputs: the call id.
    #[serde(default)]
    pub call_id: Option<String>,
    /// Function calls: the function name.
    #[serde(default)]
    pub name: Option<String>,
    /// Function calls: the arguments JSON.
    #[serde(default)]
    pub arguments: Option<String>,
    /// Function call outputs: a string or parts.
    #[serde(default)]
    pub output: Option<Content>,
    /// Reasoning items: summary parts.
    #[serde(default)]
    pub summary: Option<Value>,
    /// Reasoning items: opaque reasoning state.
    #[serde(default)]
    pub encrypted_content: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message content or function output: a string or parts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<InputPart>),
}

/// A content part: `input_text`, `input_image`, `input_file`, `output_text`, `refusal`,
/// `reasoning_text`, ...; the fields of the kinds not used stay `None`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct InputPart {
    /// The part's kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Text parts.
    #[serde(default)]
    pub text: Option<String>,
    /// `input_image`: an http(s) or data URL.
    #[serde(default)]
    pub image_url: Option<String>,
    /// `input_image` / `input_file`: an uploaded file.
    #[serde(default)]
    pub file_id: Option<String>,
    /// `input_image`: `auto | low | high`.
    #[serde(default)]
    pub detail: Option<String>,
    /// `input_file`: the file as a data URL.
    #[serde(default)]
    pub file_data: Option<String>,
    /// `input_file`: a URL to fetch.
    #[serde(default)]
    pub file_url: Option<String>,
    /// `input_file`: the file name.
    #[serde(default)]
    pub filename: Option<String>,
    /// `refusal` parts.
    #[serde(default)]
    pub refusal: Option<String>,
    /// `output_text` history: citations (output metadata).
    #[serde(default)]
    pub annotations: Option<Value>,
    /// `output_text` history: log probabilities (output metadata).
    #[serde(default)]
    pub logprobs: Option<Value>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool definition; function tools are flat.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Tool {
    /// `function`, `web_search`, `file_search`, `mcp`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Function name.
    #[serde(default)]
    pub name: Option<String>,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Structured-outputs strictness.
    #[serde(default)]
    pub strict: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text`: output format and verbosity.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TextConfig {
    /// `text`, `json_object` or `json_schema` (flat).
    #[serde(default)]
    pub format: Option<TextFormat>,
    /// `low | medium | high`.
    #[serde(default)]
    pub verbosity: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `text.format`; for `json_schema` the schema fields sit next to `type`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct TextFormat {
    /// `text | json_object | json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Name of the format.
    #[serde(default)]
    pub name: Option<String>,
    /// The schema.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Strict adherence.
    #[serde(default)]
    pub strict: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `reasoning`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReasoningConfig {
    /// `none | minimal | low | medium | high | xhigh`.
    #[serde(default)]
    pub effort: Option<String>,
    /// `auto | concise | detailed`: asks for reasoning summaries.
    #[serde(default)]
    pub summary: Option<String>,
    /// Deprecated spelling of `summary`.
    #[serde(default)]
    pub generate_summary: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    /// Pad delta events with random characters (a side-channel mitigation).
    #[serde(default)]
    pub include_obfuscation: Option<bool>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `response` object, as `POST /v1/responses` returns it and the stream's
/// `response.created` / `response.completed` / ... events carry it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseObject {
    /// `resp_…`.
    pub id: String,
    /// Always `response`.
    pub object: String,
    /// Unix seconds.
    pub created_at: u64,
    /// `in_progress | completed | incomplete | failed`.
    pub status: String,
    /// Why the response failed.
    pub error: Option<ResponseError>,
    /// Why the response is incomplete.
    pub incomplete_details: Option<IncompleteDetails>,
    /// Echo of the request's `instructions`.
    pub instructions: Option<String>,
    /// Echo of the request's `max_output_tokens`.
    pub max_output_tokens: Option<u64>,
    /// The model the client asked for.
    pub model: String,
    /// Output items, in order.
    pub output: Vec<OutputItem>,
    /// Echo of `parallel_tool_calls` (default `true`).
    pub parallel_tool_calls: bool,
    /// Always `null` (no stored state).
    pub previous_response_id: Option<String>,
    /// Echo of `reasoning`.
    pub reasoning: Value,
    /// Always `false`: nothing is stored.
    pub store: bool,
    /// Echo of `temperature`.
    pub temperature: Option<f64>,
    /// Echo of `text` (default `{"format":{"type":"text"}}`).
    pub text: Value,
    /// Echo of `tool_choice` (default `auto`).
    pub tool_choice: Value,
    /// Echo of `tools`.
    pub tools: Vec<Value>,
    /// Echo of `top_p`.
    pub top_p: Option<f64>,
    /// Always `disabled`.
    pub truncation: String,
    /// Token counts, once known.
    pub usage: Option<ResponsesUsage>,
    /// Echo of `user`.
    pub user: Option<String>,
    /// Echo of `metadata` (default `{}`).
    pub metadata: Value,
    /// Always `false`.
    pub background: bool,
}

/// `response.error`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResponseError {
    /// `server_error`, `rate_limit_exceeded`, ...
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// `response.incomplete_details`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IncompleteDetails {
    /// `max_output_tokens | content_filter`.
    pub reason: String,
}

/// An output item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// Reasoning text (`reasoning_content` of OpenAI-compatible servers).
    Reasoning {
        /// `rs_…`.
        id: String,
        /// Always empty: chat gives no summaries.
        summary: Vec<Value>,
        /// `reasoning_text` parts.
        content: Vec<ReasoningText>,
        /// `in_progress | completed | incomplete`.
        status: String,
    },
    /// The assistant's message.
    Message {
        /// `msg_…`.
        id: String,
        /// `in_progress | completed | incomplete`.
        status: String,
        /// Always `assistant`.
        role: String,
        /// `output_text` and `refusal` parts.
        content: Vec<OutputContent>,
    },
    /// A function call.
    FunctionCall {
        /// `fc_…`.
        id: String,
        /// The call id to answer with `function_call_output`.
        call_id: String,
        /// Function name.
        name: String,
        /// Arguments JSON.
        arguments: String,
        /// `in_progress | completed | incomplete`.
        status: String,
    },
}

/// A `reasoning_text` part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReasoningText {
    /// Always `reasoning_text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The reasoning.
    pub text: String,
}

/// A part of an output message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputContent {
    /// Text, with (always empty) annotations and logprobs.
    OutputText {
        /// The text.
        text: String,
        /// Citations (none from Chat Completions).
        annotations: Vec<Value>,
        /// Log probabilities (not requested).
        logprobs: Vec<Value>,
    },
    /// A refusal.
    Refusal {
        /// The refusal text.
        refusal: String,
    },
}

/// `usage` of a response.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResponsesUsage {
    /// All input tokens, cached ones included.
    pub input_tokens: u64,
    /// Breakdown of the input tokens.
    pub input_tokens_details: InputTokensDetails,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Breakdown of the output tokens.
    pub output_tokens_details: OutputTokensDetails,
    /// Sum of both.
    pub total_tokens: u64,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputTokensDetails {
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache (Chat Completions reports none: always 0).
    pub cache_write_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputTokensDetails {
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
}

/// Chat `usage` with `completion_tokens_details`, which [`oa::Usage`] does not model.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ChatUsage {
    /// Prompt tokens, cached ones included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Breakdown of the prompt tokens.
    #[serde(default)]
    pub prompt_tokens_details: Option<oa::PromptTokensDetails>,
    /// Breakdown of the generated tokens.
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `usage.completion_tokens_details` (only the field translation reads).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CompletionTokensDetails {
    /// Reasoning tokens.
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl ChatUsage {
    /// As Responses `usage`.
    pub fn to_responses(self) -> ResponsesUsage {
        ResponsesUsage {
            input_tokens: self.prompt_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: self
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
                cache_write_tokens: 0,
            },
            output_tokens: self.completion_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: self
                    .completion_tokens_details
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0),
            },
            total_tokens: self.prompt_tokens + self.completion_tokens,
        }
    }

    /// As the dialect-neutral counts.
    pub fn to_token_usage(self) -> crate::wire::Usage {
        crate::wire::Usage::from_openai(&oa::Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.prompt_tokens + self.completion_tokens,
            prompt_tokens_details: self.prompt_tokens_details,
        })
    }
}

/// A non-streamed `chat.completion`, read leniently (only what translation needs).
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionIn {
    /// `chatcmpl-...`.
    #[serde(default)]
    pub id: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// Choices (translation uses the first).
    pub choices: Vec<oa::Choice>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<ChatUsage>,
}

/// A `chat.completion.chunk`, borrowing its strings where it can.
#[derive(Debug, Deserialize)]
pub struct ChatChunkIn<'a> {
    /// Completion id.
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    /// Unix seconds.
    #[serde(default)]
    pub created: Option<u64>,
    /// Choice deltas (empty on the usage chunk).
    #[serde(default)]
    pub choices: Vec<oa::ChunkChoice<'a>>,
    /// Usage (last chunk, with `include_usage`).
    #[serde(default)]
    pub usage: Option<ChatUsage>,
    /// A mid-stream error, as OpenAI-compatible servers send it.
    #[serde(default)]
    pub error: Option<oa::ErrorBody>,
}
