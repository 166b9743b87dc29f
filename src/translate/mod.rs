//! Reading and translating provider streams and bodies.
//!
//! - `SseScanner`: watches an OpenAI stream for what the record needs while the bytes pass
//!   through untouched; `assemble_chat_completion` / `replay_chat_completion` turn a stream
//!   into a whole completion and back (for the cache).
//! - Dialect translation between OpenAI Chat Completions and Google Gemini, Chat requests out
//!   and Gemini answers, errors and streams back (`gemini`, `gemini_stream`).
//! - `Bridge`: every client format to every provider format through the Chat Completions hub.
//! - OpenAI Responses ⇄ OpenAI Chat Completions (`responses`, `responses_stream`): the
//!   client-facing Responses API through the Chat Completions hub.
//! - Dialect translation between OpenAI Chat Completions and Anthropic Messages, both ways:
//!   requests ([`openai_to_anthropic_request`], [`anthropic_to_openai_request`]), whole
//!   responses and error bodies (`response`), and streams event by event (`stream`). All are
//!   pure functions or small state machines over bytes; nothing here does I/O.
//!
//! What maps how (OpenAI Chat Completions ⇄ Anthropic Messages):
//!
//! | OpenAI | Anthropic | Notes |
//! |---|---|---|
//! | leading `system` / `developer` messages | `system` (string, or text blocks) | a system message after the first turn is refused |
//! | `user` / `assistant` messages | turns (same-role neighbours merged) | `name` refused |
//! | `text` part | `text` block | |
//! | `image_url` http(s) / `data:…;base64,` | `image` source `url` / `base64` | `detail` other than `auto` refused |
//! | `file.file_data` (base64 data URL) + `filename` | `document` base64 + `title` | `file_id` refused; towards OpenAI only base64 PDF documents |
//! | `tools[].function` {name, description, parameters, strict} | `tools[]` {name, description, input_schema, strict} | server tools and non-function tools refused |
//! | `tool_choice` auto / none / required / {function} | auto / none / any / {tool, name} | |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` | |
//! | assistant `tool_calls` (arguments string) | `tool_use` blocks (input object) | |
//! | `tool` messages | `tool_result` blocks in one user turn | `is_error: true` → content prefixed `Error: ` |
//! | `stop` | `stop_sequences` | |
//! | `max_completion_tokens` or `max_tokens` | `max_tokens` | default [`DEFAULT_MAX_TOKENS`] (4096) when absent; towards OpenAI `max_completion_tokens` |
//! | `temperature`, `top_p` | same | temperature > 1 refused; `top_k` refused |
//! | `response_format` json_schema | `output_config.format` json_schema | `json_object` refused (no schema) |
//! | `reasoning_effort` low/medium/high | `output_config.effort` | `thinking.budget_tokens` → effort (<4096 low, <16384 medium, else high) |
//! | `reasoning_content` (compatible servers) | `thinking` blocks / `thinking_delta` | thinking history dropped towards OpenAI |
//! | (none) | `cache_control` | kept Anthropic→Anthropic; dropped towards OpenAI |
//! | `user` | `metadata.user_id` | |
//! | `usage.prompt_tokens` (includes cached) | `input_tokens` + `cache_read_input_tokens` + `cache_creation_input_tokens` | `cached_tokens` ⇄ `cache_read_input_tokens` |
//! | `finish_reason` stop / length / tool_calls / content_filter | `end_turn`, `stop_sequence` / `max_tokens` / `tool_use` / `refusal` | |
//!
//! Any other field, with a value other than `null` or `false`, is refused with
//! [`TranslateError::Unsupported`] naming the field and the target.
//!
//! What maps how (OpenAI Chat Completions → Google Gemini `generateContent`, and back for
//! answers: [`chat_to_gemini_request`], [`gemini_to_chat_response`], [`GeminiToChatStream`],
//! [`gemini_error_to_openai`]):
//!
//! | OpenAI | Gemini | Notes |
//! |---|---|---|
//! | `model`, `stream` | the URL (`models/{model}:generateContent` / `:streamGenerateContent?alt=sse`) | not in the body |
//! | leading `system` / `developer` messages | `systemInstruction.parts` | a system message after the first turn is refused |
//! | `user` / `assistant` messages | `contents` with role `user` / `model` (same-role neighbours merged) | `name` refused; empty text parts and empty turns are not sent |
//! | `image_url` `data:…;base64,` / http(s) | `inlineData` {mimeType, data} / `fileData` {mimeType, fileUri} | http(s): the media type comes from the path's extension (png, jpg, jpeg, webp, heic, heif, gif), else refused; Gemini fetches the URL (2.5 and later); `detail` other than `auto` refused |
//! | `file.file_data` (base64 data URL), `input_audio` wav / mp3 | `inlineData` | `file_id` refused; `filename` not sent (no such field) |
//! | `tools[].function` {name, description, parameters} | `tools[{functionDeclarations}]` {name, description, `parametersJsonSchema`} | full JSON Schema, not the OpenAPI-subset `parameters` |
//! | `tool_choice` auto / none / required / {function} | `functionCallingConfig.mode` AUTO / NONE / ANY / ANY + `allowedFunctionNames` | `strict: true` on a tool makes auto VALIDATED |
//! | `parallel_tool_calls: false` | (none) | refused |
//! | assistant `tool_calls` | `functionCall` parts {id, name, args} | the first carries `thoughtSignature: skip_thought_signature_validator` (Gemini 3 requires a signature; OpenAI clients cannot keep Gemini's) |
//! | `tool` messages | `functionResponse` parts {id, name, response} in a `user` turn | name from the assistant call with that id; content that is a JSON object is the response, other text `{"result": text}` |
//! | `max_completion_tokens` or `max_tokens`, `temperature`, `top_p`, `stop`, `seed`, `presence_penalty`, `frequency_penalty` | `generationConfig` `maxOutputTokens`, `temperature`, `topP`, `stopSequences`, `seed`, `presencePenalty`, `frequencyPenalty` | |
//! | `n` | `candidateCount` | only 1; more refused |
//! | `response_format` json_object / json_schema | `responseMimeType: application/json` (+ `responseJsonSchema`) | schema `name` not sent |
//! | `reasoning_effort` none / minimal / low / medium / high | `thinkingConfig.thinkingBudget` 0 / 1024 / 1024 / 8192 / 24576 | other values refused |
//! | `user`, `logprobs`, `top_logprobs`, `logit_bias`, … | (none) | refused |
//! | `content`, `reasoning_content`, `tool_calls` (id = Gemini's or `call_…`) | text parts, `thought: true` parts, `functionCall` parts | `thoughtSignature`s are not returned; media and code-execution parts refused |
//! | `finish_reason` stop / tool_calls / length / content_filter | `STOP` / `STOP` with calls / `MAX_TOKENS` / `SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY`, blocked prompt | failed generations (`MALFORMED_FUNCTION_CALL`, `OTHER`, …) give `stop` |
//! | `usage` prompt / completion / cached / reasoning tokens | `promptTokenCount` (+ `toolUsePromptTokenCount`) / `candidatesTokenCount` + `thoughtsTokenCount` / `cachedContentTokenCount` / `thoughtsTokenCount` | |
//! | error `type` invalid_request / authentication / permission / not_found / rate_limit / server | HTTP 400 / 401 / 403 / 404 / 429 / 5xx; `code` = Google's `status` in lower case | |
//!
//! What maps how (OpenAI Chat Completions → AWS Bedrock Converse, [`chat_to_converse_request`];
//! back: [`converse_to_chat_response`], [`ConverseToChatStream`], [`bedrock_error_to_openai`]).
//! The model id goes in the URL (`/model/{id}/converse[-stream]`), the stream flag picks the URL;
//! the stream is AWS event-stream framing ([`eventstream`]), requests are SigV4-signed
//! (`upstream::sigv4`).
//! | OpenAI | Bedrock Converse | Notes |
//! | leading `system` / `developer` messages | `system: [{text}]` | a system message after the first turn is refused |
//! | `user` / `assistant` messages | `messages[{role, content:[…]}]` (same-role neighbours merged) | must start with `user`: a leading assistant message is refused; `name` refused; empty text parts skipped (Converse refuses blank text) |
//! | `text` part | `{text}` | |
//! | `image_url` `data:image/{png,jpeg,gif,webp};base64,…` | `{image:{format, source:{bytes}}}` | http(s) URLs refused (Converse takes bytes or S3 only); `detail` other than `auto` refused |
//! | `file.file_data` base64 (pdf, csv, doc(x), xls(x), html, txt, md) + `filename` | `{document:{format, name, source:{bytes}}}` | `name`: extension cut, characters Converse forbids → `-`, default `document`; `file_id` refused |
//! | `tools[].function` {name, description, parameters, strict} | `toolConfig.tools[{toolSpec:{name, description, inputSchema:{json}, strict}}]` | non-function tools refused |
//! | `tool_choice` auto / required / {function} | `toolChoice` `{auto:{}}` / `{any:{}}` / `{tool:{name}}` | `none`: `toolConfig` left out; refused when the history has tool calls (Converse then requires `toolConfig`, which cannot forbid calls) |
//! | `parallel_tool_calls: false` | — | refused (Converse has no such switch) |
//! | assistant `tool_calls` | `{toolUse:{toolUseId, name, input}}` | tool calls in the history without `tools` refused |
//! | `tool` messages | `{toolResult:{toolUseId, content:[{text}]}}` in a user turn | the OpenAI content is a string: it stays `{text}` (no `status`: OpenAI has no error flag) |
//! | `max_completion_tokens` / `max_tokens`, `temperature`, `top_p`, `stop` | `inferenceConfig {maxTokens, temperature, topP, stopSequences}` | temperature > 1 refused; omitted when none set |
//! | `response_format` json_schema | `outputConfig.textFormat {type: json_schema, structure:{jsonSchema:{schema (string), name, description}}}` | `json_object` refused |
//! | `reasoning_effort` | — | refused: reasoning is model-specific (`additionalModelRequestFields`) |
//! | `user` | `requestMetadata.user` | |
//! | `n` ≠ 1 | — | refused |
//! | response `content` / `tool_calls` / `reasoning_content` | `text` / `toolUse` / `reasoningContent.reasoningText` | redacted reasoning dropped; other blocks refused |
//! | `finish_reason` stop / length / tool_calls / content_filter | `end_turn`, `stop_sequence` / `max_tokens` / `tool_use` / `guardrail_intervened`, `content_filtered` | |
//! | `usage.prompt_tokens` (includes cached), `cached_tokens` | `inputTokens` + `cacheReadInputTokens` + `cacheWriteInputTokens`, `cacheReadInputTokens` | |
//!
//! What maps how (OpenAI Responses → OpenAI Chat Completions requests, and back for answers:
//! [`responses_to_chat_request`], [`chat_to_responses_response`], [`ChatToResponsesStream`]):
//!
//! | Responses | Chat Completions | Notes |
//! |---|---|---|
//! | `instructions` | leading `system` message | |
//! | `input` string | one `user` message | |
//! | `message` items (with or without `type`), roles user / assistant / system / developer | messages of that role | item `id`, `status`, `phase` ignored (output metadata) |
//! | `input_text` / `output_text` parts | `text` parts / assistant `content` | `annotations`, `logprobs` of history ignored |
//! | `input_image` `image_url` (http(s) or data URL), `detail` | `image_url` part | `file_id` refused; `detail` other than auto/low/high refused |
//! | `input_file` `file_data` + `filename` | `file` part | `file_id`, `file_url` refused |
//! | assistant `refusal` part | assistant `refusal` | |
//! | `function_call` items | assistant `tool_calls` | consecutive calls (and the text before them) are one assistant message |
//! | `function_call_output` items | `tool` messages | output parts: `input_text` only |
//! | `reasoning` items | (dropped) | the model's own reasoning; Chat takes none |
//! | `tools[]` flat `{type:function,name,description,parameters,strict}` | `tools[].function` | built-in and MCP tools refused |
//! | `tool_choice` auto / none / required / `{type:function,name}` | same / `{type:function,function:{name}}` | other choice types refused |
//! | `parallel_tool_calls`, `temperature`, `top_p`, `user`, `safety_identifier`, `prompt_cache_key`, `service_tier` | same | |
//! | `text.format` text / json_object / json_schema (flat) | `response_format` (json_schema nested) | `text.verbosity` → `verbosity` |
//! | `max_output_tokens` | `max_completion_tokens` | |
//! | `reasoning.effort` | `reasoning_effort` | `reasoning.summary` refused |
//! | `stream` | `stream` + `stream_options.include_usage` | |
//! | `metadata` | (not sent) | echoed in the response ([`ResponsesEcho`]) |
//! | `previous_response_id`, `conversation`, `store: true`, `background: true`, `include`, `prompt`, `truncation: auto` | refused | no state is kept |
//! | `reasoning_content` | `reasoning` item (`reasoning_text` part) | |
//! | `content` / `refusal` | `message` item, `output_text` / `refusal` parts | |
//! | `tool_calls[]` | `function_call` items (`fc_…`, `call_id` = chat id) | one per call, parallel calls in `index` order |
//! | `finish_reason` stop, tool_calls / length / content_filter | `completed` / `incomplete` (`max_output_tokens` / `content_filter`) | |
//! | `usage` prompt / completion / cached / reasoning tokens | `input_tokens` / `output_tokens` / `input_tokens_details.cached_tokens` / `output_tokens_details.reasoning_tokens` | |
//!
//! Errors: the Responses API uses the same `{"error":{"message","type","param","code"}}` body
//! and statuses as Chat Completions, so upstream errors pass through unchanged.

pub mod anthropic_types;
mod bedrock;
mod bedrock_stream;
pub mod bedrock_types;
mod bridge;
mod error;
pub mod eventstream;
mod gemini;
mod gemini_stream;
pub mod gemini_types;
mod openai_stream;
pub mod openai_types;
mod outcome;
mod replay;
mod request;
mod response;
mod responses;
mod responses_stream;
pub mod responses_types;
mod sse;
mod stream;
mod write;

pub use bedrock::{bedrock_error_to_openai, chat_to_converse_request, converse_to_chat_response};
pub use bedrock_stream::ConverseToChatStream;
pub use bridge::{Bridge, StreamTranslator, Translated};
pub use error::TranslateError;
pub use eventstream::{decode_frame, encode_frame, EventFrame, EventStreamError};
pub use gemini::{chat_to_gemini_request, gemini_error_to_openai, gemini_to_chat_response};
pub use gemini_stream::GeminiToChatStream;
pub use openai_stream::{assemble_chat_completion, replay_chat_completion};
pub use replay::{replay_as_stream, replay_message, replay_response};
pub use request::{
    anthropic_to_openai_request, openai_include_usage, openai_to_anthropic_request,
    DEFAULT_MAX_TOKENS,
};
pub use response::{
    anthropic_error_to_openai, anthropic_to_openai_response, openai_error_to_anthropic,
    openai_to_anthropic_response,
};
pub use responses::{
    chat_to_responses_response, chat_to_responses_response_with_echo, responses_to_chat_request,
    ResponsesEcho,
};
pub use responses_stream::ChatToResponsesStream;
pub use sse::{
    for_each_event, stream_error_event, write_error_event, write_event, write_event_head,
    SseScanner, StreamErrorEvent,
};
pub use stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
