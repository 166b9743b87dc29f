//! mockllm end to end: the real binary, real sockets, curl as the client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{curl, split_head, Mock};
use serde_json::Value;

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello mock world"}]}"#;

fn post(mock: &Mock, path: &str, body: &str, headers: &[&str]) -> std::process::Output {
    let url = format!("{}{path}", mock.url);
    let mut args = vec!["-sS", "-i", "-H", "content-type: application/json"];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.extend(["--data-binary", body, url.as_str()]);
    curl(&args)
}

#[test]
fn chat_completion_has_openai_shape() {
    let mock = Mock::start(&[]);
    let out = post(&mock, "/v1/chat/completions", CHAT, &["x-mock-tokens: 5"]);
    let (head, body) = split_head(&out.stdout);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-4o-mini");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Echo: hello mock world hello");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let prompt = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(v["usage"]["total_tokens"].as_u64().unwrap(), prompt + 5);

    let limited = CHAT.replace("\"messages\"", "\"max_tokens\":2,\"messages\"");
    let (_, body) = split_head(&post(&mock, "/v1/chat/completions", &limited, &[]).stdout);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[test]
fn chat_stream_is_sse_with_usage_and_done() {
    let mock = Mock::start(&["--tokens", "3"]);
    let body = CHAT.replace(
        "\"messages\"",
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\"",
    );
    let out = post(&mock, "/v1/chat/completions", &body, &["x-mock-itl-ms: 1"]);
    let (head, body) = split_head(&out.stdout);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"));
    assert!(head.contains("transfer-encoding: chunked"));
    assert!(body.ends_with("data: [DONE]\n\n"), "{body:?}");
    let events: Vec<&str> = body.strip_suffix("\n\n").unwrap().split("\n\n").collect();
    // role, 3 content deltas, finish, usage, [DONE]
    assert_eq!(events.len(), 7, "{events:?}");
    let chunks: Vec<Value> = events[..6]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "gpt-4o-mini");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks[1..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Echo: hello mock");
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"][0]["delta"], serde_json::json!({}));
    assert_eq!(chunks[5]["choices"], serde_json::json!([]));
    assert_eq!(chunks[5]["usage"]["completion_tokens"], 3);
    assert_eq!(events[6], "data: [DONE]");
}

#[test]
fn stream_without_usage_option_has_no_usage_chunk() {
    let mock = Mock::start(&["--tokens", "2"]);
    let body = CHAT.replace("\"messages\"", "\"stream\":true,\"messages\"");
    let (_, body) = split_head(&post(&mock, "/v1/chat/completions", &body, &[]).stdout);
    assert_eq!(body.matches("data: ").count(), 5, "{body}");
    assert!(!body.contains("\"usage\""));
}

#[test]
fn embeddings_are_deterministic_and_sized() {
    let mock = Mock::start(&[]);
    let body = r#"{"model":"text-embedding-3-small","input":["alpha","beta"],"dimensions":8}"#;
    let (head, first) = split_head(&post(&mock, "/v1/embeddings", body, &[]).stdout);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "text-embedding-3-small");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        assert_eq!(d["embedding"].as_array().unwrap().len(), 8);
    }
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 2);
    assert_eq!(v["usage"]["total_tokens"], v["usage"]["prompt_tokens"]);
    let (_, again) = split_head(&post(&mock, "/v1/embeddings", body, &[]).stdout);
    assert_eq!(first, again);

    let single = r#"{"model":"m","input":"alpha"}"#;
    let (_, one) = split_head(&post(&mock, "/v1/embeddings", single, &[]).stdout);
    let v: Value = serde_json::from_str(&one).unwrap();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 1536);
}

#[test]
fn fault_status_returns_openai_error() {
    let mock = Mock::start(&[]);
    let out = post(
        &mock,
        "/v1/chat/completions",
        CHAT,
        &["x-mock-fault: status:503"],
    );
    let (head, body) = split_head(&out.stdout);
    assert!(head.starts_with("http/1.1 503"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "server_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("503"));
    assert!(v["error"].get("param").is_some() && v["error"].get("code").is_some());

    let out = post(
        &mock,
        "/v1/chat/completions",
        CHAT,
        &["x-mock-fault: status:429"],
    );
    let (head, body) = split_head(&out.stdout);
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: 1"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(mock.stats()["faults"]["status"], 2);
}

#[test]
fn fault_reset_closes_without_answer() {
    let mock = Mock::start(&[]);
    let out = post(
        &mock,
        "/v1/chat/completions",
        CHAT,
        &["x-mock-fault: reset"],
    );
    assert!(!out.status.success(), "curl should fail on a reset");
    assert!(out.stdout.is_empty());
    let stats = mock.stats();
    assert_eq!(stats["faults"]["reset"], 1);
    assert_eq!(stats["requests"]["chat"], 1);
}

#[test]
fn fault_reset_mid_stream_cuts_the_stream() {
    let mock = Mock::start(&["--tokens", "8"]);
    let body = CHAT.replace("\"messages\"", "\"stream\":true,\"messages\"");
    let out = post(
        &mock,
        "/v1/chat/completions",
        &body,
        &["x-mock-fault: reset-mid-stream"],
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("data: "), "{text}");
    assert!(!text.contains("[DONE]"));
}

#[test]
fn fault_stall_never_answers() {
    let mock = Mock::start(&[]);
    let url = format!("{}/v1/chat/completions", mock.url);
    let out = curl(&[
        "-sS",
        "--max-time",
        "1",
        "-H",
        "x-mock-fault: stall",
        "--data-binary",
        CHAT,
        &url,
    ]);
    // 28: curl's "operation timed out".
    assert_eq!(out.status.code(), Some(28), "{out:?}");
    assert!(out.stdout.is_empty());
    assert_eq!(mock.stats()["faults"]["stall"], 1);
}

#[test]
fn cli_fault_applies_to_every_request() {
    let mock = Mock::start(&["--fault", "status:500"]);
    let (head, _) = split_head(&post(&mock, "/v1/chat/completions", CHAT, &[]).stdout);
    assert!(head.starts_with("http/1.1 500"), "{head}");
    // A header overrides the CLI fault.
    let (head, _) =
        split_head(&post(&mock, "/v1/chat/completions", CHAT, &["x-mock-fault: none"]).stdout);
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[test]
fn malformed_json_is_400_in_openai_shape() {
    let mock = Mock::start(&[]);
    let (head, body) = split_head(&post(&mock, "/v1/chat/completions", "{not json", &[]).stdout);
    assert!(head.starts_with("http/1.1 400"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().is_some());
    assert_eq!(v["error"]["param"], Value::Null);
    assert_eq!(mock.stats()["requests"]["bad_request"], 1);
}

#[test]
fn chunked_request_body_and_keep_alive() {
    let mock = Mock::start(&[]);
    let url = format!("{}/v1/chat/completions", mock.url);
    // Two requests on one connection (curl reuses it), the first with a chunked body.
    let out = curl(&[
        "-sS",
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        CHAT,
        &url,
        "--next",
        "-sS",
        &format!("{}/v1/models", mock.url),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"chat.completion\""), "{text}");
    assert!(text.contains("\"gpt-4o-mini\""));
    let stats = mock.stats();
    assert_eq!(stats["requests"]["chat"], 1);
    assert_eq!(stats["requests"]["models"], 1);
}

#[test]
fn models_and_unknown_paths() {
    let mock = Mock::start(&["--models", "a,b"]);
    let out = curl(&["-sS", &format!("{}/v1/models", mock.url)]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][1]["id"], "b");
    assert_eq!(v["data"][0]["object"], "model");
    let out = curl(&["-sS", "-i", &format!("{}/v2/nothing", mock.url)]);
    let (head, _) = split_head(&out.stdout);
    assert!(head.starts_with("http/1.1 404"), "{head}");
}

#[test]
fn sigterm_exits_cleanly() {
    let mut mock = Mock::start(&["--threads", "2"]);
    let pid = mock.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = mock.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn http2_prior_knowledge_gets_the_same_answers_and_faults() {
    let mock = Mock::start(&["--tokens", "4"]);
    let h2 = |body: &str, headers: &[&str]| {
        let mut args = vec!["--http2-prior-knowledge"];
        for h in headers {
            args.extend(["-H", h]);
        }
        post_args(&mock, body, &args)
    };
    let out = h2(CHAT, &[]);
    let (head, body) = split_head(&out.stdout);
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let stream = CHAT.replace("\"messages\"", "\"stream\":true,\"messages\"");
    let (head, body) = split_head(&h2(&stream, &["x-mock-itl-ms: 1"]).stdout);
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("text/event-stream") && !head.contains("transfer-encoding"));
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");

    // A reset is the stream's (RST_STREAM), after the events already sent mid-stream.
    let out = h2(CHAT, &["x-mock-fault: reset"]);
    assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");
    let out = h2(&stream, &["x-mock-fault: reset-mid-stream"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("data: ") && !text.contains("[DONE]"),
        "{text}"
    );

    let stats = mock.stats();
    assert_eq!(stats["http2_requests"], 4, "{stats}");
    assert_eq!(stats["http2_connections"], 4, "{stats}");
    assert_eq!(stats["connections"], 5, "{stats}");
    assert_eq!(stats["faults"]["reset"], 1);
    assert_eq!(stats["faults"]["reset_mid_stream"], 1);
}

fn post_args(mock: &Mock, body: &str, extra: &[&str]) -> std::process::Output {
    let url = format!("{}/v1/chat/completions", mock.url);
    let mut args = vec!["-sS", "-i", "-H", "content-type: application/json"];
    args.extend_from_slice(extra);
    args.extend(["--data-binary", body, url.as_str()]);
    curl(&args)
}
