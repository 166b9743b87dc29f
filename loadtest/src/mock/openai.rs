//! The OpenAI endpoints: chat completions (text and tool calls, streamed or not) and
//! embeddings.

use super::peer::Peer;
use serde_json::{json, Value};

use super::config::RequestKnobs;
use super::deliver::{fault_before_answer, send_events, send_json, EventStream};
use super::dialect::Dialect;
use super::fault::Fault;
use super::handler::ServerContext;
use super::request::Request;
use super::respond::{random_id, sleep_if_any, sse_event, unix_now, write_json, Next};
use super::stats::Endpoint;
use super::text;
use super::tools::{self, PlannedCall, ToolSpec, ToolTrigger};
use super::wire;

/// Bytes of arguments JSON per streamed tool-call delta.
const ARGUMENT_PIECE: usize = 8;

/// Answers 400 in OpenAI's shape (counted as a bad request).
pub async fn bad_request(
    stream: &mut Peer<'_>,
    message: &str,
    keep_alive: bool,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    ctx.stats.count_request(Endpoint::BadRequest);
    write_json(
        stream,
        400,
        &Dialect::OpenAi.error_body(400, message),
        keep_alive,
        "",
    )
    .await
}

/// `POST /v1/chat/completions`.
pub async fn chat(
    stream: &mut Peer<'_>,
    request: &Request,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    let chat: wire::ChatRequest = match serde_json::from_slice(&request.body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("We could not parse the JSON body of your request: {e}");
            return bad_request(stream, &msg, keep_alive, ctx).await;
        }
    };
    let streaming = chat.stream.unwrap_or(false);
    ctx.stats.count_request(if streaming {
        Endpoint::ChatStream
    } else {
        Endpoint::Chat
    });
    let streaming = Fault::streams(knobs.fault, streaming);
    if let Some(done) = fault_before_answer(
        stream,
        &knobs,
        streaming,
        Dialect::OpenAi,
        keep_alive,
        &ctx.stats,
    )
    .await
    {
        return done;
    }
    let last = chat.messages.last();
    let tool_result = last
        .filter(|m| m.role == "tool")
        .map(|m| m.content.as_ref().map(|c| c.text()).unwrap_or_default());
    let prompt = chat
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.as_ref())
        .map(|c| c.text())
        .unwrap_or_default();
    let prompt_chars: usize = chat
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .map(|c| c.text_len())
        .sum::<usize>()
        + chat.tools.as_ref().map_or(0, |t| t.to_string().len());
    let prompt_tokens = text::estimate_tokens(prompt_chars);
    let calls = if tool_result.is_some() || chat.tool_choice.as_ref() == Some(&json!("none")) {
        Vec::new()
    } else {
        plan_calls(&chat, &prompt, request, &knobs)
    };
    let mut meta = Meta {
        id: random_id("chatcmpl-", 24),
        created: unix_now(),
        model: chat.model.clone(),
        usage: wire::Usage {
            prompt_tokens,
            completion_tokens: 0,
            total_tokens: 0,
        },
    };
    let include_usage = chat
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    if !calls.is_empty() {
        let calls: Vec<(String, PlannedCall)> = calls
            .into_iter()
            .map(|c| (random_id("call_", 24), c))
            .collect();
        let completion = calls
            .iter()
            .map(|(_, c)| text::estimate_tokens(c.arguments.to_string().len() + c.name.len()))
            .sum::<u32>();
        meta.set_completion(completion);
        return if streaming {
            let events = tool_call_events(&meta, &calls, include_usage);
            send_events(
                stream,
                events,
                &knobs,
                Dialect::OpenAi,
                keep_alive,
                &ctx.stats,
            )
            .await
        } else {
            sleep_if_any(knobs.ttft + knobs.itl * completion).await;
            let body = tool_call_completion(&meta, &calls);
            send_json(stream, &body, &knobs, keep_alive, &ctx.stats).await
        };
    }
    let mut count = knobs.tokens;
    let mut finish_reason = "stop";
    if let Some(limit) = chat.max_completion_tokens.or(chat.max_tokens) {
        if limit < count {
            count = limit;
            finish_reason = "length";
        }
    }
    let tokens = match &tool_result {
        Some(result) => text::tool_result_tokens(result, count),
        None => text::reply_or_scripted(knobs.reply, &prompt, count),
    };
    meta.set_completion(u32::try_from(tokens.len()).unwrap_or(u32::MAX));
    let reply = Reply {
        meta,
        tokens,
        finish_reason,
    };
    if streaming {
        let events = reply.events(include_usage);
        send_events(
            stream,
            events,
            &knobs,
            Dialect::OpenAi,
            keep_alive,
            &ctx.stats,
        )
        .await
    } else {
        complete_reply(stream, &reply, &knobs, keep_alive, ctx).await
    }
}

fn plan_calls(
    chat: &wire::ChatRequest,
    prompt: &str,
    request: &Request,
    knobs: &RequestKnobs,
) -> Vec<PlannedCall> {
    let specs: Vec<ToolSpec<'_>> = chat
        .tools
        .as_ref()
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    let f = t.get("function")?;
                    Some(ToolSpec {
                        name: f.get("name")?.as_str()?,
                        schema: f.get("parameters"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // tool_choice {"type":"function","function":{"name"}} names the tool; "required"
    // asks for one.
    let chosen = match &chat.tool_choice {
        Some(Value::String(s)) if s == "required" => specs.first().map(|t| t.name),
        Some(choice) => choice
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str),
        None => None,
    };
    let trigger = ToolTrigger {
        forced: request.header("x-mock-tool-call").or(chosen),
        count: knobs.tool_calls,
    };
    tools::plan(&specs, prompt, trigger)
}

/// What every chunk and completion of one answer repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
    usage: wire::Usage,
}

impl Meta {
    fn set_completion(&mut self, tokens: u32) {
        self.usage.completion_tokens = tokens;
        self.usage.total_tokens = self.usage.prompt_tokens + tokens;
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mockllm",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        sse_event(None, &serde_json::to_vec(&chunk).unwrap_or_default())
    }

    fn usage_chunk(&self) -> Vec<u8> {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_mockllm",
            "choices": [],
            "usage": self.usage,
        });
        sse_event(None, &serde_json::to_vec(&chunk).unwrap_or_default())
    }
}

/// `message.tool_calls` of a non-streamed answer; `content` is null.
fn tool_call_completion(meta: &Meta, calls: &[(String, PlannedCall)]) -> Vec<u8> {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, c)| {
            json!({
                "id": id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments.to_string()},
            })
        })
        .collect();
    let body = json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": tool_calls,
                "refusal": null,
            },
            "logprobs": null,
            "finish_reason": "tool_calls",
        }],
        "usage": meta.usage,
        "system_fingerprint": "fp_mockllm",
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Streamed tool calls: the first delta of each call carries its index, id, type and name
/// (arguments `""`), the next ones pieces of its arguments; then `finish_reason:
/// "tool_calls"`, the usage chunk when asked, and `[DONE]`.
fn tool_call_events(
    meta: &Meta,
    calls: &[(String, PlannedCall)],
    include_usage: bool,
) -> EventStream {
    let mut events = EventStream::default();
    for (index, (id, call)) in calls.iter().enumerate() {
        let head = json!([{
            "index": index,
            "id": id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }]);
        if index == 0 {
            events.lead.push(meta.chunk(
                json!({"role": "assistant", "content": null, "tool_calls": head, "refusal": null}),
                None,
            ));
        } else {
            events
                .paced
                .push(meta.chunk(json!({"tool_calls": head}), None));
        }
        let arguments = call.arguments.to_string();
        for piece in tools::pieces(&arguments, ARGUMENT_PIECE) {
            events.paced.push(meta.chunk(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                None,
            ));
        }
    }
    events.tail.push(meta.chunk(json!({}), Some("tool_calls")));
    if include_usage {
        events.tail.push(meta.usage_chunk());
    }
    events.tail.push(sse_event(None, b"[DONE]"));
    events
}

/// A text answer, streamed or not.
struct Reply {
    meta: Meta,
    tokens: Vec<String>,
    finish_reason: &'static str,
}

impl Reply {
    fn chunk_json(&self, delta: wire::Delta<'_>, finish: Option<&'static str>) -> Vec<u8> {
        serde_json::to_vec(&wire::ChatChunk {
            id: &self.meta.id,
            object: "chat.completion.chunk",
            created: self.meta.created,
            model: &self.meta.model,
            system_fingerprint: "fp_mockllm",
            choices: vec![wire::ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            usage: None,
        })
        .unwrap_or_default()
    }

    fn completion_json(&self, content: &str) -> Vec<u8> {
        serde_json::to_vec(&wire::ChatCompletion {
            id: &self.meta.id,
            object: "chat.completion",
            created: self.meta.created,
            model: &self.meta.model,
            choices: [wire::Choice {
                index: 0,
                message: wire::AssistantMessage {
                    role: "assistant",
                    content,
                    refusal: None,
                },
                logprobs: None,
                finish_reason: self.finish_reason,
            }],
            usage: self.meta.usage,
            system_fingerprint: "fp_mockllm",
        })
        .unwrap_or_default()
    }

    /// Role delta, one content delta per token, finish chunk, usage chunk, `[DONE]`.
    fn events(&self, include_usage: bool) -> EventStream {
        let role = self.chunk_json(
            wire::Delta {
                role: Some("assistant"),
                content: Some(""),
            },
            None,
        );
        let paced = self
            .tokens
            .iter()
            .map(|token| {
                let delta = wire::Delta {
                    role: None,
                    content: Some(token),
                };
                sse_event(None, &self.chunk_json(delta, None))
            })
            .collect();
        let mut tail = vec![sse_event(
            None,
            &self.chunk_json(wire::Delta::default(), Some(self.finish_reason)),
        )];
        if include_usage {
            tail.push(self.meta.usage_chunk());
        }
        tail.push(sse_event(None, b"[DONE]"));
        EventStream {
            lead: vec![sse_event(None, &role)],
            paced,
            tail,
            mid_stream_error: None,
        }
    }
}

async fn complete_reply(
    stream: &mut Peer<'_>,
    reply: &Reply,
    knobs: &RequestKnobs,
    keep_alive: bool,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let generation = knobs.ttft + knobs.itl * u32::try_from(reply.tokens.len()).unwrap_or(0);
    sleep_if_any(generation).await;
    let mut content: String = reply.tokens.concat();
    let mut body = reply.completion_json(&content);
    if let Some(target) = knobs.body_bytes {
        if body.len() < target {
            let pad = target - body.len();
            content.extend(" pad".chars().cycle().take(pad));
            body = reply.completion_json(&content);
        }
    }
    send_json(stream, &body, knobs, keep_alive, &ctx.stats).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    stream: &mut Peer<'_>,
    request: &Request,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    let body: wire::EmbeddingsRequest = match serde_json::from_slice(&request.body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("We could not parse the JSON body of your request: {e}");
            return bad_request(stream, &msg, keep_alive, ctx).await;
        }
    };
    let Some(inputs) = embedding_inputs(&body.input) else {
        return bad_request(stream, "'$.input' is invalid.", keep_alive, ctx).await;
    };
    let dimensions = body.dimensions.unwrap_or(ctx.config.embedding_dimensions);
    if dimensions == 0 || dimensions > 16_384 {
        return bad_request(stream, "'dimensions' is out of range.", keep_alive, ctx).await;
    }
    ctx.stats.count_request(Endpoint::Embeddings);
    if let Some(done) = fault_before_answer(
        stream,
        &knobs,
        false,
        Dialect::OpenAi,
        keep_alive,
        &ctx.stats,
    )
    .await
    {
        return done;
    }
    sleep_if_any(knobs.ttft).await;
    let base64 = body.encoding_format.as_deref() == Some("base64");
    let mut prompt_tokens = 0u32;
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            prompt_tokens = prompt_tokens.saturating_add(text::estimate_tokens(input.len()));
            let v = text::embedding_vector(input, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                wire::EmbeddingValue::Base64(text::base64_encode(&bytes))
            } else {
                wire::EmbeddingValue::Float(v)
            };
            wire::Embedding {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let out = serde_json::to_vec(&wire::EmbeddingList {
        object: "list",
        data,
        model: &body.model,
        usage: wire::EmbeddingUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    })
    .unwrap_or_default();
    send_json(stream, &out, &knobs, keep_alive, &ctx.stats).await
}

/// The byte strings to embed: a string, an array of strings, a token array, or an array
/// of token arrays (token arrays are hashed as their JSON text).
fn embedding_inputs(input: &Value) -> Option<Vec<Vec<u8>>> {
    match input {
        Value::String(s) => Some(vec![s.as_bytes().to_vec()]),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        ),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            Some(vec![input.to_string().into_bytes()])
        }
        Value::Array(items) if items.iter().all(Value::is_array) => {
            Some(items.iter().map(|i| i.to_string().into_bytes()).collect())
        }
        _ => None,
    }
}
