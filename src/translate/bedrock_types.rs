//! Serde types for the parts of the AWS Bedrock Runtime Converse API that translation reads
//! and writes (API reference `API_runtime_Converse`, `API_runtime_ConverseStream` and their
//! data types). Unions (`ContentBlock`, `ToolChoice`, ...) are JSON objects with exactly one
//! member set; they are modelled as structs of options, and every object read from Bedrock
//! keeps the members it does not model in `extra`, so translation can refuse what it cannot
//! carry instead of dropping it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /model/{modelId}/converse` (and `converse-stream`) request body.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    /// The conversation: alternating `user` / `assistant` turns starting with `user`.
    pub messages: Vec<Message>,
    /// System prompt blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Vec<SystemBlock>>,
    /// Parameters common to all models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    /// Tools and tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Structured output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Key-value pairs recorded with the invocation log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<Map<String, Value>>,
    /// Everything else (`guardrailConfig`, `additionalModelRequestFields`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One turn.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Message {
    /// `user | assistant`.
    pub role: String,
    /// Content blocks.
    pub content: Vec<ContentBlock>,
}

/// `SystemContentBlock` (a union; only `text` is written).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SystemBlock {
    /// System text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Everything else (`guardContent`, `cachePoint`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ContentBlock`: a union, exactly one member set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlock {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An image (user turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBlock>,
    /// A document (user turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentBlock>,
    /// A tool call (assistant turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseBlock>,
    /// A tool's answer (user turns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResultBlock>,
    /// Model reasoning (responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningContent>,
    /// Everything else (`video`, `guardContent`, `cachePoint`, `citationsContent`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContentBlock {
    /// A text block.
    pub fn text(s: impl Into<String>) -> Self {
        Self {
            text: Some(s.into()),
            ..Self::default()
        }
    }
}

/// `ImageBlock`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ImageBlock {
    /// `png | jpeg | gif | webp`.
    pub format: String,
    /// Where the bytes are.
    pub source: BytesSource,
}

/// `DocumentBlock`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DocumentBlock {
    /// `pdf | csv | doc | docx | xls | xlsx | html | txt | md`.
    pub format: String,
    /// A name for the document: alphanumerics, single whitespace, `-`, `(`, `)`, `[`, `]`; 1-200 chars.
    pub name: String,
    /// Where the bytes are.
    pub source: BytesSource,
}

/// `ImageSource` / `DocumentSource` with bytes (base64 in JSON).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BytesSource {
    /// Base64 data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    /// Everything else (`s3Location`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ToolUseBlock`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    /// Call id (`tooluse_…`).
    pub tool_use_id: String,
    /// Tool name.
    pub name: String,
    /// Arguments (a JSON document).
    pub input: Value,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ToolResultBlock`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    /// The call answered.
    pub tool_use_id: String,
    /// `[{text} | {json} | {image} | {document}]`.
    pub content: Vec<ContentBlock>,
    /// `success | error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `ReasoningContentBlock`: `reasoningText {text, signature}` or `redactedContent` (bytes).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContent {
    /// Readable reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_text: Option<ReasoningText>,
    /// Encrypted reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_content: Option<String>,
}

/// `ReasoningTextBlock`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ReasoningText {
    /// The reasoning.
    pub text: String,
    /// Signature to send back with the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// `InferenceConfiguration`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    /// Output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Sampling temperature, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
}

/// `ToolConfiguration`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// `[{toolSpec}]`.
    pub tools: Vec<ToolEntry>,
    /// `{auto:{}} | {any:{}} | {tool:{name}}`; absent means auto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

/// `Tool` (a union; only `toolSpec` is written).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolEntry {
    /// A function tool.
    pub tool_spec: ToolSpec,
}

/// `ToolSpecification`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `{json: <JSON Schema>}`.
    pub input_schema: InputSchema,
    /// Strict schema adherence (structured outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `ToolInputSchema` (a union; only `json`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct InputSchema {
    /// The JSON Schema.
    pub json: Value,
}

/// `OutputConfig`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig {
    /// Structured text output.
    pub text_format: OutputFormat,
}

/// `OutputFormat`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OutputFormat {
    /// `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `{jsonSchema: {...}}`.
    pub structure: OutputFormatStructure,
}

/// `OutputFormatStructure` (a union; only `jsonSchema`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputFormatStructure {
    /// The schema definition.
    pub json_schema: JsonSchemaDefinition,
}

/// `JsonSchemaDefinition`: the schema travels as a JSON string.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct JsonSchemaDefinition {
    /// The JSON Schema, serialized.
    pub schema: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `converse` response body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    /// `{message}`.
    pub output: ConverseOutput,
    /// `end_turn | tool_use | max_tokens | stop_sequence | guardrail_intervened | content_filtered | ...`.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// `ConverseOutput` (a union; only `message`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConverseOutput {
    /// The assistant turn.
    #[serde(default)]
    pub message: Option<Message>,
}

/// `Usage`. `inputTokens` excludes cache reads and writes.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Sum of all.
    #[serde(default)]
    pub total_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
}

/// Bedrock error body: `{"message": ...}` (some AWS front ends write `Message`), with the
/// type in `x-amzn-ErrorType` or `__type`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
    /// `ValidationException`, or `namespace#ValidationException`.
    #[serde(default, rename = "__type")]
    pub kind: Option<String>,
}

/// The payload of a `converse-stream` event; which members are set depends on the event type
/// (`:event-type` header). Strings are borrowed where the JSON has no escapes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent<'a> {
    /// `messageStart`: `assistant`.
    #[serde(borrow, default)]
    pub role: Option<Cow<'a, str>>,
    /// Block events.
    #[serde(default)]
    pub content_block_index: Option<u32>,
    /// `contentBlockStart`: `{toolUse: {toolUseId, name}}`.
    #[serde(borrow, default)]
    pub start: Option<BlockStart<'a>>,
    /// `contentBlockDelta`.
    #[serde(borrow, default)]
    pub delta: Option<BlockDelta<'a>>,
    /// `messageStop`.
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
    /// `metadata`.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Exception messages.
    #[serde(borrow, default, alias = "Message")]
    pub message: Option<Cow<'a, str>>,
}

/// `ContentBlockStart`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart<'a> {
    /// A tool call begins.
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseStart<'a>>,
}

/// `ToolUseBlockStart`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart<'a> {
    /// Call id.
    #[serde(borrow, default)]
    pub tool_use_id: Cow<'a, str>,
    /// Tool name.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
}

/// `ContentBlockDelta`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// `{input: "<JSON fragment>"}`.
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseDelta<'a>>,
    /// `{text} | {signature} | {redactedContent}`.
    #[serde(borrow, default)]
    pub reasoning_content: Option<ReasoningDelta<'a>>,
}

/// `ToolUseBlockDelta`.
#[derive(Debug, Default, Deserialize)]
pub struct ToolUseDelta<'a> {
    /// A piece of the arguments JSON.
    #[serde(borrow, default)]
    pub input: Cow<'a, str>,
}

/// `ReasoningContentBlockDelta`.
#[derive(Debug, Default, Deserialize)]
pub struct ReasoningDelta<'a> {
    /// Reasoning text.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}
