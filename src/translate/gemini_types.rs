//! Serde types for the parts of Google's Gemini API (`v1beta` `generateContent` and
//! `streamGenerateContent`) that translation writes and reads: the REST reference's
//! `GenerateContentRequest`, `GenerateContentResponse` and the Google error envelope.
//!
//! Request objects keep what they do not model in `extra` (as the other dialects' types do),
//! so a body read and written again loses nothing. Response objects are read per stream
//! event: they borrow their strings, ignore metadata the gateway does not use (safety
//! ratings, citations, logprobs) and name the part kinds an OpenAI client cannot receive
//! (`executableCode`, `inlineData`, ...) so translation refuses them instead of dropping them.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1beta/models/{model}:generateContent` body (the model is in the URL).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation: `user` and `model` turns.
    pub contents: Vec<Content>,
    /// The system prompt (its `role` is not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Function declarations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// How the model may call the functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Sampling, output limits and formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// Everything else (`safetySettings`, `cachedContent`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A turn: a role (`user`, `model`) and its parts.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Content {
    /// `user` or `model`; absent on `systemInstruction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The parts, in order.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// One part of a turn; exactly one of the data fields is set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Inline bytes (images, PDFs, audio), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// A file by URI (Files API, or a public / signed https URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    /// A call the model made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// The result of a call, sent back in a `user` turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// Whether the part is a thought summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Opaque signature of the model's reasoning, to be sent back with the part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }
}

/// `inlineData`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// IANA media type.
    pub mime_type: String,
    /// Base64 bytes.
    pub data: String,
}

/// `fileData`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// IANA media type (required by the API).
    pub mime_type: String,
    /// The file's URI.
    pub file_uri: String,
}

/// `functionCall`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionCall {
    /// Call id, echoed in the matching `functionResponse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Function name.
    pub name: String,
    /// Arguments (a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
}

/// `functionResponse`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionResponse {
    /// The id of the call answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name.
    pub name: String,
    /// The result (a JSON object).
    pub response: Value,
}

/// A tool: here always a list of function declarations.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_declarations: Option<Vec<FunctionDeclaration>>,
    /// Everything else (`googleSearch`, `codeExecution`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A function the model may call.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    /// Name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Arguments as full JSON Schema (unlike `parameters`, an OpenAPI subset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_json_schema: Option<Value>,
    /// Everything else (`parameters`, `response`, `behavior`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `toolConfig`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// Function calling mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_calling_config: Option<FunctionCallingConfig>,
}

/// `toolConfig.functionCallingConfig`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// `AUTO | ANY | NONE | VALIDATED`.
    pub mode: String,
    /// With `ANY` / `VALIDATED`: the functions the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_function_names: Option<Vec<String>>,
}

/// `generationConfig`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// Output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Up to 5 stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty on tokens already present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Penalty growing with each use of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// `text/plain` (default) or `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    /// JSON Schema the output must follow (with `application/json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<Value>,
    /// Thinking budget and whether thought summaries are returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
    /// Everything else (`candidateCount`, `topK`, `responseSchema`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// Thinking tokens allowed (0 turns thinking off where the model allows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i64>,
    /// Everything else (`includeThoughts`, `thinkingLevel`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `GenerateContentResponse`: a whole answer, or one event of a stream.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse<'a> {
    /// Candidate answers (one unless `candidateCount` asked for more).
    #[serde(borrow, default)]
    pub candidates: Vec<Candidate<'a>>,
    /// Why the prompt was blocked (then there are no candidates).
    #[serde(borrow, default)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    /// Token counts (cumulative in a stream).
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    /// Response id (the same on every event of a stream).
    #[serde(borrow, default)]
    pub response_id: Option<Cow<'a, str>>,
    /// A mid-stream error.
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// One candidate.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate<'a> {
    /// The content (absent when blocked).
    #[serde(borrow, default)]
    pub content: Option<ResponseContent<'a>>,
    /// Set on the last event of the candidate.
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// A candidate's content.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseContent<'a> {
    /// The parts.
    #[serde(borrow, default)]
    pub parts: Vec<ResponsePart<'a>>,
}

/// A part of an answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponsePart<'a> {
    /// Text (a thought summary when `thought` is true).
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// Whether `text` is a thought summary.
    #[serde(default)]
    pub thought: Option<bool>,
    /// A function call.
    #[serde(borrow, default)]
    pub function_call: Option<ResponseFunctionCall<'a>>,
    /// Generated media: no place in a chat completion.
    #[serde(default)]
    pub inline_data: Option<IgnoredAny>,
    /// A file reference: no place in a chat completion.
    #[serde(default)]
    pub file_data: Option<IgnoredAny>,
    /// Code run by the code-execution tool.
    #[serde(default)]
    pub executable_code: Option<IgnoredAny>,
    /// Output of the code-execution tool.
    #[serde(default)]
    pub code_execution_result: Option<IgnoredAny>,
}

/// A function call in an answer.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseFunctionCall<'a> {
    /// Call id, when Gemini sets one.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// Function name.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// Arguments object.
    #[serde(default)]
    pub args: Option<Value>,
}

/// `promptFeedback`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback<'a> {
    /// `SAFETY`, `OTHER`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `IMAGE_SAFETY`.
    #[serde(borrow, default)]
    pub block_reason: Option<Cow<'a, str>>,
}

/// `usageMetadata`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens, cached ones included.
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Prompt tokens read from the context cache.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Answer tokens (thoughts excluded).
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Thinking tokens.
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// Prompt tokens of tool-use results (server-side tools).
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
}

/// Google's error body: `{"error":{"code","message","status"}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The `error` object.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status.
    #[serde(default)]
    pub code: u16,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Canonical status (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, ...).
    #[serde(default)]
    pub status: String,
}
