//! Google's Gemini API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (SSE with `alt=sse`, else a JSON array), text and function calls.

use monoio::net::TcpStream;
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::RequestKnobs;
use super::deliver::{fault_before_answer, send_events, send_json, EventStream};
use super::dialect::Dialect;
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

/// `generationConfig` (only the output limit matters to the mock).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(default, alias = "max_output_tokens")]
    max_output_tokens: Option<u32>,
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
    stream: &mut TcpStream,
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
    stream: &mut TcpStream,
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
    let body: GenerateRequest = match serde_json::from_slice(&request.body) {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("Invalid JSON payload received. {e}");
            return error(stream, 400, &msg, keep_alive, ctx).await;
        }
    };
    if body.contents.is_empty() {
        let msg = "* GenerateContentRequest.contents: contents is not specified\n";
        return error(stream, 400, msg, keep_alive, ctx).await;
    }
    let sse = request.query_param("alt") == Some("sse");
    ctx.stats.count_request(if streaming {
        Endpoint::GeminiStream
    } else {
        Endpoint::GeminiGenerate
    });
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
    let answer = plan_answer(&body, model, request, &knobs);
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
}

fn plan_answer(
    body: &GenerateRequest,
    model: &str,
    request: &Request,
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
            let calls = plan_calls(body, &prompt, request, knobs);
            if calls.is_empty() {
                Parts::Text(text::reply_tokens(&prompt, count))
            } else {
                finish_reason = "STOP";
                Parts::Calls(calls)
            }
        }
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
    }
}

fn plan_calls(
    body: &GenerateRequest,
    prompt: &str,
    request: &Request,
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
        forced: request.header("x-mock-tool-call").or(chosen),
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
            Parts::Calls(calls) => calls.iter().map(call_part).collect(),
        }
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
            Parts::Calls(calls) => calls.iter().map(call_part).collect(),
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
