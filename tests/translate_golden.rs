//! Golden transcripts for dialect translation: every `tests/golden/translate/*.json` holds a
//! client request, the upstream request it must become, the upstream's answer (a JSON body or a
//! list of SSE events) and the client answer it must become. Bodies and event payloads are
//! compared as JSON values, with response ids and `created` timestamps normalized.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use infergate::translate::{
    anthropic_error_to_openai, anthropic_to_openai_request, anthropic_to_openai_response,
    openai_error_to_anthropic, openai_include_usage, openai_to_anthropic_request,
    openai_to_anthropic_response, AnthropicToOpenAiStream, OpenAiToAnthropicStream,
};
use serde_json::{json, Value};

/// Replaces the values that change per call: the response / chunk / message id and `created`.
fn normalize(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        if obj.contains_key("id") {
            obj.insert("id".into(), json!("<id>"));
        }
        if obj.contains_key("created") {
            obj.insert("created".into(), json!(0));
        }
        if let Some(m) = obj.get_mut("message").and_then(Value::as_object_mut) {
            if m.contains_key("id") {
                m.insert("id".into(), json!("<id>"));
            }
        }
    }
}

/// Parses SSE text into `[{"event"?: name, "data": json | "[DONE]"}]`.
fn parse_sse(text: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut ev = serde_json::Map::new();
        for line in block.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                ev.insert("event".into(), json!(name));
            } else if let Some(data) = line.strip_prefix("data: ") {
                let mut d = if data == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(data).unwrap_or_else(|e| panic!("bad data {data:?}: {e}"))
                };
                normalize(&mut d);
                ev.insert("data".into(), d);
            } else {
                panic!("unexpected SSE line {line:?}");
            }
        }
        events.push(Value::Object(ev));
    }
    events
}

fn data_bytes(ev: &Value) -> Vec<u8> {
    match &ev["data"] {
        Value::String(s) => s.clone().into_bytes(),
        d => serde_json::to_vec(d).unwrap(),
    }
}

fn run_case(path: &Path) {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let case: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let client_req = serde_json::to_vec(&case["client_request"]).unwrap();
    let client_model = case["client_request"]["model"].as_str().unwrap();
    let upstream_model = case["upstream_request"]["model"].as_str().unwrap();
    let openai_client = match case["pair"].as_str().unwrap() {
        "openai_client_anthropic_upstream" => true,
        "anthropic_client_openai_upstream" => false,
        p => panic!("{name}: unknown pair {p}"),
    };

    let up_req = if openai_client {
        openai_to_anthropic_request(&client_req, upstream_model)
    } else {
        anthropic_to_openai_request(&client_req, upstream_model)
    }
    .unwrap_or_else(|e| panic!("{name}: request: {e}"));
    let up_req: Value = serde_json::from_slice(&up_req).unwrap();
    assert_eq!(up_req, case["upstream_request"], "{name}: upstream request");

    let mut expected = case["client_response"].clone();
    let actual = if let Some(status) = case.get("upstream_status").and_then(Value::as_u64) {
        let body = serde_json::to_vec(&case["upstream_response"]).unwrap();
        let (st, out) = if openai_client {
            anthropic_error_to_openai(status as u16, &body)
        } else {
            openai_error_to_anthropic(status as u16, &body)
        };
        assert_eq!(
            u64::from(st),
            case["client_status"].as_u64().unwrap(),
            "{name}: status"
        );
        serde_json::from_slice(&out).unwrap()
    } else if let Some(events) = case["upstream_response"].as_array() {
        let mut out = Vec::new();
        if openai_client {
            let mut s =
                AnthropicToOpenAiStream::new(client_model, openai_include_usage(&client_req));
            for ev in events {
                let name_bytes = ev.get("event").and_then(Value::as_str).map(str::as_bytes);
                s.push_event(name_bytes, &data_bytes(ev), &mut out)
                    .unwrap_or_else(|e| panic!("{name}: event {ev}: {e}"));
            }
            s.finish(&mut out);
            assert!(s.stop_reason().is_some(), "{name}: stop reason");
            assert!(s.usage().is_some(), "{name}: usage");
        } else {
            let mut s = OpenAiToAnthropicStream::new(client_model);
            for ev in events {
                s.push_event(None, &data_bytes(ev), &mut out)
                    .unwrap_or_else(|e| panic!("{name}: event {ev}: {e}"));
            }
            s.finish(&mut out);
            assert!(s.stop_reason().is_some(), "{name}: stop reason");
            assert!(s.usage().is_some(), "{name}: usage");
        }
        for ev in expected.as_array_mut().unwrap() {
            normalize(&mut ev["data"]);
        }
        Value::Array(parse_sse(std::str::from_utf8(&out).unwrap()))
    } else {
        let body = serde_json::to_vec(&case["upstream_response"]).unwrap();
        let out = if openai_client {
            anthropic_to_openai_response(&body, client_model)
        } else {
            openai_to_anthropic_response(&body, client_model)
        }
        .unwrap_or_else(|e| panic!("{name}: response: {e}"));
        let mut v: Value = serde_json::from_slice(&out).unwrap();
        normalize(&mut v);
        v
    };
    if !case["client_response"].is_array() {
        normalize(&mut expected);
    }
    assert_eq!(
        actual,
        expected,
        "{name}: client response\nactual:   {}\nexpected: {}",
        serde_json::to_string_pretty(&actual).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap()
    );
}

#[test]
fn golden_transcripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/translate");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 18,
        "expected at least 18 transcripts, found {}",
        paths.len()
    );
    for p in &paths {
        run_case(p);
    }
}
