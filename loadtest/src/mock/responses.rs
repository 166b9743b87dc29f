//! OpenAI's Responses API: `POST /v1/responses` (text and function calls, streamed or not),
//! with the same text, pacing, faults and tool-call triggers as the other dialects.
//!
//! `previous_response_id` resolves to the responses this process created with `store` on
//! (OpenAI's default; the last [`REMEMBERED`] ids are kept); any other id is refused as OpenAI
//! refuses it: 400, `code: "previous_response_not_found"`. The mock keeps ids only, not
//! conversations: the answer is built from the request's own `input`.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use super::peer::Peer;
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::RequestKnobs;
use super::deliver::{fault_before_answer, send_events, send_json, EventStream, MidStreamError};
use super::dialect::Dialect;
use super::fault::Fault;
use super::handler::ServerContext;
use super::request::Request;
use super::respond::{random_id, sleep_if_any, sse_event, unix_now, write_json, Next};
use super::stats::Endpoint;
use super::text;
use super::tools::{self, PlannedCall, ToolSpec, ToolTrigger};

/// Bytes of arguments JSON per streamed `response.function_call_arguments.delta`.
const ARGUMENT_PIECE: usize = 8;

/// How many stored response ids `previous_response_id` can refer to.
pub const REMEMBERED: usize = 65_536;

/// The body of `POST /v1/responses` (the fields the mock reads or echoes).
#[derive(Debug, Deserialize)]
struct CreateRequest {
    model: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    user: Option<String>,
}

/// Ids of the responses created with `store` on, oldest forgotten first.
#[derive(Debug, Default)]
pub struct StoredResponses(Mutex<Stored>);

#[derive(Debug, Default)]
struct Stored {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl StoredResponses {
    /// Remembers `id`, forgetting the oldest beyond `capacity`.
    fn remember(&self, id: &str, capacity: usize) {
        if let Ok(mut s) = self.0.lock() {
            if s.ids.insert(id.to_string()) {
                s.order.push_back(id.to_string());
            }
            while s.order.len() > capacity {
                if let Some(old) = s.order.pop_front() {
                    s.ids.remove(&old);
                }
            }
        }
    }

    /// Whether `id` was remembered.
    fn contains(&self, id: &str) -> bool {
        self.0.lock().map(|s| s.ids.contains(id)).unwrap_or(false)
    }
}

/// The 400 OpenAI answers for a `previous_response_id` it does not have.
fn previous_response_not_found(id: &str) -> Vec<u8> {
    json!({"error": {
        "message": format!("Previous response with id '{id}' not found."),
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }})
    .to_string()
    .into_bytes()
}

/// Text of a message `content`: a string, or its `input_text` / `output_text` parts joined
/// by spaces.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("input_text" | "output_text")
                )
            })
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The text of the last user message of `input` (the whole string when it is one).
fn last_user_text(input: Option<&Value>) -> String {
    match input {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|i| i.get("content"))
            .map(content_text)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The outputs of the `function_call_output` items that end `input`, or `None` when it does
/// not end with one (the model has a tool result to answer).
fn trailing_tool_results(input: Option<&Value>) -> Option<String> {
    let items = input?.as_array()?;
    let outputs: Vec<String> = items
        .iter()
        .rev()
        .take_while(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .map(|i| i.get("output").map(content_text).unwrap_or_default())
        .collect();
    if outputs.is_empty() {
        return None;
    }
    Some(outputs.into_iter().rev().collect::<Vec<_>>().join(" "))
}

/// Estimated input tokens: the input, the instructions and the tool definitions.
fn input_tokens(body: &CreateRequest) -> u32 {
    let input = match &body.input {
        Some(Value::String(s)) => s.len(),
        Some(other) => other.to_string().len(),
        None => 0,
    };
    let chars = input
        + body.instructions.as_ref().map_or(0, String::len)
        + body
            .tools
            .as_ref()
            .map_or(0, |t| t.iter().map(|t| t.to_string().len()).sum());
    text::estimate_tokens(chars)
}

/// The calls to answer with. Function tools are flat (`{"type":"function","name",..}`);
/// `tool_choice` `none` turns calls off, `required` calls the first function, and
/// `{"type":"function","name"}` names the one to call.
fn plan_calls(
    body: &CreateRequest,
    prompt: &str,
    forced: Option<&str>,
    count: Option<u32>,
) -> Vec<PlannedCall> {
    let choice = body.tool_choice.as_ref();
    if choice.and_then(Value::as_str) == Some("none") {
        return Vec::new();
    }
    let specs: Vec<ToolSpec<'_>> = body
        .tools
        .iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| {
            Some(ToolSpec {
                name: t.get("name")?.as_str()?,
                schema: t.get("parameters"),
            })
        })
        .collect();
    let chosen = match choice {
        Some(Value::String(s)) if s == "required" => specs.first().map(|t| t.name),
        Some(c) if c.get("type").and_then(Value::as_str) == Some("function") => {
            c.get("name").and_then(Value::as_str)
        }
        _ => None,
    };
    let trigger = ToolTrigger {
        forced: forced.or(chosen),
        count,
    };
    tools::plan(&specs, prompt, trigger)
}

/// What the answer holds.
enum Content {
    /// Text tokens of one message (`msg_…`).
    Text { id: String, tokens: Vec<String> },
    /// Function calls: (`fc_…` item id, `call_…` id, call).
    Calls(Vec<(String, String, PlannedCall)>),
}

/// A response being rendered: its fixed fields and the request fields it echoes.
struct Answer {
    id: String,
    created_at: u64,
    model: String,
    echo: Value,
    input_tokens: u32,
    output_tokens: u32,
    /// `max_output_tokens` cut the text.
    incomplete: bool,
    content: Content,
}

impl Answer {
    fn usage(&self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        })
    }

    /// The `response` object with `status` and `output` (usage once the answer is done).
    fn response(&self, status: &str, output: Vec<Value>) -> Value {
        let done = !matches!(status, "in_progress" | "failed");
        let mut r = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": if status == "incomplete" {
                json!({"reason": "max_output_tokens"})
            } else {
                Value::Null
            },
            "model": self.model,
            "output": output,
            "previous_response_id": null,
            "truncation": "disabled",
            "usage": if done { self.usage() } else { Value::Null },
        });
        if let (Some(obj), Some(echo)) = (r.as_object_mut(), self.echo.as_object()) {
            obj.extend(echo.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        r
    }

    fn final_status(&self) -> &'static str {
        if self.incomplete {
            "incomplete"
        } else {
            "completed"
        }
    }

    /// The output items, finished.
    fn output(&self) -> Vec<Value> {
        match &self.content {
            Content::Text { id, tokens } => {
                vec![message_item(id, self.final_status(), &tokens.concat())]
            }
            Content::Calls(calls) => calls
                .iter()
                .map(|(id, call_id, c)| {
                    call_item(id, call_id, &c.name, &c.arguments.to_string(), "completed")
                })
                .collect(),
        }
    }

    /// The whole non-streamed `response`.
    fn body(&self) -> Vec<u8> {
        self.response(self.final_status(), self.output())
            .to_string()
            .into_bytes()
    }

    /// The stream: `response.created`, `response.in_progress`, the items' events (one paced
    /// event per token or arguments piece), then `response.completed` or
    /// `response.incomplete`. On `error-mid-stream`: `error` then `response.failed`.
    fn events(self) -> EventStream {
        let mut seq = Sequence(0);
        let mut lead = vec![
            seq.event(json!({"type": "response.created", "response": self.response("in_progress", vec![])})),
            seq.event(json!({"type": "response.in_progress", "response": self.response("in_progress", vec![])})),
        ];
        let mut paced = Vec::new();
        let mut tail = Vec::new();
        match &self.content {
            Content::Text { id, tokens } => {
                lead.push(seq.event(
                    json!({"type": "response.output_item.added", "output_index": 0,
                    "item": message_item(id, "in_progress", "")}),
                ));
                lead.push(
                    seq.event(json!({"type": "response.content_part.added", "item_id": id,
                    "output_index": 0, "content_index": 0, "part": text_part("")})),
                );
                for t in tokens {
                    paced.push(
                        seq.event(json!({"type": "response.output_text.delta", "item_id": id,
                        "output_index": 0, "content_index": 0, "delta": t, "logprobs": []})),
                    );
                }
                let text = tokens.concat();
                tail.push(
                    seq.event(json!({"type": "response.output_text.done", "item_id": id,
                    "output_index": 0, "content_index": 0, "text": text, "logprobs": []})),
                );
                tail.push(
                    seq.event(json!({"type": "response.content_part.done", "item_id": id,
                    "output_index": 0, "content_index": 0, "part": text_part(&text)})),
                );
                tail.push(seq.event(
                    json!({"type": "response.output_item.done", "output_index": 0,
                    "item": message_item(id, self.final_status(), &text)}),
                ));
            }
            Content::Calls(calls) => {
                for (index, (id, call_id, call)) in calls.iter().enumerate() {
                    let arguments = call.arguments.to_string();
                    let added = seq.event(json!({"type": "response.output_item.added",
                        "output_index": index,
                        "item": call_item(id, call_id, &call.name, "", "in_progress")}));
                    if index == 0 {
                        lead.push(added);
                    } else {
                        paced.push(added);
                    }
                    for piece in tools::pieces(&arguments, ARGUMENT_PIECE) {
                        paced.push(
                            seq.event(json!({"type": "response.function_call_arguments.delta",
                            "item_id": id, "output_index": index, "delta": piece})),
                        );
                    }
                    let done = [
                        seq.event(json!({"type": "response.function_call_arguments.done",
                            "item_id": id, "output_index": index, "name": call.name,
                            "arguments": arguments})),
                        seq.event(
                            json!({"type": "response.output_item.done", "output_index": index,
                            "item": call_item(id, call_id, &call.name, &arguments, "completed")}),
                        ),
                    ];
                    if index + 1 == calls.len() {
                        tail.extend(done);
                    } else {
                        paced.extend(done);
                    }
                }
            }
        }
        let end = json!({"type": format!("response.{}", self.final_status()),
            "response": self.response(self.final_status(), self.output())});
        tail.push(seq.event(end));
        // Sequence number of the event after `k` paced events, for an error cut there.
        let lead_len = lead.len() as u64;
        let failed = self.response("failed", Vec::new());
        let mid_stream_error = MidStreamError(Box::new(move |status, message, sent| {
            failure_events(&failed, lead_len + sent as u64, status, message)
        }));
        EventStream {
            lead,
            paced,
            tail,
            mid_stream_error: Some(mid_stream_error),
        }
    }
}

/// Numbers the events of one stream.
struct Sequence(u64);

impl Sequence {
    /// `event: TYPE\ndata: JSON\n\n` with the next `sequence_number`.
    fn event(&mut self, mut data: Value) -> Vec<u8> {
        if let Some(obj) = data.as_object_mut() {
            obj.insert("sequence_number".into(), json!(self.0));
        }
        self.0 += 1;
        let name = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string();
        sse_event(Some(&name), data.to_string().as_bytes())
    }
}

/// `error` (numbered `seq`) then `response.failed`, as OpenAI ends a stream that failed.
fn failure_events(failed: &Value, seq: u64, status: u16, message: &str) -> Vec<u8> {
    let code = if status == 429 {
        "rate_limit_exceeded"
    } else {
        "server_error"
    };
    let mut numbering = Sequence(seq);
    let mut out =
        numbering.event(json!({"type": "error", "code": code, "message": message, "param": null}));
    let mut response = failed.clone();
    response["error"] = json!({"code": code, "message": message});
    out.extend(numbering.event(json!({"type": "response.failed", "response": response})));
    out
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: &str, status: &str, text: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([text_part(text)])
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// The request fields a `response` repeats, with OpenAI's defaults.
fn echo(body: &CreateRequest) -> Value {
    let tools: Vec<Value> = body
        .tools
        .iter()
        .flatten()
        .map(|t| {
            let mut t = t.clone();
            if let Some(obj) = t.as_object_mut() {
                if obj.get("type").and_then(Value::as_str) == Some("function") {
                    for key in ["description", "parameters", "strict"] {
                        obj.entry(key).or_insert(Value::Null);
                    }
                }
            }
            t
        })
        .collect();
    let mut reasoning = json!({"effort": null, "summary": null});
    if let (Some(Value::Object(given)), Some(out)) = (&body.reasoning, reasoning.as_object_mut()) {
        out.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    json!({
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata.clone().unwrap_or_else(|| json!({})),
        "parallel_tool_calls": body.parallel_tool_calls.unwrap_or(true),
        "reasoning": reasoning,
        "store": body.store != Some(false),
        "temperature": body.temperature.unwrap_or(1.0),
        "text": body.text.clone().unwrap_or_else(|| json!({"format": {"type": "text"}})),
        "tool_choice": body.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        "tools": tools,
        "top_p": body.top_p.unwrap_or(1.0),
        "user": body.user,
    })
}

/// Builds the answer to `body` (no I/O): text or function calls, cut at `max_output_tokens`.
fn answer(body: &CreateRequest, forced: Option<&str>, knobs: &RequestKnobs) -> Answer {
    let input = body.input.as_ref();
    let prompt = last_user_text(input);
    let results = trailing_tool_results(input);
    let calls = if results.is_some() {
        Vec::new()
    } else {
        plan_calls(body, &prompt, forced, knobs.tool_calls)
    };
    let mut incomplete = false;
    let (content, output_tokens) = if calls.is_empty() {
        let mut count = knobs.tokens;
        if let Some(limit) = body.max_output_tokens {
            if limit < count {
                count = limit;
                incomplete = true;
            }
        }
        let tokens = match &results {
            Some(r) => text::tool_result_tokens(r, count),
            None => text::reply_or_scripted(knobs.reply, &prompt, count),
        };
        let n = u32::try_from(tokens.len()).unwrap_or(u32::MAX);
        let content = Content::Text {
            id: random_id("msg_", 24),
            tokens,
        };
        (content, n)
    } else {
        let n = calls
            .iter()
            .map(|c| text::estimate_tokens(c.arguments.to_string().len() + c.name.len()))
            .sum();
        let calls = calls
            .into_iter()
            .map(|c| (random_id("fc_", 24), random_id("call_", 24), c))
            .collect();
        (Content::Calls(calls), n)
    };
    Answer {
        id: random_id("resp_", 24),
        created_at: unix_now(),
        model: body.model.clone(),
        echo: echo(body),
        input_tokens: input_tokens(body),
        output_tokens,
        incomplete,
        content,
    }
}

/// `POST /v1/responses`.
pub async fn create(
    stream: &mut Peer<'_>,
    request: &Request,
    knobs: RequestKnobs,
    ctx: &ServerContext,
) -> std::io::Result<Next> {
    let keep_alive = request.keep_alive;
    let body: CreateRequest = match serde_json::from_slice(&request.body) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("We could not parse the JSON body of your request: {e}");
            return super::openai::bad_request(stream, &msg, keep_alive, ctx).await;
        }
    };
    if let Some(id) = &body.previous_response_id {
        if !ctx.stored_responses.contains(id) {
            ctx.stats.count_request(Endpoint::BadRequest);
            let out = previous_response_not_found(id);
            return write_json(stream, 400, &out, keep_alive, "").await;
        }
    }
    let streaming = body.stream.unwrap_or(false);
    ctx.stats.count_request(if streaming {
        Endpoint::ResponsesStream
    } else {
        Endpoint::Responses
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
    let answer = answer(&body, request.header("x-mock-tool-call"), &knobs);
    if body.store != Some(false) {
        ctx.stored_responses.remember(&answer.id, REMEMBERED);
    }
    if streaming {
        send_events(
            stream,
            answer.events(),
            &knobs,
            Dialect::OpenAi,
            keep_alive,
            &ctx.stats,
        )
        .await
    } else {
        sleep_if_any(knobs.ttft + knobs.itl * answer.output_tokens).await;
        send_json(stream, &answer.body(), &knobs, keep_alive, &ctx.stats).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mock::MockConfig;

    fn request(body: Value) -> CreateRequest {
        serde_json::from_value(body).unwrap()
    }

    fn knobs() -> RequestKnobs {
        RequestKnobs::from_config(&MockConfig::default())
    }

    /// SSE bytes → `[(event name, data)]`.
    fn parse(events: &[Vec<u8>]) -> Vec<(String, Value)> {
        let text: String = events
            .iter()
            .map(|e| String::from_utf8(e.clone()).unwrap())
            .collect();
        text.split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| {
                let (name, data) = b.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (name.strip_prefix("event: ").unwrap().to_string(), data)
            })
            .collect()
    }

    fn all(events: &EventStream) -> Vec<(String, Value)> {
        let mut v = events.lead.clone();
        v.extend(events.paced.iter().cloned());
        v.extend(events.tail.iter().cloned());
        parse(&v)
    }

    #[test]
    fn input_text_tool_results_and_calls_are_read_from_items() {
        let input = json!([
            {"role": "user", "content": "old"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather in"},
                {"type": "input_text", "text": "Paris?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"}
        ]);
        assert_eq!(last_user_text(Some(&input)), "weather in Paris?");
        assert_eq!(trailing_tool_results(Some(&input)).as_deref(), Some("18C"));
        assert_eq!(last_user_text(Some(&json!("hi"))), "hi");
        assert!(trailing_tool_results(Some(&json!("hi"))).is_none());

        let tools = json!([{"type": "web_search"},
            {"type": "function", "name": "get_weather", "parameters": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
        let body = request(json!({"model": "m", "input": "weather?", "tools": tools}));
        let calls = plan_calls(&body, "weather?", None, None);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, json!({"city": "Paris"}));
        let none = request(
            json!({"model": "m", "input": "weather?", "tools": tools, "tool_choice": "none"}),
        );
        assert!(plan_calls(&none, "weather?", None, None).is_empty());
        let named = request(json!({"model": "m", "input": "hi", "tools": tools,
            "tool_choice": {"type": "function", "name": "get_weather"}}));
        assert_eq!(plan_calls(&named, "hi", None, None).len(), 1);
        assert_eq!(plan_calls(&body, "hi", None, Some(2)).len(), 2);
    }

    #[test]
    fn text_answer_is_a_response_object() {
        let body = request(
            json!({"model": "m", "input": "hello world", "instructions": "Be brief.",
            "metadata": {"k": "v"}}),
        );
        let a = answer(&body, None, &knobs());
        let v: Value = serde_json::from_slice(&a.body()).unwrap();
        assert_eq!(v["object"], "response");
        assert!(v["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], "m");
        assert_eq!(v["instructions"], "Be brief.");
        assert_eq!(v["metadata"], json!({"k": "v"}));
        assert_eq!(v["tool_choice"], "auto");
        let msg = &v["output"][0];
        assert_eq!(msg["type"], "message");
        assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(msg["content"][0]["type"], "output_text");
        assert!(msg["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Echo: hello world"));
        assert_eq!(v["usage"]["output_tokens"], 16);
        assert_eq!(
            v["usage"]["total_tokens"],
            v["usage"]["input_tokens"].as_u64().unwrap() + 16
        );

        let short = request(json!({"model": "m", "input": "hi", "max_output_tokens": 3}));
        let v: Value = serde_json::from_slice(&answer(&short, None, &knobs()).body()).unwrap();
        assert_eq!(v["status"], "incomplete");
        assert_eq!(
            v["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(v["output"][0]["status"], "incomplete");
        assert_eq!(v["usage"]["output_tokens"], 3);
    }

    #[test]
    fn text_stream_follows_openai_event_order() {
        let body = request(json!({"model": "m", "input": "hi", "stream": true}));
        let mut k = knobs();
        k.tokens = 3;
        let events = answer(&body, None, &k).events();
        assert_eq!(events.paced.len(), 3);
        let evs = all(&events);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, (name, data)) in evs.iter().enumerate() {
            assert_eq!(data["sequence_number"], i as u64);
            assert_eq!(data["type"], name.as_str());
        }
        assert_eq!(evs[0].1["response"]["status"], "in_progress");
        assert_eq!(evs[0].1["response"]["usage"], Value::Null);
        assert_eq!(evs[7].1["text"], "Echo: hi hi");
        let done = &evs[10].1["response"];
        assert_eq!(done["output"][0]["content"][0]["text"], "Echo: hi hi");
        assert_eq!(done["usage"]["output_tokens"], 3);
    }

    #[test]
    fn function_call_stream_has_one_item_per_call() {
        let body = request(json!({"model": "m", "input": "weather?", "stream": true,
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object",
                "properties": {"location": {"type": "string"}}, "required": ["location"]}}]}));
        let mut k = knobs();
        k.tool_calls = Some(2);
        let a = answer(&body, None, &k);
        let whole: Value = serde_json::from_slice(&a.body()).unwrap();
        assert_eq!(whole["output"].as_array().unwrap().len(), 2);
        assert_eq!(whole["output"][1]["arguments"], "{\"location\":\"Tokyo\"}");
        let evs = all(&a.events());
        let added: Vec<(u64, Value)> = evs
            .iter()
            .filter(|(n, _)| n == "response.output_item.added")
            .map(|(_, d)| (d["output_index"].as_u64().unwrap(), d["item"].clone()))
            .collect();
        assert_eq!(added.len(), 2);
        assert_eq!(added[1].0, 1);
        assert_eq!(added[0].1["type"], "function_call");
        assert_eq!(added[0].1["arguments"], "");
        assert!(added[0].1["call_id"].as_str().unwrap().starts_with("call_"));
        let args: String = evs
            .iter()
            .filter(|(n, d)| {
                n == "response.function_call_arguments.delta" && d["output_index"] == 0
            })
            .map(|(_, d)| d["delta"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(args, "{\"location\":\"Paris\"}");
        let (last, data) = evs.last().unwrap();
        assert_eq!(last, "response.completed");
        assert_eq!(data["response"]["output"], whole["output"]);
        for (i, (_, d)) in evs.iter().enumerate() {
            assert_eq!(d["sequence_number"], i as u64);
        }
    }

    #[test]
    fn a_tool_result_is_answered_with_text() {
        let body = request(
            json!({"model": "m", "tools": [{"type": "function", "name": "get_weather"}],
            "input": [{"role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "sunny"}]}),
        );
        let v: Value = serde_json::from_slice(&answer(&body, None, &knobs()).body()).unwrap();
        assert!(v["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Tool result: sunny"));
    }

    #[test]
    fn error_mid_stream_ends_with_error_and_response_failed_in_sequence() {
        let body = request(json!({"model": "m", "input": "hi", "stream": true}));
        let events = answer(&body, None, &knobs()).events();
        let render = events.mid_stream_error.as_ref().unwrap();
        let cut = (render.0)(503, "boom", 8);
        let evs = parse(&[cut]);
        assert_eq!(evs[0].0, "error");
        assert_eq!(
            evs[0].1,
            json!({"type": "error", "sequence_number": 4 + 8, "code": "server_error",
                "message": "boom", "param": null})
        );
        assert_eq!(evs[1].0, "response.failed");
        assert_eq!(evs[1].1["sequence_number"], 13);
        assert_eq!(evs[1].1["response"]["status"], "failed");
        assert_eq!(
            evs[1].1["response"]["error"],
            json!({"code": "server_error", "message": "boom"})
        );
        let evs = parse(&[(render.0)(429, "slow down", 0)]);
        assert_eq!(evs[0].1["code"], "rate_limit_exceeded");
    }

    #[test]
    fn previous_response_ids_resolve_only_when_stored() {
        let stored = StoredResponses::default();
        stored.remember("resp_a", 2);
        stored.remember("resp_b", 2);
        assert!(stored.contains("resp_a"));
        stored.remember("resp_c", 2);
        assert!(!stored.contains("resp_a"), "the oldest is forgotten");
        assert!(stored.contains("resp_c"));
        let v: Value = serde_json::from_slice(&previous_response_not_found("resp_x")).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "Previous response with id 'resp_x' not found.",
                "type": "invalid_request_error", "param": "previous_response_id",
                "code": "previous_response_not_found"}})
        );
    }
}
