//! Anthropic's Messages API: `POST /v1/messages` (text and tool use, streamed or not) and
//! `POST /v1/messages/count_tokens`.

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

/// Bytes of input JSON per streamed `input_json_delta`.
const INPUT_PIECE: usize = 8;

/// The body of `POST /v1/messages` and `/v1/messages/count_tokens` (fields the mock reads).
#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    messages: Vec<InputMessage>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

/// One input message: `content` is a string or an array of content blocks.
#[derive(Debug, Deserialize)]
struct InputMessage {
    role: String,
    content: Value,
}

/// Text of a string or of the `text` blocks of an array (joined by spaces).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The results of the `tool_result` blocks of `content`, or `None` when it has none.
fn tool_results(content: &Value) -> Option<String> {
    let results: Vec<String> = content
        .as_array()?
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| b.get("content").map(content_text).unwrap_or_default())
        .collect();
    (!results.is_empty()).then(|| results.join(" "))
}

/// Writes an Anthropic error (counted as a bad request when 400).
async fn error(
    stream: &mut Peer<'_>,
    status: u16,
    message: &str,
    keep_alive: bool,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    ctx.stats.count_request(Endpoint::BadRequest);
    let body = Dialect::Anthropic.error_body(status, message);
    write_json(stream, status, &body, keep_alive, "").await
}

/// The request's body once its headers pass the checks the real API makes: `x-api-key`
/// (or `authorization`) present, else 401; `anthropic-version` present, else 400.
async fn checked_body(
    stream: &mut Peer<'_>,
    request: &Request,
    ctx: &ServerContext,
) -> Result<MessagesRequest, std::io::Result<Next>> {
    let keep_alive = request.keep_alive;
    if request.header("x-api-key").is_none() && request.header("authorization").is_none() {
        let msg = "x-api-key header is required";
        return Err(error(stream, 401, msg, keep_alive, ctx).await);
    }
    if request.header("anthropic-version").is_none() {
        let msg = "anthropic-version: header is required";
        return Err(error(stream, 400, msg, keep_alive, ctx).await);
    }
    match serde_json::from_slice(&request.body) {
        Ok(body) => Ok(body),
        Err(e) => {
            let msg = format!("invalid request body: {e}");
            Err(error(stream, 400, &msg, keep_alive, ctx).await)
        }
    }
}

/// Estimated input tokens: all message text, the system prompt and the tool definitions.
fn input_tokens(body: &MessagesRequest) -> u32 {
    let chars: usize = body
        .messages
        .iter()
        .map(|m| match &m.content {
            Value::String(s) => s.len(),
            other => other.to_string().len(),
        })
        .sum::<usize>()
        + body.system.as_ref().map_or(0, |s| content_text(s).len())
        + body
            .tools
            .as_ref()
            .map_or(0, |t| t.iter().map(|t| t.to_string().len()).sum());
    text::estimate_tokens(chars)
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.
pub async fn count_tokens(
    stream: &mut Peer<'_>,
    request: &Request,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let body = match checked_body(stream, request, ctx).await {
        Ok(b) => b,
        Err(done) => return done,
    };
    ctx.stats.count_request(Endpoint::AnthropicCountTokens);
    let keep_alive = request.keep_alive;
    if let Some(done) = fault_before_answer(
        stream,
        &knobs,
        false,
        Dialect::Anthropic,
        keep_alive,
        &ctx.stats,
    )
    .await
    {
        return done;
    }
    let out = json!({ "input_tokens": input_tokens(&body) });
    write_json(stream, 200, out.to_string().as_bytes(), keep_alive, "").await
}

/// What the answer holds: text tokens or tool calls.
enum Content {
    Text(Vec<String>),
    ToolUse(Vec<(String, PlannedCall)>),
}

/// `POST /v1/messages`.
pub async fn messages(
    stream: &mut Peer<'_>,
    request: &Request,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    let body = match checked_body(stream, request, ctx).await {
        Ok(b) => b,
        Err(done) => return done,
    };
    let Some(max_tokens) = body.max_tokens else {
        return error(stream, 400, "max_tokens: Field required", keep_alive, ctx).await;
    };
    if let Some(m) = body
        .messages
        .iter()
        .find(|m| m.role != "user" && m.role != "assistant")
    {
        let msg = format!("messages: Unexpected role \"{}\"", m.role);
        return error(stream, 400, &msg, keep_alive, ctx).await;
    }
    let streaming = body.stream.unwrap_or(false);
    ctx.stats.count_request(if streaming {
        Endpoint::AnthropicMessagesStream
    } else {
        Endpoint::AnthropicMessages
    });
    let streaming = Fault::streams(knobs.fault, streaming);
    if let Some(done) = fault_before_answer(
        stream,
        &knobs,
        streaming,
        Dialect::Anthropic,
        keep_alive,
        &ctx.stats,
    )
    .await
    {
        return done;
    }
    let last_user = body.messages.iter().rev().find(|m| m.role == "user");
    let tool_result = last_user.and_then(|m| tool_results(&m.content));
    let prompt = last_user
        .map(|m| content_text(&m.content))
        .unwrap_or_default();
    let mut stop_reason = "end_turn";
    let content = match tool_result {
        Some(result) => Content::Text(text::tool_result_tokens(&result, knobs.tokens)),
        None => {
            let calls = plan_calls(&body, &prompt, request, &knobs);
            if calls.is_empty() {
                Content::Text(text::reply_or_scripted(knobs.reply, &prompt, knobs.tokens))
            } else {
                Content::ToolUse(
                    calls
                        .into_iter()
                        .map(|c| (random_id("toolu_", 24), c))
                        .collect(),
                )
            }
        }
    };
    let content = match content {
        Content::Text(mut tokens) => {
            if tokens.len() > max_tokens as usize {
                tokens.truncate(max_tokens as usize);
                stop_reason = "max_tokens";
            }
            Content::Text(tokens)
        }
        Content::ToolUse(calls) => {
            stop_reason = "tool_use";
            Content::ToolUse(calls)
        }
    };
    let output_tokens = match &content {
        Content::Text(tokens) => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
        Content::ToolUse(calls) => calls
            .iter()
            .map(|(_, c)| text::estimate_tokens(c.arguments.to_string().len() + c.name.len()))
            .sum(),
    };
    let answer = Answer {
        id: random_id("msg_", 24),
        model: body.model.clone(),
        input_tokens: input_tokens(&body),
        output_tokens,
        stop_reason,
    };
    if streaming {
        let events = answer.events(&content);
        send_events(
            stream,
            events,
            &knobs,
            Dialect::Anthropic,
            keep_alive,
            &ctx.stats,
        )
        .await
    } else {
        sleep_if_any(knobs.ttft + knobs.itl * output_tokens).await;
        let out = serde_json::to_vec(&answer.message(&content)).unwrap_or_default();
        send_json(stream, &out, &knobs, keep_alive, &ctx.stats).await
    }
}

fn plan_calls(
    body: &MessagesRequest,
    prompt: &str,
    request: &Request,
    knobs: &RequestKnobs,
) -> Vec<PlannedCall> {
    let choice = body.tool_choice.as_ref();
    let choice_type = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    if choice_type == Some("none") {
        return Vec::new();
    }
    let specs: Vec<ToolSpec<'_>> = body
        .tools
        .iter()
        .flatten()
        .filter_map(|t| {
            Some(ToolSpec {
                name: t.get("name")?.as_str()?,
                schema: t.get("input_schema"),
            })
        })
        .collect();
    let chosen = match choice_type {
        Some("tool") => choice.and_then(|c| c.get("name")).and_then(Value::as_str),
        Some("any") => specs.first().map(|t| t.name),
        _ => None,
    };
    let trigger = ToolTrigger {
        forced: request.header("x-mock-tool-call").or(chosen),
        count: knobs.tool_calls,
    };
    tools::plan(&specs, prompt, trigger)
}

/// The fields of a message that do not depend on its content.
struct Answer {
    id: String,
    model: String,
    input_tokens: u32,
    output_tokens: u32,
    stop_reason: &'static str,
}

impl Answer {
    fn usage(&self, output_tokens: u32) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        })
    }

    /// The `message` object of a non-streamed answer.
    fn message(&self, content: &Content) -> Value {
        let blocks: Vec<Value> = match content {
            Content::Text(tokens) => vec![json!({"type": "text", "text": tokens.concat()})],
            Content::ToolUse(calls) => calls
                .iter()
                .map(|(id, c)| {
                    json!({"type": "tool_use", "id": id, "name": c.name, "input": c.arguments})
                })
                .collect(),
        };
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": blocks,
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens),
        })
    }

    /// `message_start`, `content_block_start`, `ping`, the deltas, `content_block_stop`,
    /// `message_delta` and `message_stop`, each `event: NAME\ndata: JSON\n\n`.
    fn events(&self, content: &Content) -> EventStream {
        let start = json!({
            "type": "message_start",
            "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": self.usage(1),
            },
        });
        let mut events = EventStream {
            lead: vec![event("message_start", &start)],
            ..EventStream::default()
        };
        let last_index = match content {
            Content::Text(tokens) => {
                events
                    .lead
                    .push(block_start(0, json!({"type": "text", "text": ""})));
                events.lead.push(event("ping", &json!({"type": "ping"})));
                events.paced = tokens
                    .iter()
                    .map(|t| block_delta(0, json!({"type": "text_delta", "text": t})))
                    .collect();
                0
            }
            Content::ToolUse(calls) => {
                for (index, (id, call)) in calls.iter().enumerate() {
                    let start = block_start(
                        index,
                        json!({"type": "tool_use", "id": id, "name": call.name, "input": {}}),
                    );
                    if index == 0 {
                        events.lead.push(start);
                        events.lead.push(event("ping", &json!({"type": "ping"})));
                    } else {
                        let mut both = block_stop(index - 1);
                        both.extend_from_slice(&start);
                        events.paced.push(both);
                    }
                    let input = call.arguments.to_string();
                    for piece in tools::pieces(&input, INPUT_PIECE) {
                        events.paced.push(block_delta(
                            index,
                            json!({"type": "input_json_delta", "partial_json": piece}),
                        ));
                    }
                }
                calls.len().saturating_sub(1)
            }
        };
        events.tail.push(block_stop(last_index));
        events.tail.push(event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": self.output_tokens},
            }),
        ));
        events
            .tail
            .push(event("message_stop", &json!({"type": "message_stop"})));
        events
    }
}

fn event(name: &str, data: &Value) -> Vec<u8> {
    sse_event(Some(name), data.to_string().as_bytes())
}

fn block_start(index: usize, block: Value) -> Vec<u8> {
    event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn block_delta(index: usize, delta: Value) -> Vec<u8> {
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn block_stop(index: usize) -> Vec<u8> {
    event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}
