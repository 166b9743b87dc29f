//! The conformance suite: every (client format, provider format) pair, through the real
//! binary and mockllm, for plain text, multi-turn, parallel tool calls, tool results,
//! images, JSON mode and errors, each streamed and not.
//!
//! Each case is a golden transcript in `tests/golden/conformance/<client>-to-<provider>.json`:
//! the request the client sent, the request the provider received (method, path, query, the
//! headers that matter, body), the provider's answer (replayed from the received request
//! against mockllm, which answers deterministically), and the answer the client got. Ids and
//! timestamps are normalized. The provider's answer is also run through the library's
//! `Bridge` in-process, which must give exactly what the binary sent the client.
//!
//! `INFERGATE_BLESS=1 cargo test --test conformance` rewrites the transcripts (review the diff).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use infergate::translate::{for_each_event, Bridge};
use infergate::wire::WireApi;
use serde_json::{json, Map, Value};

const UPSTREAM_KEY: &str = "sk-conformance-upstream";
const AWS_KEY_ID: &str = "AKIDCONFORMANCE";
const AWS_SECRET: &str = "conformance-secret-key";

const SCENARIOS: [&str; 7] = [
    "text",
    "multi_turn",
    "parallel_tools",
    "tool_results",
    "image",
    "json",
    "error",
];

/// A 1×1 PNG.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

fn config(mock: &str) -> String {
    format!(
        r#"
[providers.openai]
kind = "openai"
base_url = "http://{mock}/v1"
api_key_env = "CONFORMANCE_KEY"
forward_headers = ["x-mock-*"]

[providers.anthropic]
kind = "anthropic"
base_url = "http://{mock}/v1"
api_key_env = "CONFORMANCE_KEY"
forward_headers = ["x-mock-*"]

[providers.gemini]
kind = "gemini"
base_url = "http://{mock}/v1beta"
api_key_env = "CONFORMANCE_KEY"
forward_headers = ["x-mock-*"]

[providers.bedrock]
kind = "bedrock"
base_url = "http://{mock}"
region = "us-east-1"
forward_headers = ["x-mock-*"]

# The suite checks how structured-output requests and answers cross dialects; mockllm's
# echo does not follow schemas, and enforcing them is tests/json_schema.rs's job.
[models."m-openai"]
targets = [{{ provider = "openai", model = "gpt-upstream" }}]
enforce_requested_schema = false
[models."m-anthropic"]
targets = [{{ provider = "anthropic", model = "claude-upstream" }}]
enforce_requested_schema = false
[models."m-gemini"]
targets = [{{ provider = "gemini", model = "gemini-upstream" }}]
enforce_requested_schema = false
[models."m-bedrock"]
targets = [{{ provider = "bedrock", model = "anthropic.claude-upstream-v1:0" }}]
enforce_requested_schema = false
"#
    )
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

fn answer_schema() -> Value {
    json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": false})
}

/// The client's request for `scenario` in `client`'s format.
fn client_request(client: &str, scenario: &str, model: &str, stream: bool) -> Value {
    let mut v = match client {
        "chat" => chat_request(scenario),
        "messages" => messages_request(scenario),
        "responses" => responses_request(scenario),
        _ => unreachable!(),
    };
    v["model"] = json!(model);
    if stream {
        v["stream"] = json!(true);
        if client == "chat" {
            v["stream_options"] = json!({"include_usage": true});
        }
    }
    v
}

fn chat_request(scenario: &str) -> Value {
    let user = |t: &str| json!({"role": "user", "content": t});
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": weather_schema()}}]);
    match scenario {
        "text" | "error" => {
            json!({"messages": [user("Say hello to the gateway")], "max_completion_tokens": 64})
        }
        "multi_turn" => json!({"messages": [
            {"role": "system", "content": "You are terse."},
            user("Hi there"),
            {"role": "assistant", "content": "Hello! How can I help?"},
            user("Tell me a short joke")
        ], "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "max_completion_tokens": 64}),
        "parallel_tools" => {
            json!({"messages": [user("What is the weather in Paris and Tokyo?")], "tools": tools, "tool_choice": "auto", "max_completion_tokens": 64})
        }
        "tool_results" => json!({"messages": [
            user("What is the weather in Paris?"),
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}
        ], "tools": tools, "max_completion_tokens": 64}),
        "image" => json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe this image"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}")}}
        ]}], "max_completion_tokens": 64}),
        "json" => {
            json!({"messages": [user("Answer in JSON please")], "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": answer_schema(), "strict": true}}, "max_completion_tokens": 64})
        }
        _ => unreachable!(),
    }
}

fn messages_request(scenario: &str) -> Value {
    let user = |t: &str| json!({"role": "user", "content": t});
    let tools = json!([{"name": "get_weather", "description": "Current weather in a city", "input_schema": weather_schema()}]);
    let mut v = match scenario {
        "text" | "error" => json!({"messages": [user("Say hello to the gateway")]}),
        "multi_turn" => json!({"system": "You are terse.", "messages": [
            user("Hi there"),
            {"role": "assistant", "content": "Hello! How can I help?"},
            user("Tell me a short joke")
        ], "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"]}),
        "parallel_tools" => {
            json!({"messages": [user("What is the weather in Paris and Tokyo?")], "tools": tools, "tool_choice": {"type": "auto"}})
        }
        "tool_results" => json!({"messages": [
            user("What is the weather in Paris?"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C and sunny"}]}
        ], "tools": tools}),
        "image" => json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Describe this image"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
        ]}]}),
        "json" => {
            json!({"messages": [user("Answer in JSON please")], "output_config": {"format": {"type": "json_schema", "schema": answer_schema()}}})
        }
        _ => unreachable!(),
    };
    v["max_tokens"] = json!(64);
    v
}

fn responses_request(scenario: &str) -> Value {
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Current weather in a city", "parameters": weather_schema()}]);
    let mut v = match scenario {
        "text" | "error" => json!({"input": "Say hello to the gateway"}),
        "multi_turn" => json!({"instructions": "You are terse.", "input": [
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a short joke"}
        ], "temperature": 0.5, "top_p": 0.9}),
        "parallel_tools" => {
            json!({"input": "What is the weather in Paris and Tokyo?", "tools": tools, "tool_choice": "auto"})
        }
        "tool_results" => json!({"input": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C and sunny"}
        ], "tools": tools}),
        "image" => json!({"input": [{"role": "user", "content": [
            {"type": "input_text", "text": "Describe this image"},
            {"type": "input_image", "image_url": format!("data:image/png;base64,{PNG_B64}")}
        ]}]}),
        "json" => {
            json!({"input": "Answer in JSON please", "text": {"format": {"type": "json_schema", "name": "answer", "schema": answer_schema(), "strict": true}}})
        }
        _ => unreachable!(),
    };
    v["max_output_tokens"] = json!(64);
    v
}

fn client_path(client: &str) -> &'static str {
    match client {
        "chat" => "/v1/chat/completions",
        "messages" => "/v1/messages",
        "responses" => "/v1/responses",
        _ => unreachable!(),
    }
}

fn wire_of(name: &str) -> WireApi {
    match name {
        "chat" => WireApi::Chat,
        "messages" | "anthropic" => WireApi::Messages,
        "responses" => WireApi::Responses,
        "gemini" => WireApi::Gemini,
        "bedrock" => WireApi::Converse,
        _ => unreachable!(),
    }
}

/// The wire format the provider is spoken to for this client (OpenAI serves Responses itself).
fn provider_wire(client: &str, provider: &str) -> WireApi {
    match (client, provider) {
        ("responses", "openai") => WireApi::Responses,
        (_, "openai") => WireApi::Chat,
        (_, p) => wire_of(p),
    }
}

/// Values that change per call.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            for (k, val) in obj.iter_mut() {
                match k.as_str() {
                    "id" | "call_id" | "tool_call_id" | "tool_use_id" | "toolUseId" | "item_id"
                    | "request_id" | "system_fingerprint" | "responseId"
                        if val.is_string() =>
                    {
                        *val = json!("<id>")
                    }
                    "created" | "created_at" | "completed_at" | "latencyMs" if val.is_number() => {
                        *val = json!(0)
                    }
                    _ => normalize(val),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// A body as JSON: SSE text as `[{"event"?, "data"}]`, AWS event-stream frames as
/// `[{"frame": {headers}, "payload": json}]`, JSON as itself, anything else as a string.
fn body_value(content_type: &str, body: &[u8]) -> Value {
    let mut v = if content_type.starts_with("text/event-stream") {
        let mut events = Vec::new();
        let mut scratch = Vec::new();
        for_each_event(body, &mut scratch, |name, data| {
            let mut e = Map::new();
            if let Some(n) = name {
                e.insert("event".into(), json!(String::from_utf8_lossy(n)));
            }
            let d = serde_json::from_slice(data)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(data)));
            e.insert("data".into(), d);
            events.push(Value::Object(e));
            Ok(())
        })
        .unwrap();
        Value::Array(events)
    } else if content_type.starts_with("application/vnd.amazon.eventstream") {
        let mut frames = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let (frame, used) = infergate::translate::decode_frame(&body[at..])
                .unwrap()
                .expect("a whole frame");
            let mut headers = Map::new();
            for name in [
                ":message-type",
                ":event-type",
                ":exception-type",
                ":content-type",
            ] {
                if let Some(v) = frame.str_header(name) {
                    headers.insert(name.into(), json!(v));
                }
            }
            let payload = serde_json::from_slice(frame.payload())
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(frame.payload())));
            frames.push(json!({"frame": headers, "payload": payload}));
            at += used;
        }
        Value::Array(frames)
    } else {
        serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)))
    };
    normalize(&mut v);
    v
}

/// The headers of an upstream request that the transcript keeps (credentials normalized
/// to their shape).
fn kept_headers(headers: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in headers.as_object().unwrap() {
        let v = v.as_str().unwrap();
        let kept = match k.as_str() {
            "authorization" if v.starts_with("AWS4-HMAC-SHA256 ") => {
                let cred = v
                    .split("Credential=")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap();
                let parts: Vec<&str> = cred.split('/').collect();
                let signed = v
                    .split("SignedHeaders=")
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .next()
                    .unwrap();
                json!(format!(
                    "AWS4-HMAC-SHA256 Credential={}/<date>/{}/{}/{}, SignedHeaders={signed}, Signature=<sig>",
                    parts[0], parts[2], parts[3], parts[4]
                ))
            }
            "authorization" | "x-api-key" | "api-key" | "x-goog-api-key" | "anthropic-version"
            | "content-type" | "accept" => json!(v),
            "x-amz-date" => json!("<date>"),
            _ => continue,
        };
        out.insert(k.clone(), kept);
    }
    Value::Object(out)
}

/// Sends `request` to the mock exactly as the gateway did, to see the provider's answer.
fn replay(mock: &str, last: &Value, raw_body: &[u8]) -> RawResponse {
    let query = last["query"].as_str().unwrap();
    let target = if query.is_empty() {
        last["path"].as_str().unwrap().to_string()
    } else {
        format!("{}?{query}", last["path"].as_str().unwrap())
    };
    let mut req = format!("POST {target} HTTP/1.1\r\n");
    for (k, v) in last["headers"].as_object().unwrap() {
        if matches!(
            k.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            continue;
        }
        req.push_str(&format!("{k}: {}\r\n", v.as_str().unwrap()));
    }
    req.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        raw_body.len()
    ));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(raw_body);
    raw_request_bytes(mock, &bytes)
}

/// What the library's bridge makes of the provider's answer (must equal the binary's).
fn bridged(
    bridge: Bridge,
    alias: &str,
    stream: bool,
    include_usage: bool,
    client_request: &[u8],
    up: &RawResponse,
) -> (u16, Value) {
    let ct = up.header("content-type").unwrap_or_default();
    if !(200..300).contains(&up.status) {
        let (status, body) = bridge.error(
            up.status,
            up.header("x-amzn-errortype").as_deref(),
            &up.body,
        );
        return (status, body_value("application/json", &body));
    }
    if !stream {
        let t = bridge.response(&up.body, alias, client_request).unwrap();
        return (up.status, body_value("application/json", &t.body));
    }
    let mut t = bridge
        .stream(alias, include_usage, client_request)
        .unwrap()
        .expect("a translator");
    let mut out = Vec::new();
    if ct.starts_with("application/vnd.amazon.eventstream") {
        let mut at = 0;
        while at < up.body.len() {
            let (frame, used) = infergate::translate::decode_frame(&up.body[at..])
                .unwrap()
                .unwrap();
            let name = if frame.message_type() == Some("exception") {
                format!("exception:{}", frame.exception_type().unwrap_or("unknown"))
            } else {
                frame.event_type().unwrap_or("").to_string()
            };
            t.push_event(Some(name.as_bytes()), frame.payload(), &mut out)
                .unwrap();
            at += used;
        }
    } else {
        let mut scratch = Vec::new();
        for_each_event(&up.body, &mut scratch, |name, data| {
            t.push_event(name, data, &mut out)
        })
        .unwrap();
    }
    t.finish(&mut out);
    (up.status, body_value("text/event-stream", &out))
}

/// Runs every scenario of one pair and checks (or blesses) its transcript.
fn run_pair(client: &str, provider: &str) {
    let m = Mock::start(&["--tokens", "6"]);
    let g = Gateway::start_with_env(
        &config(&m.addr),
        Driver::Uring,
        &[
            ("CONFORMANCE_KEY", UPSTREAM_KEY),
            ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ],
    );
    let alias = format!("m-{provider}");
    let bridge = Bridge::new(wire_of(client), provider_wire(client, provider));
    let mut cases = Map::new();
    for scenario in SCENARIOS {
        for stream in [false, true] {
            let name = if stream {
                format!("{scenario}_stream")
            } else {
                scenario.to_string()
            };
            let req = client_request(client, scenario, &alias, stream);
            let mut headers = vec![("anthropic-version", "2023-06-01")];
            match scenario {
                "parallel_tools" => headers.push(("x-mock-tool-calls", "2")),
                "error" => headers.push(("x-mock-fault", "status:400")),
                _ => {}
            }
            let resp = post_json(&g.addr, client_path(client), &req.to_string(), &headers);
            let ct = resp.header("content-type").unwrap_or_default();
            let client_response =
                json!({"status": resp.status, "body": body_value(&ct, &resp.body)});
            let last = m.last_request();
            let raw_up_body = serde_json::to_vec(&last["body"]).unwrap();
            let up = replay(&m.addr, &last, &raw_up_body);
            let up_ct = up.header("content-type").unwrap_or_default();
            let mut up_body = last["body"].clone();
            normalize(&mut up_body);
            let upstream_request = json!({
                "method": last["method"],
                "path": last["path"],
                "query": last["query"],
                "headers": kept_headers(&last["headers"]),
                "body": up_body,
            });
            let upstream_response =
                json!({"status": up.status, "body": body_value(&up_ct, &up.body)});
            if !bridge.is_passthrough() {
                let include_usage = client == "chat";
                let (status, body) = bridged(
                    bridge,
                    &alias,
                    stream,
                    include_usage,
                    req.to_string().as_bytes(),
                    &up,
                );
                assert_eq!(
                    json!({"status": status, "body": body}),
                    client_response,
                    "{client}->{provider} {name}: the binary's answer differs from the bridge's"
                );
            }
            if scenario != "error" {
                assert_eq!(
                    resp.status,
                    200,
                    "{client}->{provider} {name}: {}\n{}",
                    resp.body_str(),
                    g.stderr()
                );
            } else {
                assert_eq!(
                    resp.status,
                    400,
                    "{client}->{provider} {name}: {}",
                    resp.body_str()
                );
            }
            let mut client_req = req.clone();
            normalize(&mut client_req);
            cases.insert(
                name,
                json!({
                    "client_request": client_req,
                    "upstream_request": upstream_request,
                    "upstream_response": upstream_response,
                    "client_response": client_response,
                }),
            );
        }
    }
    let got = json!({"client": client, "provider": provider, "cases": cases});
    let path = format!(
        "{}/tests/golden/conformance/{client}-to-{provider}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("INFERGATE_BLESS").is_some() {
        std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_slice(
        &std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (bless with INFERGATE_BLESS=1)")),
    )
    .unwrap();
    for (name, want_case) in want["cases"].as_object().unwrap() {
        let got_case = &got["cases"][name];
        for part in [
            "client_request",
            "upstream_request",
            "upstream_response",
            "client_response",
        ] {
            assert_eq!(
                got_case[part], want_case[part],
                "{client}->{provider} {name}: {part} differs from the golden transcript"
            );
        }
    }
    assert_eq!(
        got["cases"].as_object().unwrap().len(),
        want["cases"].as_object().unwrap().len()
    );
}

macro_rules! pairs {
    ($($name:ident: $client:literal -> $provider:literal;)*) => {$(
        #[test]
        fn $name() {
            run_pair($client, $provider);
        }
    )*};
}

pairs! {
    chat_to_openai: "chat" -> "openai";
    chat_to_anthropic: "chat" -> "anthropic";
    chat_to_gemini: "chat" -> "gemini";
    chat_to_bedrock: "chat" -> "bedrock";
    messages_to_openai: "messages" -> "openai";
    messages_to_anthropic: "messages" -> "anthropic";
    messages_to_gemini: "messages" -> "gemini";
    messages_to_bedrock: "messages" -> "bedrock";
    responses_to_openai: "responses" -> "openai";
    responses_to_anthropic: "responses" -> "anthropic";
    responses_to_gemini: "responses" -> "gemini";
    responses_to_bedrock: "responses" -> "bedrock";
}
