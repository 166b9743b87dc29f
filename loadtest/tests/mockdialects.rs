//! mockllm's Anthropic and Gemini dialects, OpenAI tool calls, `/mock/last-request` and
//! `streams_cancelled`, end to end with curl: exact shapes, streamed and not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{curl, split_head, Mock};
use serde_json::{json, Value};

const ANTHROPIC: [&str; 2] = ["x-api-key: test-key", "anthropic-version: 2023-06-01"];

fn post(mock: &Mock, path: &str, body: &str, headers: &[&str]) -> (String, String) {
    let url = format!("{}{path}", mock.url);
    let mut args = vec!["-sS", "-i", "-H", "content-type: application/json"];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.extend(["--data-binary", body, url.as_str()]);
    split_head(&curl(&args).stdout)
}

fn anthropic(mock: &Mock, body: &Value, extra: &[&str]) -> (String, String) {
    let headers: Vec<&str> = ANTHROPIC.iter().chain(extra).copied().collect();
    post(mock, "/v1/messages", &body.to_string(), &headers)
}

/// SSE events as (event name, data JSON); `[DONE]` becomes a string.
fn events(body: &str) -> Vec<(Option<String>, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|_| Value::from(d));
                }
            }
            (name, data)
        })
        .collect()
}

fn weather_tool_anthropic() -> Value {
    json!({"name": "get_weather", "description": "weather", "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["location", "days"]}})
}

#[test]
fn anthropic_message_has_exact_shape() {
    let mock = Mock::start(&[]);
    let body = json!({"model": "claude-x", "max_tokens": 100, "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]});
    let (head, out) = anthropic(&mock, &body, &["x-mock-tokens: 3"]);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    let input = v["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input > 0);
    let expected = json!({
        "id": v["id"], "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Echo: hello there"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": 3,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}});
    assert_eq!(v, expected);

    let mut short = body.clone();
    short["max_tokens"] = json!(2);
    let (_, out) = anthropic(&mock, &short, &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 2);
    assert_eq!(mock.stats()["requests"]["anthropic_messages"], 2);
}

#[test]
fn anthropic_stream_has_every_event_in_order() {
    let mock = Mock::start(&[]);
    let body = json!({"model": "claude-x", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi you"}]});
    let (head, out) = anthropic(&mock, &body, &["x-mock-tokens: 3"]);
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let evs = events(&out);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &evs {
        assert_eq!(data["type"], name.as_deref().unwrap());
    }
    let start = &evs[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(
        evs[1].1,
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    let text: String = evs[3..6]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(text, "Echo: hi you");
    assert_eq!(
        evs[7].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 3}})
    );
    assert!(out.contains("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    assert_eq!(mock.stats()["requests"]["anthropic_messages_stream"], 1);
}

#[test]
fn anthropic_tool_use_then_tool_result() {
    let mock = Mock::start(&[]);
    let body = json!({"model": "claude-x", "max_tokens": 100, "tools": [weather_tool_anthropic()],
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}]});
    let (_, out) = anthropic(&mock, &body, &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"location": "Paris", "days": 1}));

    // Streamed: empty input at the start, then input_json_delta pieces.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, out) = anthropic(&mock, &streamed, &[]);
    let evs = events(&out);
    let start = &evs[1].1["content_block"];
    assert_eq!(start["type"], "tool_use");
    assert_eq!(start["input"], json!({}));
    let json_text: String = evs
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(evs.len() > 6, "input sent in several pieces");
    let input: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(input, json!({"location": "Paris", "days": 1}));
    let delta = evs
        .iter()
        .find(|(n, _)| n.as_deref() == Some("message_delta"));
    assert_eq!(delta.unwrap().1["delta"]["stop_reason"], "tool_use");

    // A header forces a named tool, whatever the prompt.
    let plain = json!({"model": "claude-x", "max_tokens": 100, "tools": [weather_tool_anthropic()],
        "messages": [{"role": "user", "content": "hello"}]});
    let (_, out) = anthropic(&mock, &plain, &["x-mock-tool-call: get_weather"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["content"][0]["name"], "get_weather");
    let (_, out) = anthropic(&mock, &plain, &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stop_reason"], "end_turn");

    let result = json!({"model": "claude-x", "max_tokens": 100, "tools": [weather_tool_anthropic()],
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"],
                "content": [{"type": "text", "text": "18C sunny"}]}]}]});
    let (_, out) = anthropic(&mock, &result, &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
    let text = v["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Tool result: 18C sunny"), "{text}");
}

#[test]
fn anthropic_headers_errors_and_count_tokens() {
    let mock = Mock::start(&[]);
    let body =
        r#"{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let (head, out) = post(&mock, "/v1/messages", body, &["x-api-key: k"]);
    assert!(head.starts_with("http/1.1 400"), "{head}");
    let mut v: Value = serde_json::from_str(&out).unwrap();
    let request_id = v["request_id"].take();
    assert!(request_id.as_str().unwrap().starts_with("req_"));
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "invalid_request_error",
               "message": "anthropic-version: header is required"}, "request_id": null})
    );
    let (head, out) = post(
        &mock,
        "/v1/messages",
        body,
        &["anthropic-version: 2023-06-01"],
    );
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");

    let no_max = r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
    let (head, out) = post(&mock, "/v1/messages", no_max, &ANTHROPIC);
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(out.contains("max_tokens"));

    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        let fault = format!("x-mock-fault: status:{status}");
        let headers = [ANTHROPIC[0], ANTHROPIC[1], fault.as_str()];
        let (head, out) = post(&mock, "/v1/messages", body, &headers);
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind);
        assert!(v["error"]["message"].is_string());
        if status == 429 {
            assert!(head.contains("retry-after: 1"));
        }
    }

    let (head, out) = post(&mock, "/v1/messages/count_tokens", body, &ANTHROPIC);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    let stats = mock.stats();
    assert_eq!(stats["requests"]["anthropic_count_tokens"], 1);
    assert_eq!(stats["requests"]["bad_request"], 3);
    assert_eq!(stats["faults"]["status"], 6);
}

#[test]
fn anthropic_mid_stream_faults() {
    let mock = Mock::start(&[]);
    let body = json!({"model": "claude-x", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let (head, out) = anthropic(
        &mock,
        &body,
        &["x-mock-fault: error-mid-stream:529", "x-mock-tokens: 6"],
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let evs = events(&out);
    let (name, data) = evs.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    let deltas = evs
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .count();
    assert_eq!(deltas, 3);
    assert!(!out.contains("message_stop"));

    let url = format!("{}/v1/messages", mock.url);
    let raw = body.to_string();
    let out = curl(&[
        "-sS",
        "-H",
        ANTHROPIC[0],
        "-H",
        ANTHROPIC[1],
        "-H",
        "x-mock-fault: reset-mid-stream",
        "--data-binary",
        &raw,
        &url,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("event: message_start"));
    let out = curl(&[
        "-sS",
        "-H",
        ANTHROPIC[0],
        "-H",
        ANTHROPIC[1],
        "-H",
        "x-mock-fault: reset",
        "--data-binary",
        &raw,
        &url,
    ]);
    assert!(!out.status.success() && out.stdout.is_empty());
    let faults = &mock.stats()["faults"];
    assert_eq!(faults["error_mid_stream"], 1);
    assert_eq!(faults["reset_mid_stream"], 1);
    assert_eq!(faults["reset"], 1);
}

fn openai_weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

#[test]
fn openai_tool_calls_single_parallel_and_result() {
    let mock = Mock::start(&[]);
    let body = json!({"model": "gpt-4o-mini", "tools": [openai_weather_tool()],
        "messages": [{"role": "user", "content": "weather in Paris?"}]});
    let (_, out) = post(&mock, "/v1/chat/completions", &body.to_string(), &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);

    // Streamed and parallel: index, id, type and name first, then argument pieces.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, out) = post(
        &mock,
        "/v1/chat/completions",
        &streamed.to_string(),
        &["x-mock-tool-calls: 2"],
    );
    let evs = events(&out);
    assert_eq!(evs.last().unwrap().1, "[DONE]");
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for (_, chunk) in &evs[..evs.len() - 1] {
        let choice = &chunk["choices"][0];
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = tc["index"].as_u64().unwrap() as usize;
            if let Some(id) = tc["id"].as_str() {
                assert_eq!(index, calls.len());
                assert_eq!(tc["type"], "function");
                let name = tc["function"]["name"].as_str().unwrap().to_string();
                calls.push((id.to_string(), name, String::new()));
            } else {
                assert!(tc.get("id").is_none() && tc["function"].get("name").is_none());
            }
            calls[index].2 += tc["function"]["arguments"].as_str().unwrap();
        }
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].0, calls[1].0);
    assert_eq!(calls[0].2, r#"{"city":"Paris"}"#);
    assert_eq!(calls[1].2, r#"{"city":"Tokyo"}"#);
    let first = &evs[0].1["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert_eq!(first["tool_calls"][0]["function"]["arguments"], "");

    let result = json!({"model": "gpt-4o-mini", "tools": [openai_weather_tool()], "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"temp\": 18}"}]});
    let (_, out) = post(&mock, "/v1/chat/completions", &result.to_string(), &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("Tool result: {\"temp\": 18}"), "{text}");
    let (_, out) = post(&mock, "/v1/chat/completions", &result.to_string(), &[]);
    assert!(!out.contains("tool_calls"));

    let mut none = body.clone();
    none["tool_choice"] = json!("none");
    let (_, out) = post(&mock, "/v1/chat/completions", &none.to_string(), &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let plain = json!({"model": "gpt-4o-mini", "tools": [openai_weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "hello"}]});
    let (_, out) = post(&mock, "/v1/chat/completions", &plain.to_string(), &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

fn gemini_url(model_method: &str) -> String {
    format!("/v1beta/models/{model_method}")
}

#[test]
fn gemini_generate_and_stream() {
    let mock = Mock::start(&[]);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi gem"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"temperature": 0.1}});
    let (head, out) = post(
        &mock,
        &gemini_url("gemini-2.0-flash:generateContent"),
        &body.to_string(),
        &["x-goog-api-key: k", "x-mock-tokens: 3"],
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let candidate = &v["candidates"][0];
    assert_eq!(
        candidate["content"],
        json!({"role": "model", "parts": [{"text": "Echo: hi gem"}]})
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    let usage = &v["usageMetadata"];
    let prompt = usage["promptTokenCount"].as_u64().unwrap();
    assert_eq!(usage["candidatesTokenCount"], 3);
    assert_eq!(usage["totalTokenCount"], prompt + 3);
    assert_eq!(v["modelVersion"], "gemini-2.0-flash");

    let mut limited = body.clone();
    limited["generationConfig"] = json!({"maxOutputTokens": 2});
    let (_, out) = post(
        &mock,
        &gemini_url("gemini-2.0-flash:generateContent?key=k"),
        &limited.to_string(),
        &[],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");

    let (head, out) = post(
        &mock,
        &gemini_url("gemini-2.0-flash:streamGenerateContent?alt=sse&key=k"),
        &body.to_string(),
        &["x-mock-tokens: 3"],
    );
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(!out.contains("[DONE]"));
    let evs = events(&out);
    assert_eq!(evs.len(), 3);
    let text: String = evs
        .iter()
        .map(|(name, d)| {
            assert!(name.is_none());
            d["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "Echo: hi gem");
    assert_eq!(evs[0].1["candidates"][0].get("finishReason"), None);
    assert_eq!(evs[2].1["candidates"][0]["finishReason"], "STOP");
    assert_eq!(evs[2].1["usageMetadata"]["candidatesTokenCount"], 3);

    // Without alt=sse the stream is one JSON array.
    let (_, out) = post(
        &mock,
        &gemini_url("gemini-2.0-flash:streamGenerateContent?key=k"),
        &body.to_string(),
        &["x-mock-tokens: 3"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let stats = mock.stats();
    assert_eq!(stats["requests"]["gemini_generate"], 2);
    assert_eq!(stats["requests"]["gemini_stream"], 2);
}

#[test]
fn gemini_function_calls_results_and_errors() {
    let mock = Mock::start(&[]);
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "parameters": {
        "type": "OBJECT", "properties": {"location": {"type": "STRING"}}, "required": ["location"]}}]}]);
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "weather in Paris?"}]}],
        "tools": tools});
    let path = gemini_url("gemini-2.0-flash:generateContent?key=k");
    let (_, out) = post(&mock, &path, &body.to_string(), &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}])
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");

    let stream_path = gemini_url("gemini-2.0-flash:streamGenerateContent?alt=sse&key=k");
    let (_, out) = post(
        &mock,
        &stream_path,
        &body.to_string(),
        &["x-mock-tool-calls: 2"],
    );
    let evs = events(&out);
    let calls: Vec<&Value> = evs
        .iter()
        .map(|(_, d)| &d["candidates"][0]["content"]["parts"][0]["functionCall"])
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1]["args"]["location"], "Tokyo");

    let result = json!({"contents": [
        {"role": "user", "parts": [{"text": "weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]}],
        "tools": tools});
    let (_, out) = post(&mock, &path, &result.to_string(), &[]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let text = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.starts_with("Tool result: {\"temp\":18}"), "{text}");

    let no_key = gemini_url("gemini-2.0-flash:generateContent");
    let (head, out) = post(&mock, &no_key, &body.to_string(), &[]);
    assert!(head.starts_with("http/1.1 403"), "{head}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["code"], 403);
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");
    assert!(v["error"]["message"].is_string());

    let (head, out) = post(
        &mock,
        &path,
        &body.to_string(),
        &["x-mock-fault: status:429"],
    );
    assert!(head.starts_with("http/1.1 429"), "{head}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["error"],
        json!({"code": 429, "message": "mockllm injected fault: status 429", "status": "RESOURCE_EXHAUSTED"})
    );
    let (_, out) = post(
        &mock,
        &stream_path,
        r#"{"contents":[{"parts":[{"text":"x"}]}]}"#,
        &["x-mock-fault: error-mid-stream:503", "x-mock-tokens: 4"],
    );
    let evs = events(&out);
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[2].1["error"]["status"], "UNAVAILABLE");
    let (head, _) = post(&mock, &path, "{not json", &[]);
    assert!(head.starts_with("http/1.1 400"), "{head}");
}

#[test]
fn last_request_returns_what_was_sent() {
    let mock = Mock::start(&[]);
    let out = curl(&["-sS", "-i", &format!("{}/mock/last-request", mock.url)]);
    let (head, _) = split_head(&out.stdout);
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let body = json!({"model": "claude-x", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]});
    anthropic(&mock, &body, &["X-Custom: one"]);
    let out = curl(&["-sS", &format!("{}/mock/last-request", mock.url)]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/v1/messages");
    assert_eq!(v["headers"]["x-api-key"], "test-key");
    assert_eq!(v["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(v["headers"]["x-custom"], "one");
    assert_eq!(v["body"], body);
    let typed: loadtest::mock::LastRequest = serde_json::from_value(v).unwrap();
    assert_eq!(typed.query, "");
    // Reading stats does not replace it.
    mock.stats();
    let out = curl(&["-sS", &format!("{}/mock/last-request", mock.url)]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"], "/v1/messages");
}

#[test]
fn client_leaving_a_stream_is_counted() {
    let mock = Mock::start(&[]);
    let addr = mock.url.trim_start_matches("http://").to_string();
    let body = json!({"model": "claude-x", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\n\
         x-mock-tokens: 100\r\nx-mock-itl-ms: 20\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stats = mock.stats();
        if stats["streams_cancelled"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "not counted: {stats}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A stream that ends normally is not counted.
    let mut done = serde_json::from_str::<Value>(&body).unwrap();
    done["max_tokens"] = json!(3);
    anthropic(&mock, &done, &[]);
    assert_eq!(mock.stats()["streams_cancelled"], 1);

    // Leaving a stalled OpenAI stream counts too.
    let chat = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let url = format!("{}/v1/chat/completions", mock.url);
    let out = curl(&[
        "-sS",
        "--max-time",
        "0.5",
        "-H",
        "x-mock-fault: stall-mid-stream",
        "--data-binary",
        chat,
        &url,
    ]);
    assert!(!out.status.success());
    let deadline = Instant::now() + Duration::from_secs(3);
    while mock.stats()["streams_cancelled"] != 2 {
        assert!(Instant::now() < deadline, "stalled stream not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
}
