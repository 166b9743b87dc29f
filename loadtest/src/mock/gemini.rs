//! Google's Gemini API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (SSE with `alt=sse`, else a JSON array), text and function calls.
//!
//! As the real API does, it refuses field names it does not know (`Invalid JSON payload
//! received. Unknown name ...`), answers JSON text when `responseMimeType` is
//! `application/json` (an object built from `responseJsonSchema` / `responseSchema` when
//! given), and for `gemini-3*` models signs the first function call of an answer with a
//! `thoughtSignature` and refuses a request whose current turn replays a function call
//! without one.

use super::peer::Peer;
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::RequestKnobs;
use super::deliver::{fault_before_answer, send_events, send_json, EventStream};
use super::dialect::Dialect;
use super::fault::Fault;
use super::handler::ServerContext;
use super::request::Request;
use super::respond::{random_id, sleep_if_any, sse_event, write_json, Next};
use super::stats::Endpoint;
use super::text;
use super::tools::{self, PlannedCall, ToolSpec, ToolTrigger};

/// The message Google answers to a call without an API key.
const NO_KEY: &str = "Method doesn't allow unregistered callers (callers without established \
identity). Please use API Key or other form of API consumer identity to call this API.";

/// `GenerateContentRequest` (the fields the mock reads; snake_case accepted too).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    contents: Vec<Content>,
    #[serde(default, alias = "system_instruction")]
    system_instruction: Option<Content>,
    #[serde(default, alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default, alias = "tool_config")]
    tool_config: Option<Value>,
}

/// A `Content`: a role (`user`, `model`) and its parts, kept as JSON.
#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Value>,
}

/// `generationConfig` (the output limit and format matter to the mock).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(default, alias = "max_output_tokens")]
    max_output_tokens: Option<u32>,
    #[serde(default, alias = "response_mime_type")]
    response_mime_type: Option<String>,
    #[serde(default, alias = "response_json_schema")]
    response_json_schema: Option<Value>,
    #[serde(default, alias = "response_schema")]
    response_schema: Option<Value>,
}

/// The message Gemini 3 answers to a replayed function call without its signature.
const MISSING_SIGNATURE: &str = "Function call is missing a thought_signature in functionCall \
parts. This is required for tools to work correctly, and missing thought_signature may lead to \
degraded model performance. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures \
for more details.";

/// The signature the mock puts on a Gemini 3 function call (base64 of `mockllm-signature`).
const MOCK_SIGNATURE: &str = "bW9ja2xsbS1zaWduYXR1cmU=";

/// Field names of the request objects the mock checks, as in the REST reference (camelCase;
/// the snake_case spellings are accepted too, as Google's JSON parser does).
const REQUEST_FIELDS: &[&str] = &[
    "model",
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
];
const GENERATION_CONFIG_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
];
const THINKING_CONFIG_FIELDS: &[&str] = &["includeThoughts", "thinkingBudget", "thinkingLevel"];
const CONTENT_FIELDS: &[&str] = &["role", "parts"];
const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "partMetadata",
    "videoMetadata",
    "mediaResolution",
];
const TOOL_FIELDS: &[&str] = &[
    "functionDeclarations",
    "googleSearchRetrieval",
    "codeExecution",
    "googleSearch",
    "urlContext",
    "computerUse",
    "fileSearch",
    "googleMaps",
];
const FUNCTION_DECLARATION_FIELDS: &[&str] = &[
    "name",
    "description",
    "behavior",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
];
const TOOL_CONFIG_FIELDS: &[&str] = &["functionCallingConfig", "retrievalConfig"];
const FUNCTION_CALLING_FIELDS: &[&str] = &["mode", "allowedFunctionNames"];
const FUNCTION_CALLING_MODES: &[&str] = &["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"];

/// `fooBar` → `foo_bar`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first key of `object` (at `path`, Google's snake_case path) that is not in `known`,
/// as Google's error message; `Ok` when `value` is not an object (type errors are not checked).
fn check_keys(value: &Value, known: &[&str], path: &str) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Ok(());
    };
    match object
        .keys()
        .find(|k| !known.iter().any(|n| n == k || snake_case(n) == **k))
    {
        Some(k) if path.is_empty() => Err(format!(
            "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
        )),
        Some(k) => Err(format!(
            "Invalid JSON payload received. Unknown name \"{k}\" at '{path}': Cannot find field."
        )),
        None => Ok(()),
    }
}

/// `object[name]`, under either spelling.
fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| object.get(snake_case(name)))
}

/// Refuses unknown field names in the request, its contents, parts, tools and configs, and
/// what else Google refuses that a translator could get wrong.
fn check_request(body: &Value) -> Result<(), String> {
    check_keys(body, REQUEST_FIELDS, "")?;
    let contents = field(body, "contents").and_then(Value::as_array);
    let system = field(body, "systemInstruction");
    for (i, content) in contents.into_iter().flatten().enumerate() {
        check_content(content, &format!("contents[{i}]"))?;
    }
    if let Some(s) = system {
        check_content(s, "system_instruction")?;
    }
    if let Some(g) = field(body, "generationConfig") {
        check_keys(g, GENERATION_CONFIG_FIELDS, "generation_config")?;
        if let Some(t) = field(g, "thinkingConfig") {
            check_keys(
                t,
                THINKING_CONFIG_FIELDS,
                "generation_config.thinking_config",
            )?;
            if field(t, "thinkingBudget").is_some() && field(t, "thinkingLevel").is_some() {
                return Err("thinking_budget and thinking_level are mutually exclusive.".into());
            }
        }
        if field(g, "responseSchema").is_some() && field(g, "responseJsonSchema").is_some() {
            return Err("response_schema and response_json_schema are mutually exclusive.".into());
        }
    }
    for (i, tool) in field(body, "tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_keys(tool, TOOL_FIELDS, &format!("tools[{i}]"))?;
        for (j, f) in field(tool, "functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("tools[{i}].function_declarations[{j}]");
            check_keys(f, FUNCTION_DECLARATION_FIELDS, &at)?;
            if field(f, "parameters").is_some() && field(f, "parametersJsonSchema").is_some() {
                return Err(format!(
                    "* GenerateContentRequest.{at}: parameters and parameters_json_schema are mutually exclusive\n"
                ));
            }
        }
    }
    if let Some(tc) = field(body, "toolConfig") {
        check_keys(tc, TOOL_CONFIG_FIELDS, "tool_config")?;
        if let Some(fc) = field(tc, "functionCallingConfig") {
            let at = "tool_config.function_calling_config";
            check_keys(fc, FUNCTION_CALLING_FIELDS, at)?;
            if let Some(mode) = field(fc, "mode").and_then(Value::as_str) {
                if !FUNCTION_CALLING_MODES.contains(&mode) {
                    return Err(format!(
                        "Invalid value at '{at}.mode' (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode), \"{mode}\""
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_content(content: &Value, at: &str) -> Result<(), String> {
    check_keys(content, CONTENT_FIELDS, at)?;
    for (j, part) in field(content, "parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_keys(part, PART_FIELDS, &format!("{at}.parts[{j}]"))?;
    }
    Ok(())
}

/// For Gemini 3: the first function call of each model turn of the current turn (after the
/// last user text) must carry a `thoughtSignature`.
fn check_signatures(body: &GenerateRequest) -> Result<(), &'static str> {
    let current = body
        .contents
        .iter()
        .rposition(|c| {
            c.role.as_deref().unwrap_or("user") == "user"
                && c.parts.iter().any(|p| p.get("text").is_some())
        })
        .map_or(0, |i| i + 1);
    for content in &body.contents[current..] {
        if content.role.as_deref() != Some("model") {
            continue;
        }
        let first_call = content
            .parts
            .iter()
            .find(|p| p.get("functionCall").is_some() || p.get("function_call").is_some());
        if let Some(p) = first_call {
            if p.get("thoughtSignature")
                .or_else(|| p.get("thought_signature"))
                .is_none()
            {
                return Err(MISSING_SIGNATURE);
            }
        }
    }
    Ok(())
}

impl Content {
    fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `response` of its `functionResponse` parts, or `None` when it has none.
    fn function_responses(&self) -> Option<String> {
        let responses: Vec<String> = self
            .parts
            .iter()
            .filter_map(|p| {
                p.get("functionResponse")
                    .or_else(|| p.get("function_response"))
            })
            .map(|r| r.get("response").map(Value::to_string).unwrap_or_default())
            .collect();
        (!responses.is_empty()).then(|| responses.join(" "))
    }
}

/// Writes a Google-shaped error (counted as a bad request, or not found for 404).
async fn error(
    stream: &mut Peer<'_>,
    status: u16,
    message: &str,
    keep_alive: bool,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    ctx.stats.count_request(if status == 404 {
        Endpoint::NotFound
    } else {
        Endpoint::BadRequest
    });
    let body = Dialect::Gemini.error_body(status, message);
    write_json(stream, status, &body, keep_alive, "").await
}

/// Routes `POST /v1beta/models/{model}:{method}`.
pub async fn route(
    stream: &mut Peer<'_>,
    request: &Request,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    let rest = request.path.trim_start_matches("/v1beta/models/");
    let (model, streaming) = match rest.rsplit_once(':') {
        Some((model, "generateContent")) => (model, false),
        Some((model, "streamGenerateContent")) => (model, true),
        _ => {
            let msg = format!("Unknown request URL: {}", request.path);
            return error(stream, 404, &msg, keep_alive, ctx).await;
        }
    };
    if request.header("x-goog-api-key").is_none() && request.query_param("key").is_none() {
        return error(stream, 403, NO_KEY, keep_alive, ctx).await;
    }
    let body = match parse_request(&request.body) {
        Ok(b) => b,
        Err(msg) => return error(stream, 400, &msg, keep_alive, ctx).await,
    };
    if body.contents.is_empty() {
        let msg = "* GenerateContentRequest.contents: contents is not specified\n";
        return error(stream, 400, msg, keep_alive, ctx).await;
    }
    let gemini_3 = model.trim_start_matches("models/").starts_with("gemini-3");
    if gemini_3 {
        if let Err(msg) = check_signatures(&body) {
            return error(stream, 400, msg, keep_alive, ctx).await;
        }
    }
    let sse = request.query_param("alt") == Some("sse");
    ctx.stats.count_request(if streaming {
        Endpoint::GeminiStream
    } else {
        Endpoint::GeminiGenerate
    });
    // `stream-answer` streams as SSE; `whole-answer` answers generateContent's JSON.
    let (streaming, sse) = match knobs.fault {
        Some(Fault::StreamAnswer) => (true, true),
        Some(Fault::WholeAnswer) => (false, sse),
        _ => (streaming, sse),
    };
    if let Some(done) = fault_before_answer(
        stream,
        &knobs,
        streaming && sse,
        Dialect::Gemini,
        keep_alive,
        &ctx.stats,
    )
    .await
    {
        return done;
    }
    let forced = request.header("x-mock-tool-call");
    let mut answer = plan_answer(&body, model, forced, &knobs);
    answer.signed = gemini_3;
    if streaming && sse {
        send_events(
            stream,
            answer.events(),
            &knobs,
            Dialect::Gemini,
            keep_alive,
            &ctx.stats,
        )
        .await
    } else {
        sleep_if_any(knobs.ttft + knobs.itl * answer.candidates_tokens).await;
        let out = if streaming {
            // Without alt=sse the stream is one JSON array of the chunks.
            Value::Array(answer.chunks()).to_string()
        } else {
            answer.response().to_string()
        };
        send_json(stream, out.as_bytes(), &knobs, keep_alive, &ctx.stats).await
    }
}

/// Reads the body: valid JSON, known field names, the mock's typed view.
fn parse_request(bytes: &[u8]) -> Result<GenerateRequest, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    check_request(&value)?;
    serde_json::from_value(value).map_err(|e| format!("Invalid JSON payload received. {e}"))
}

/// What the model answers: text tokens or function calls.
enum Parts {
    Text(Vec<String>),
    Calls(Vec<PlannedCall>),
}

/// One answer, renderable whole or as stream chunks.
struct Answer {
    parts: Parts,
    finish_reason: &'static str,
    model: String,
    response_id: String,
    prompt_tokens: u32,
    candidates_tokens: u32,
    /// Gemini 3: the first function call carries a `thoughtSignature`.
    signed: bool,
}

fn plan_answer(
    body: &GenerateRequest,
    model: &str,
    forced_tool: Option<&str>,
    knobs: &RequestKnobs,
) -> Answer {
    let last = body.contents.last();
    let tool_result = last.and_then(Content::function_responses);
    let prompt = body
        .contents
        .iter()
        .rev()
        .find(|c| c.role.as_deref().unwrap_or("user") == "user")
        .map(Content::text)
        .unwrap_or_default();
    let prompt_chars = body
        .contents
        .iter()
        .map(|c| c.parts.iter().map(|p| p.to_string().len()).sum::<usize>())
        .sum::<usize>()
        + body
            .system_instruction
            .as_ref()
            .map_or(0, |s| s.text().len())
        + body
            .tools
            .as_ref()
            .map_or(0, |t| t.iter().map(|t| t.to_string().len()).sum());
    let mut count = knobs.tokens;
    let mut finish_reason = "STOP";
    if let Some(limit) = body
        .generation_config
        .as_ref()
        .and_then(|g| g.max_output_tokens)
    {
        if limit < count {
            count = limit;
            finish_reason = "MAX_TOKENS";
        }
    }
    let parts = match tool_result {
        Some(result) => Parts::Text(text::tool_result_tokens(&result, count)),
        None => {
            let calls = plan_calls(body, &prompt, forced_tool, knobs);
            if calls.is_empty() {
                Parts::Text(text::reply_or_scripted(knobs.reply, &prompt, count))
            } else {
                finish_reason = "STOP";
                Parts::Calls(calls)
            }
        }
    };
    let parts = match (parts, body.generation_config.as_ref()) {
        (Parts::Text(tokens), Some(g)) if is_json(g.response_mime_type.as_deref()) => {
            finish_reason = "STOP";
            Parts::Text(json_tokens(g, &tokens.concat()))
        }
        (parts, _) => parts,
    };
    let candidates_tokens = match &parts {
        Parts::Text(tokens) => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
        Parts::Calls(calls) => calls
            .iter()
            .map(|c| text::estimate_tokens(c.arguments.to_string().len() + c.name.len()))
            .sum(),
    };
    Answer {
        parts,
        finish_reason,
        model: model.trim_start_matches("models/").to_string(),
        response_id: random_id("", 22),
        prompt_tokens: text::estimate_tokens(prompt_chars),
        candidates_tokens,
        signed: false,
    }
}

fn is_json(mime: Option<&str>) -> bool {
    mime.is_some_and(|m| m.eq_ignore_ascii_case("application/json"))
}

/// Bytes of JSON text per streamed token in JSON mode.
const JSON_PIECE: usize = 8;

/// The JSON answer, cut into token-sized pieces: an object built from the schema when the
/// request gives one, else `{"text": reply}`. Always whole, valid JSON (the output limit does
/// not cut it, as Gemini's constrained decoding would not return half an object either).
fn json_tokens(g: &GenerationConfig, reply: &str) -> Vec<String> {
    let value = match g
        .response_json_schema
        .as_ref()
        .or(g.response_schema.as_ref())
    {
        Some(schema) => tools::arguments_from_schema(schema, 0),
        None => json!({ "text": reply }),
    };
    let text = value.to_string();
    tools::pieces(&text, JSON_PIECE)
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn plan_calls(
    body: &GenerateRequest,
    prompt: &str,
    forced_tool: Option<&str>,
    knobs: &RequestKnobs,
) -> Vec<PlannedCall> {
    let calling = body.tool_config.as_ref().and_then(|c| {
        c.get("functionCallingConfig")
            .or_else(|| c.get("function_calling_config"))
    });
    let mode = calling.and_then(|c| c.get("mode")).and_then(Value::as_str);
    if mode == Some("NONE") {
        return Vec::new();
    }
    let specs: Vec<ToolSpec<'_>> = body
        .tools
        .iter()
        .flatten()
        .filter_map(|t| {
            t.get("functionDeclarations")
                .or_else(|| t.get("function_declarations"))
                .and_then(Value::as_array)
        })
        .flatten()
        .filter_map(|f| {
            Some(ToolSpec {
                name: f.get("name")?.as_str()?,
                schema: f
                    .get("parameters")
                    .or_else(|| f.get("parametersJsonSchema")),
            })
        })
        .collect();
    let chosen = if mode == Some("ANY") {
        calling
            .and_then(|c| c.get("allowedFunctionNames"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .or_else(|| specs.first().map(|t| t.name))
    } else {
        None
    };
    let trigger = ToolTrigger {
        forced: forced_tool.or(chosen),
        count: knobs.tool_calls,
    };
    tools::plan(&specs, prompt, trigger)
}

impl Answer {
    fn usage(&self, candidates: u32) -> Value {
        json!({
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": candidates,
            "totalTokenCount": self.prompt_tokens + candidates,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
        })
    }

    /// A `GenerateContentResponse` with these parts; `finish` on the last one.
    fn chunk(&self, parts: Vec<Value>, finish: bool, candidates: u32) -> Value {
        let mut candidate = json!({
            "content": {"parts": parts, "role": "model"},
            "index": 0,
        });
        if finish {
            candidate["finishReason"] = json!(self.finish_reason);
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": self.usage(candidates),
            "modelVersion": self.model,
            "responseId": self.response_id,
        })
    }

    fn all_parts(&self) -> Vec<Value> {
        match &self.parts {
            Parts::Text(tokens) => vec![json!({"text": tokens.concat()})],
            Parts::Calls(calls) => self.call_parts(calls),
        }
    }

    /// One `functionCall` part per call; with `signed`, the first carries a signature.
    fn call_parts(&self, calls: &[PlannedCall]) -> Vec<Value> {
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut part = call_part(c);
                if self.signed && i == 0 {
                    part["thoughtSignature"] = json!(MOCK_SIGNATURE);
                }
                part
            })
            .collect()
    }

    /// The whole answer of `:generateContent`.
    fn response(&self) -> Value {
        self.chunk(self.all_parts(), true, self.candidates_tokens)
    }

    /// The stream: one chunk per text token (or per function call), usage so far in each,
    /// `finishReason` and the full usage in the last.
    fn chunks(&self) -> Vec<Value> {
        let pieces: Vec<Value> = match &self.parts {
            Parts::Text(tokens) => tokens.iter().map(|t| json!({"text": t})).collect(),
            Parts::Calls(calls) => self.call_parts(calls),
        };
        if pieces.is_empty() {
            return vec![self.chunk(vec![json!({"text": ""})], true, self.candidates_tokens)];
        }
        let n = pieces.len();
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let last = i + 1 == n;
                let so_far = if last {
                    self.candidates_tokens
                } else {
                    u32::try_from(i + 1).unwrap_or(u32::MAX)
                };
                self.chunk(vec![part], last, so_far)
            })
            .collect()
    }

    /// `data: {GenerateContentResponse}\n\n` per chunk, paced; no `[DONE]`.
    fn events(&self) -> EventStream {
        EventStream {
            paced: self
                .chunks()
                .iter()
                .map(|c| sse_event(None, c.to_string().as_bytes()))
                .collect(),
            ..EventStream::default()
        }
    }
}

fn call_part(call: &PlannedCall) -> Value {
    json!({"functionCall": {"name": call.name, "args": call.arguments}})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn knobs(tokens: u32, tool_calls: Option<u32>) -> RequestKnobs {
        RequestKnobs {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            tokens,
            body_bytes: None,
            fault: None,
            tool_calls,
            reply: None,
            ratelimit_remaining: None,
        }
    }

    fn parse(body: Value) -> Result<GenerateRequest, String> {
        parse_request(body.to_string().as_bytes())
    }

    fn weather_tools() -> Value {
        json!([{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}])
    }

    fn answer_text(a: &Answer) -> String {
        a.response()["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn unknown_field_names_are_refused_like_google_does() {
        let ok = json!({"contents": [{"role": "user", "parts": [{"text": "hi"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generation_config": {"max_output_tokens": 5, "thinkingConfig": {"thinkingBudget": 0}},
            "tools": weather_tools(),
            "toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}}});
        assert!(parse(ok).is_ok());
        let cases = [
            (
                json!({"contents": [], "max_tokens": 3}),
                "Unknown name \"max_tokens\": Cannot find field.",
            ),
            (
                json!({"contents": [], "generationConfig": {"maxTokens": 3}}),
                "Unknown name \"maxTokens\" at 'generation_config'",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"image": "x"}]}]}),
                "Unknown name \"image\" at 'contents[0].parts[0]'",
            ),
            (
                json!({"contents": [], "tools": [{"functionDeclarations": [{"name": "f",
                    "parameters": {"type": "OBJECT"}, "parametersJsonSchema": {"type": "object"}}]}]}),
                "mutually exclusive",
            ),
            (
                json!({"contents": [], "toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}}),
                "Invalid value at 'tool_config.function_calling_config.mode'",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body).err().unwrap();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn json_mode_answers_valid_json_built_from_the_schema() {
        let body = parse(json!({"contents": [{"role": "user", "parts": [{"text": "give me json"}]}],
            "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {
                "type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["city", "n"]}}}))
        .unwrap();
        let a = plan_answer(&body, "gemini-2.5-flash", None, &knobs(3, None));
        let v: Value = serde_json::from_str(&answer_text(&a)).unwrap();
        assert_eq!(v, json!({"city": "Paris", "n": 1}));
        let streamed: String = a
            .chunks()
            .iter()
            .map(|c| {
                c["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(streamed, answer_text(&a));
        let body = parse(json!({"contents": [{"parts": [{"text": "hello there"}]}],
            "generationConfig": {"responseMimeType": "application/json", "maxOutputTokens": 1}}))
        .unwrap();
        let a = plan_answer(&body, "gemini-2.5-flash", None, &knobs(3, None));
        let v: Value = serde_json::from_str(&answer_text(&a)).unwrap();
        assert_eq!(v, json!({"text": "Echo:"}));
        assert_eq!(a.finish_reason, "STOP");
    }

    #[test]
    fn function_results_parallel_calls_and_usage_in_the_last_event() {
        let body = parse(
            json!({"contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
            "tools": weather_tools()}),
        )
        .unwrap();
        let a = plan_answer(&body, "gemini-2.5-flash", None, &knobs(3, Some(2)));
        let parts = &a.response()["candidates"][0]["content"]["parts"];
        assert_eq!(parts[0]["functionCall"]["args"], json!({"city": "Paris"}));
        assert_eq!(parts[1]["functionCall"]["args"], json!({"city": "Tokyo"}));
        assert!(parts[0].get("thoughtSignature").is_none());
        let chunks = a.chunks();
        let last = chunks.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["usageMetadata"]["candidatesTokenCount"],
            a.candidates_tokens
        );

        let body = parse(json!({"contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny 18C"}}}]}],
            "tools": weather_tools()}))
        .unwrap();
        let a = plan_answer(&body, "gemini-2.5-flash", None, &knobs(2, None));
        let text = answer_text(&a);
        assert!(
            text.starts_with("Tool result:") && text.contains("sunny"),
            "{text}"
        );
    }

    #[test]
    fn gemini_3_signs_calls_and_wants_them_back() {
        let history = |signature: Option<&str>| {
            let mut call =
                json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}});
            if let Some(s) = signature {
                call["thoughtSignature"] = json!(s);
            }
            parse(json!({"contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [call]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": 1}}}]}]}))
            .unwrap()
        };
        assert_eq!(check_signatures(&history(None)), Err(MISSING_SIGNATURE));
        assert_eq!(
            check_signatures(&history(Some("skip_thought_signature_validator"))),
            Ok(())
        );
        // An earlier turn (before the last user text) is not checked.
        let old = parse(json!({"contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}]},
            {"role": "model", "parts": [{"text": "sunny"}]},
            {"role": "user", "parts": [{"text": "thanks"}]}]}))
        .unwrap();
        assert_eq!(check_signatures(&old), Ok(()));

        let body = parse(
            json!({"contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
            "tools": weather_tools()}),
        )
        .unwrap();
        let mut a = plan_answer(&body, "gemini-3-flash-preview", None, &knobs(3, Some(2)));
        a.signed = true;
        let parts = &a.response()["candidates"][0]["content"]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], MOCK_SIGNATURE);
        assert!(parts[1].get("thoughtSignature").is_none());
        assert_eq!(
            a.chunks()[0]["candidates"][0]["content"]["parts"][0]["thoughtSignature"],
            MOCK_SIGNATURE
        );
    }
}
