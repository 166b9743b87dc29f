//! Proxying to providers through the real binary: passthrough, streaming, failover,
//! timeouts, stale connections, secrets. Providers are mockllm processes (and a capturing
//! upstream where the exact forwarded bytes matter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn two_targets(primary: &str, backup: &str, extra_primary: &str) -> String {
    format!(
        r#"
[providers.primary]
kind = "openai"
base_url = "{primary}"
forward_headers = ["x-mock-*"]
{extra_primary}

[providers.backup]
kind = "openai"
base_url = "{backup}"
forward_headers = ["x-mock-*"]

[models."gpt-4o-mini"]
targets = [
  {{ provider = "primary", model = "gpt-4o-mini-2024-07-18" }},
  {{ provider = "backup", model = "gpt-4o-mini" }},
]
"#
    )
}

both_drivers!(passthrough_with_curl, |d| {
    let m = Mock::start(&["--tokens", "12"]);
    let g = Gateway::start(&two_targets(&m.base_url(), &m.base_url(), ""), d);
    let out = curl(&[
        "-i",
        "-H",
        "content-type: application/json",
        "-d",
        &chat_body("gpt-4o-mini", false),
        &format!("{}/v1/chat/completions", g.url()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("x-infergate-provider: primary"));
    assert!(text.contains("x-infergate-attempts: 1"));
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    // The model name was spliced: mockllm echoes the model it was asked for.
    assert_eq!(v["model"], "gpt-4o-mini-2024-07-18");
    let recs = g.wait_records(1);
    assert_eq!(recs[0]["tokens_out"], 12);
    assert!(recs[0]["tokens_in"].as_u64().unwrap() > 0);
    assert_eq!(recs[0]["upstream_model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(m.stats()["requests"]["chat"], 1);
});

both_drivers!(streaming_with_curl_is_passed_through_event_by_event, |d| {
    let m = Mock::start(&["--tokens", "8", "--itl-ms", "40"]);
    let g = Gateway::start(&two_targets(&m.base_url(), &m.base_url(), ""), d);
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"count"}]}"#;
    let out = curl(&[
        "-N",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &format!("{}/v1/chat/completions", g.url()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.iter().all(|e| e.starts_with("data: ")), "{text}");
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e[6..]).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(!content.is_empty());
    let recs = g.wait_records(1);
    assert_eq!(recs[0]["stream"], true);
    assert_eq!(recs[0]["tokens_out"], 8);
    assert_eq!(recs[0]["finish_reason"], "stop");
    assert!(recs[0]["ttfb_ms"].as_f64().unwrap() < recs[0]["latency_ms"].as_f64().unwrap());

    // Events reach the client while the stream is still running (no re-buffering).
    let StreamTiming {
        first_event_at,
        total,
        raw: buf,
    } = time_stream(&g.addr, body, 20, 100);
    assert!(total >= Duration::from_millis(1500), "{total:?}");
    assert!(
        first_event_at < total / 3,
        "first event after {first_event_at:?} of {total:?}"
    );
    let resp = parse_response(&buf);
    assert!(resp.body_str().ends_with("data: [DONE]\n\n"));
});

both_drivers!(
    failover_on_5xx_429_connect_errors_and_first_byte_timeout,
    |d| {
        let backup = Mock::start(&[]);
        // 503 from the primary.
        let bad = Mock::start(&["--fault", "status:503"]);
        let g = Gateway::start(&two_targets(&bad.base_url(), &backup.base_url(), ""), d);
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", false),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.header("x-infergate-provider").as_deref(), Some("backup"));
        assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("2"));
        let recs = g.wait_records(1);
        let attempts = recs[0]["attempts"].as_array().unwrap();
        assert_eq!(attempts[0]["provider"], "primary");
        assert_eq!(attempts[0]["status"], 503);
        assert_eq!(attempts[1]["provider"], "backup");
        assert_eq!(attempts[1]["status"], 200);
        // Streaming fails over too (before the first byte).
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", true),
            &[],
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-infergate-provider").as_deref(), Some("backup"));
        drop(g);

        // 429.
        let limited = Mock::start(&["--fault", "status:429"]);
        let g = Gateway::start(&two_targets(&limited.base_url(), &backup.base_url(), ""), d);
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", false),
            &[],
        );
        assert_eq!(r.header("x-infergate-provider").as_deref(), Some("backup"));
        drop(g);

        // Connection refused: a port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/v1", closed.local_addr().unwrap());
        drop(closed);
        let g = Gateway::start(&two_targets(&dead, &backup.base_url(), ""), d);
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", false),
            &[],
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("2"));
        assert_eq!(g.wait_records(1)[0]["attempts"][0]["error"], "connect");
        drop(g);

        // A primary that accepts and never answers: the first-byte timeout moves on.
        let stall = Mock::start(&["--fault", "stall"]);
        let g = Gateway::start(
            &two_targets(
                &stall.base_url(),
                &backup.base_url(),
                "first_byte_timeout_ms = 300",
            ),
            d,
        );
        let start = Instant::now();
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("gpt-4o-mini", false),
            &[],
        );
        assert_eq!(r.status, 200);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(
            g.wait_records(1)[0]["attempts"][0]["error"],
            "first_byte_timeout"
        );
    }
);

both_drivers!(all_targets_failing_returns_the_last_error, |d| {
    let a = Mock::start(&["--fault", "status:503"]);
    let b = Mock::start(&["--fault", "status:500"]);
    let g = Gateway::start(&two_targets(&a.base_url(), &b.base_url(), ""), d);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("2"));
    assert!(r.json()["error"]["message"].is_string());

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    drop(g);
    let g = Gateway::start(&two_targets(&dead, &dead, ""), d);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_failed");
});

both_drivers!(mid_stream_failure_ends_with_an_error_event, |d| {
    let m = Mock::start(&["--tokens", "30", "--itl-ms", "5"]);
    let g = Gateway::start(&two_targets(&m.base_url(), &m.base_url(), ""), d);
    let body = chat_body("gpt-4o-mini", true);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &body,
        &[("x-mock-fault", "reset-mid-stream")],
    );
    assert_eq!(r.status, 200);
    let text = r.body_str();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    // Every event is whole JSON, and the last is an OpenAI-style error.
    for e in &events {
        let v: serde_json::Value = serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap();
        assert!(v.is_object());
    }
    let last: serde_json::Value = serde_json::from_str(&events.last().unwrap()[6..]).unwrap();
    assert_eq!(
        last["error"]["code"], "upstream_stream_interrupted",
        "{text}"
    );
    // The gateway keeps serving.
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200);
});

both_drivers!(client_closing_early_cancels_the_upstream_request, |d| {
    let m = Mock::start(&["--tokens", "400", "--itl-ms", "20"]);
    let g = Gateway::start(&two_targets(&m.base_url(), &m.base_url(), ""), d);
    let body = chat_body("gpt-4o-mini", true);
    let mut s = std::net::TcpStream::connect(&g.addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut tmp = [0u8; 1024];
    let n = s.read(&mut tmp).unwrap();
    assert!(n > 0);
    drop(s);
    // The stream would take 8 s; the gateway notices at the next event and records 499.
    let recs = g.wait_records(1);
    assert_eq!(
        recs.len(),
        1,
        "no record within 10 s: the upstream stream kept running"
    );
    assert_eq!(recs[0]["status"], 499);
    assert_eq!(recs[0]["error"], "client_closed");
    assert!(recs[0]["latency_ms"].as_f64().unwrap() < 3000.0);
});

both_drivers!(body_is_forwarded_untouched_but_for_the_model, |d| {
    let cap = CaptureUpstream::start(false);
    let cfg = format!(
        r#"
[auth]
keys = [{{ name = "t", sha256 = "{}" }}]

[providers.cap]
kind = "openai"
base_url = "{}"
api_key_env = "INFERGATE_TEST_PROVIDER_KEY"

[models."alias"]
targets = [{{ provider = "cap", model = "real-model" }}]

[models."same"]
targets = [{{ provider = "cap", model = "same" }}]
"#,
        infergate::policy::sha256_hex("gw-key"),
        cap.base_url()
    );
    let secret = "sk-test-SECRET-must-never-leak-42";
    let g = Gateway::start_with_env(&cfg, d, &[("INFERGATE_TEST_PROVIDER_KEY", secret)]);
    let body = r#"{ "messages": [{"role":"user","content":"the \"model\": field"}], "model" : "alias", "vendor_extension": {"a": [1, 2.50, null]}, "temperature": 0.7 }"#;
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        body,
        &[
            ("authorization", "Bearer gw-key"),
            ("openai-beta", "assistants=v2"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let (head, sent) = cap.request(0);
    let expected = body.replace(r#""model" : "alias""#, r#""model" : "real-model""#);
    assert_eq!(String::from_utf8(sent).unwrap(), expected);
    let head_lc = head.to_lowercase();
    assert!(
        head.starts_with("POST /v1/chat/completions HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Bearer {secret}")),
        "provider key not sent: {head}"
    );
    assert!(!head_lc.contains("gw-key"), "gateway key forwarded: {head}");
    assert!(head_lc.contains("openai-beta: assistants=v2"));

    // Same model name: the original bytes go out as they are.
    let body2 = r#"{"model":"same","messages":[],"x":1}"#;
    post_json(
        &g.addr,
        "/v1/chat/completions",
        body2,
        &[("x-api-key", "gw-key")],
    );
    assert_eq!(cap.request(1).1, body2.as_bytes());

    // The provider key is in no response, record or log line.
    assert!(!r.head.contains(secret) && !r.body_str().contains(secret));
    let recs = std::fs::read_to_string(g.dir.path().join("requests.jsonl")).unwrap_or_default();
    assert!(!recs.contains(secret));
    assert!(!g.stderr().contains(secret));
});

both_drivers!(stale_pooled_connections_are_replaced, |d| {
    let cap = CaptureUpstream::start(true);
    let cfg = format!(
        "[providers.cap]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.m]\ntargets = [{{ provider = \"cap\", model = \"m\" }}]\n",
        cap.base_url()
    );
    let g = Gateway::start(&cfg, d);
    // One connection so both requests land on the same shard and pool.
    let mut s = std::net::TcpStream::connect(&g.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = r#"{"model":"m","messages":[]}"#;
    for i in 0..3 {
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\"usage\"") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed on request {i}");
            got.extend_from_slice(&buf[..n]);
        }
        let r = parse_response(&got);
        assert_eq!(r.status, 200, "request {i}: {}", r.body_str());
        assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("1"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cap.connections.load(std::sync::atomic::Ordering::SeqCst), 3);
});
