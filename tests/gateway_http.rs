//! The HTTP front: errors in OpenAI's shape with the right status, limits, keys, keep-alive,
//! and a shard that keeps serving after bad input. Uses the built-in mock provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

const MOCK_ONLY: &str = r#"
[providers.mock]
kind = "mock"

[models."gpt-4o-mini"]
targets = [{ provider = "mock", model = "mock-model" }]

[models."embed-small"]
targets = [{ provider = "mock", model = "mock-embed" }]
"#;

fn assert_openai_error(r: &RawResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}\n{}", r.head, r.body_str());
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(v["error"]["type"].is_string(), "{v}");
    assert!(r.header("x-infergate-request-id").is_some());
}

/// After bad input, the same gateway still answers a good request.
fn still_serves(g: &Gateway) {
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
}

both_drivers!(chat_and_stream_through_the_mock_provider, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-infergate-provider").as_deref(), Some("mock"));
    assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("1"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "mock-model");

    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", true),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert!(
        r.body_str().ends_with("data: [DONE]\n\n"),
        "{}",
        r.body_str()
    );

    let r = post_json(
        &g.addr,
        "/v1/embeddings",
        r#"{"model":"embed-small","input":"hi"}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["object"], "embedding");

    let r = raw_request(
        &g.addr,
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"gpt-4o-mini".to_string()));

    // Every request is recorded.
    let recs = g.wait_records(4);
    assert_eq!(recs.len(), 4, "{recs:?}");
    let chat = &recs[0];
    assert_eq!(chat["model"], "gpt-4o-mini");
    assert_eq!(chat["provider"], "mock");
    assert_eq!(chat["upstream_model"], "mock-model");
    assert_eq!(chat["status"], 200);
    assert!(chat["tokens_out"].as_u64().unwrap() > 0);
    assert_eq!(chat["attempts"].as_array().unwrap().len(), 1);
});

both_drivers!(invalid_json_and_wrong_types_are_400, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let r = post_json(&g.addr, "/v1/chat/completions", "{not json", &[]);
    assert_openai_error(&r, 400, "invalid_json");
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        r#"{"model":42,"messages":[]}"#,
        &[],
    );
    assert_openai_error(&r, 400, "invalid_type");
    assert_eq!(r.json()["error"]["param"], "model");
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        r#"{"model":"gpt-4o-mini","messages":"hi"}"#,
        &[],
    );
    assert_openai_error(&r, 400, "invalid_type");
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        r#"{"model":"gpt-4o-mini","messages":[],"stream":"yes"}"#,
        &[],
    );
    assert_openai_error(&r, 400, "invalid_type");
    let r = post_json(&g.addr, "/v1/chat/completions", r#"{"messages":[]}"#, &[]);
    assert_openai_error(&r, 400, "missing_required_parameter");
    let r = post_json(&g.addr, "/v1/chat/completions", "[1,2]", &[]);
    assert_openai_error(&r, 400, "invalid_json");
    still_serves(&g);
});

both_drivers!(unknown_model_is_404_model_not_found, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-9", false),
        &[],
    );
    assert_openai_error(&r, 404, "model_not_found");
    assert_eq!(r.json()["error"]["param"], "model");
    let r = post_json(&g.addr, "/v1/nope", "{}", &[]);
    assert_openai_error(&r, 404, "unknown_url");
    let r = raw_request(
        &g.addr,
        "GET /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_openai_error(&r, 405, "method_not_allowed");
    still_serves(&g);
});

both_drivers!(malformed_http_and_limits, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    // Not HTTP.
    let r = raw_request(&g.addr, "HELLO THERE\r\n\r\n");
    assert_eq!(r.status, 400);
    let r = raw_request_bytes(
        &g.addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nho\x01st: x\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    // Header block over max_header_bytes (8192 in tests).
    let big = "a".repeat(10_000);
    let r = raw_request(
        &g.addr,
        &format!("GET /v1/models HTTP/1.1\r\nx-big: {big}\r\n\r\n"),
    );
    assert_openai_error(&r, 431, "request_header_fields_too_large");
    // More headers than max_headers (50).
    let many: String = (0..60).map(|i| format!("x-h{i}: v\r\n")).collect();
    let r = raw_request(&g.addr, &format!("GET /v1/models HTTP/1.1\r\n{many}\r\n"));
    assert_eq!(r.status, 431);
    // Body over max_body_bytes (65536): refused from the announced length.
    let r = raw_request(
        &g.addr,
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 1000000\r\n\r\n",
    );
    assert_openai_error(&r, 413, "request_too_large");
    // Chunked body that grows over the limit.
    let chunk = format!("{:x}\r\n{}\r\n", 40_000, "a".repeat(40_000));
    let r = raw_request(&g.addr, &format!("POST /v1/chat/completions HTTP/1.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"));
    assert_eq!(r.status, 413);
    // Bad content-length.
    let r = raw_request(
        &g.addr,
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: abc\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    still_serves(&g);
});

both_drivers!(chunked_bodies_and_expect_continue, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let body = chat_body("gpt-4o-mini", false);
    let (a, b) = body.split_at(20);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let r = raw_request(&g.addr, &req);
    assert_eq!(r.status, 200, "{}", r.body_str());

    // Expect: 100-continue gets an interim 100 before the body is sent.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&g.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(s, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n", body.len()).unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(parse_response(&rest).status, 200);

    // curl with a body large enough that it sends Expect itself.
    let big = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    let out = curl(&[
        "-H",
        "content-type: application/json",
        "-H",
        "expect: 100-continue",
        "--data-binary",
        &big,
        &format!("{}/v1/chat/completions", g.url()),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("chat.completion"),
        "{out:?}"
    );
});

both_drivers!(keep_alive_and_pipelining, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&g.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let body = chat_body("gpt-4o-mini", false);
    let one = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Two requests in one write, then a third that closes.
    let last = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    s.write_all(format!("{one}{one}{last}").as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
});

both_drivers!(slow_clients_time_out, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&g.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // Half a head, then nothing: header_timeout_ms is 2000 in tests.
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(start.elapsed() < std::time::Duration::from_secs(8));
    assert_eq!(parse_response(&buf).status, 408);
    still_serves(&g);
});

both_drivers!(gateway_keys, |d| {
    let hash = infergate::policy::sha256_hex("ig-test-key-1");
    let cfg = format!("[auth]\nkeys = [{{ name = \"team-a\", sha256 = \"{hash}\" }}]\n{MOCK_ONLY}");
    let g = Gateway::start(&cfg, d);
    let body = chat_body("gpt-4o-mini", false);
    let r = post_json(&g.addr, "/v1/chat/completions", &body, &[]);
    assert_openai_error(&r, 401, "missing_api_key");
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &body,
        &[("authorization", "Bearer wrong")],
    );
    assert_openai_error(&r, 401, "invalid_api_key");
    assert!(
        !r.body_str().contains("wrong"),
        "the presented key is echoed: {}",
        r.body_str()
    );
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &body,
        &[("authorization", "Bearer ig-test-key-1")],
    );
    assert_eq!(r.status, 200);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &body,
        &[("x-api-key", "ig-test-key-1")],
    );
    assert_eq!(r.status, 200);
    let recs = g.wait_records(4);
    assert_eq!(recs[2]["key"], "team-a");
    assert_eq!(recs[0]["status"], 401);
});

both_drivers!(client_disconnect_mid_stream_leaves_the_shard_serving, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    use std::io::Write;
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(&g.addr).unwrap();
        let body = chat_body("gpt-4o-mini", true);
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        drop(s);
    }
    still_serves(&g);
});
