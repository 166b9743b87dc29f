//! JSON-schema enforcement with the real binary and mockllm (scripted replies through
//! `x-mock-replies`): an invalid output is retried on the same target and the client gets
//! the valid one; retries exhausted without a fallback give a clear error naming the
//! violation; the next target is tried before that; every client dialect's way of asking
//! for a schema is honoured; streams are checked at their end, or whole before any byte
//! with `buffer_stream`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{json, Value};

fn config(mock: &Mock, schema_file: &std::path::Path) -> String {
    format!(
        r#"
[providers.mock]
kind = "openai"
base_url = "{url}"
forward_headers = ["x-mock-*"]

[models.structured]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
json_schema_retries = 1

[models.strict-once]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]

[models.fallback]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}, {{ provider = "mock", model = "gpt-4o" }}]

[models.filed]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
json_schema = "{schema}"

[models.buffered]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
json_schema_retries = 1
buffer_stream = true

[models.lenient]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
enforce_requested_schema = false
"#,
        url = mock.base_url(),
        schema = schema_file.display()
    )
}

fn answer_schema() -> Value {
    json!({"type": "object", "properties": {"answer": {"type": "string"}},
           "required": ["answer"], "additionalProperties": false})
}

/// A Chat request asking for `answer_schema`.
fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream,
           "messages": [{"role": "user", "content": "What is six times seven?"}],
           "response_format": {"type": "json_schema",
               "json_schema": {"name": "answer", "schema": answer_schema(), "strict": true}}})
    .to_string()
}

/// The `x-mock-replies` header: each test uses its own `tag` so scripts don't share counters.
fn replies(tag: &str, list: &[&str]) -> String {
    let mut all: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    // A script is keyed by its whole value: an unused last entry makes it unique per test.
    all.push(format!("{{\"answer\": \"{tag}\"}}"));
    serde_json::to_string(&all).unwrap()
}

fn start() -> (Mock, Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("answer.schema.json");
    std::fs::write(&file, answer_schema().to_string()).unwrap();
    let m = Mock::start(&[]);
    let g = Gateway::start(&config(&m, &file), Driver::Uring);
    (m, g, dir)
}

fn record_for<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["request_id"] == id)
        .unwrap_or_else(|| panic!("no record for {id}: {records:?}"))
}

#[test]
fn an_invalid_output_is_retried_on_the_same_target_and_the_valid_one_answers() {
    let (m, g, _dir) = start();
    let script = replies(
        "retry",
        &["Sure! Here it is: {\"answer\":", "{\"answer\": \"42\"}"],
    );
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("structured", false),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let content = r.json()["choices"][0]["message"]["content"].clone();
    assert_eq!(content, "{\"answer\": \"42\"}");
    assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("2"));
    let id = r.header("x-infergate-request-id").unwrap();
    let records = g.wait_records(1);
    let rec = record_for(&records, &id);
    let attempts = rec["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{rec}");
    assert_eq!(attempts[0]["error"], "json_schema_violation");
    assert_eq!(attempts[0]["status"], 200);
    assert!(attempts[1].get("error").is_none(), "{rec}");
    assert_eq!(rec["provider"], "mock");
    // Both answers were generated and are counted.
    assert!(rec["tokens_out"].as_u64().unwrap() >= 2, "{rec}");
    assert_eq!(m.stats()["requests"]["chat"], 2, "{}", m.stats());
}

#[test]
fn retries_exhausted_without_a_fallback_answer_a_clear_error() {
    let (_m, g, _dir) = start();
    // A number where the schema wants a string, every time.
    let script = replies("exhausted", &["{\"answer\": 4242}", "{\"answer\": 4242}"]);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("structured", false),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 502, "{}", r.body_str());
    let err = &r.json()["error"];
    assert_eq!(err["code"], "json_schema_violation");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("`/answer`"), "{message}");
    assert!(message.contains("string"), "{message}");
    assert!(message.contains("2 attempt(s)"), "{message}");
    assert!(
        !message.contains("4242"),
        "the output is never echoed: {message}"
    );
    let id = r.header("x-infergate-request-id").unwrap();
    let records = g.wait_records(1);
    let rec = record_for(&records, &id);
    assert_eq!(rec["status"], 502);
    assert_eq!(rec["error"], "json_schema_violation");
    let attempts = rec["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(attempts
        .iter()
        .all(|a| a["error"] == "json_schema_violation"));
    // What the thrown-away answers used is still recorded: the provider was paid for them.
    assert!(rec["tokens_out"].as_u64().unwrap() > 0, "{rec}");

    // Without retries, one attempt and the error.
    let script = replies("once", &["not json at all"]);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("strict-once", false),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 502);
    assert!(r.body_str().contains("not valid JSON"), "{}", r.body_str());
    assert_eq!(r.header("x-infergate-attempts"), None);
}

#[test]
fn the_next_target_is_tried_when_one_answers_invalid_output() {
    let (_m, g, _dir) = start();
    let script = replies(
        "fallback",
        &["[1, 2, 3]", "{\"answer\": \"from the fallback\"}"],
    );
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("fallback", false),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(r.body_str().contains("from the fallback"));
    let id = r.header("x-infergate-request-id").unwrap();
    let records = g.wait_records(1);
    let rec = record_for(&records, &id);
    let models: Vec<&str> = rec["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["gpt-4o-mini", "gpt-4o"]);
    assert_eq!(rec["upstream_model"], "gpt-4o");
}

#[test]
fn each_dialect_asks_for_a_schema_its_own_way() {
    let (m, g, _dir) = start();
    let schema = answer_schema();
    let cases = [
        (
            "/v1/messages",
            json!({"model": "structured", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "six times seven?"}],
                   "output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        ),
        (
            "/v1/responses",
            json!({"model": "structured", "input": "six times seven?",
                   "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema}}}),
        ),
    ];
    for (i, (path, body)) in cases.iter().enumerate() {
        let script = replies(&format!("dialect-{i}"), &["{}", "{\"answer\": \"42\"}"]);
        let r = post_json(
            &g.addr,
            path,
            &body.to_string(),
            &[("x-mock-replies", &script)],
        );
        assert_eq!(r.status, 200, "{path}: {}", r.body_str());
        assert!(
            r.body_str().contains(r#"{\"answer\": \"42\"}"#),
            "{path}: {}",
            r.body_str()
        );
        assert_eq!(
            r.header("x-infergate-attempts").as_deref(),
            Some("2"),
            "{path}"
        );
    }
    // The Responses request reached the provider with its schema as sent.
    assert_eq!(
        m.last_request()["body"]["text"]["format"]["schema"],
        schema,
        "the Responses request went to the provider's Responses API with its schema"
    );

    // The alias's own schema applies without the client asking.
    let plain = json!({"model": "filed", "messages": [{"role": "user", "content": "hi"}]});
    let script = replies("filed", &["{\"answer\": 1}"]);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &plain.to_string(),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 502, "{}", r.body_str());
    assert!(r.body_str().contains("json_schema_violation"));

    // An alias may leave client schemas to the provider.
    let script = replies("lenient", &["not json"]);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("lenient", false),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());

    // A schema that can't compile is the client's error, in its dialect.
    let bad = json!({"model": "structured", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}}});
    let r = post_json(&g.addr, "/v1/chat/completions", &bad.to_string(), &[]);
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "invalid_json_schema");
    let bad = json!({"model": "structured", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
        "output_config": {"format": {"type": "json_schema", "schema": {"$ref": "http://127.0.0.1:9/x.json"}}}});
    let r = post_json(&g.addr, "/v1/messages", &bad.to_string(), &[]);
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(r.json()["type"], "error");
}

/// The events of an SSE body (data payloads).
fn data_lines(body: &str) -> Vec<&str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect()
}

#[test]
fn a_stream_is_checked_at_its_end_in_every_dialect() {
    let (_m, g, _dir) = start();
    let schema = answer_schema();
    let cases = [
        (
            "/v1/chat/completions",
            serde_json::from_str::<Value>(&chat("structured", true)).unwrap(),
            "[DONE]",
        ),
        (
            "/v1/messages",
            json!({"model": "structured", "max_tokens": 64, "stream": true,
                   "messages": [{"role": "user", "content": "six times seven?"}],
                   "output_config": {"format": {"type": "json_schema", "schema": schema}}}),
            "\"type\":\"message_stop\"",
        ),
        (
            "/v1/responses",
            json!({"model": "structured", "input": "six times seven?", "stream": true,
                   "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema}}}),
            "\"type\":\"response.completed\"",
        ),
    ];
    for (i, (path, body, terminal)) in cases.iter().enumerate() {
        // Valid: the stream ends as the provider ended it.
        let script = replies(&format!("stream-ok-{i}"), &["{\"answer\": \"forty-two\"}"]);
        let r = post_json(
            &g.addr,
            path,
            &body.to_string(),
            &[("x-mock-replies", &script)],
        );
        assert_eq!(r.status, 200, "{path}");
        let text = r.body_str();
        assert!(text.contains(terminal), "{path}: {text}");
        assert!(!text.contains("json_schema_violation"), "{path}: {text}");

        // Invalid: the client has seen the text, but the terminal event is replaced by an
        // error naming the violation.
        let script = replies(
            &format!("stream-bad-{i}"),
            &["{\"answer\": \"x\", \"extra\": true}"],
        );
        let r = post_json(
            &g.addr,
            path,
            &body.to_string(),
            &[("x-mock-replies", &script)],
        );
        assert_eq!(r.status, 200, "{path}");
        let text = r.body_str();
        assert!(!text.contains(terminal), "{path}: {text}");
        let last = data_lines(text).last().copied().unwrap_or_default();
        assert!(
            last.contains("did not match the JSON schema"),
            "{path}: ends with the error: {text}"
        );
        assert!(
            last.contains("'extra' was unexpected"),
            "{path}: names the violation: {last}"
        );
        let error: Value = serde_json::from_str(last).unwrap();
        match *path {
            "/v1/messages" => assert_eq!(error["error"]["type"], "api_error"),
            "/v1/responses" => assert_eq!(error["code"], "json_schema_violation"),
            _ => assert_eq!(error["error"]["code"], "json_schema_violation"),
        }
    }
    let records = g.wait_records(6);
    let failed = records
        .iter()
        .filter(|r| r["error"] == "json_schema_violation" && r["stream"] == true)
        .count();
    assert_eq!(failed, 3, "{records:?}");
}

#[test]
fn a_buffered_stream_is_checked_and_retried_before_any_byte() {
    let (m, g, _dir) = start();
    let script = replies("buffered", &["{\"answer\": ", "{\"answer\": \"42\"}"]);
    let body = json!({"model": "buffered", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "six times seven?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": answer_schema()}}});
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &body.to_string(),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let text = r.body_str();
    let events = data_lines(text);
    assert_eq!(events.last().copied(), Some("[DONE]"), "{text}");
    let content: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "{\"answer\": \"42\"}");
    assert!(text.contains("\"usage\""), "include_usage is kept: {text}");
    // The provider was asked for whole answers.
    assert_eq!(m.last_request()["body"]["stream"], false);
    assert!(m.last_request()["body"].get("stream_options").is_none());
    let id = r.header("x-infergate-request-id").unwrap();
    let records = g.wait_records(1);
    let rec = record_for(&records, &id);
    assert_eq!(rec["stream"], true);
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 2);

    // Retries exhausted: a plain error, as no byte of the stream was sent.
    let script = replies("buffered-bad", &["nope", "still nope"]);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &body.to_string(),
        &[("x-mock-replies", &script)],
    );
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "json_schema_violation");
}

#[test]
fn the_official_sdks_get_schema_valid_output() {
    let (_m, g, _dir) = start();
    let text = run_python_check(&g, "json_schema_check.py", &[]);
    assert!(text.contains("4 passed, 0 failed"), "{text}");
}
