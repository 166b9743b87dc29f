//! Regression tests for the outside review's findings (issue 9), each against the real binary
//! over real sockets (raw bytes where an HTTP client would normalize the input), under both
//! IO drivers: prompts and provider answers that used to panic, containment of panics,
//! clients choosing the upstream model, header forwarding, open mode and the admin API,
//! HTTP/1.1 framing, memory and connection bounds, and client hang-ups.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MOCK_ONLY: &str = r#"
[providers.mock]
kind = "mock"

[models."gpt-4o-mini"]
targets = [{ provider = "mock", model = "mock-model" }]
"#;

fn chat(content: &str, stream: bool) -> String {
    serde_json::json!({"model": "gpt-4o-mini", "stream": stream,
        "messages": [{"role": "user", "content": content}]})
    .to_string()
}

fn ok(g: &Gateway) {
    let r = post_json(&g.addr, "/v1/chat/completions", &chat("hi", false), &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
}

/// Sends raw bytes and reads until the gateway closes (at most 5 s); returns what came back.
fn exchange(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let start = Instant::now();
    let _ = s.read_to_end(&mut buf);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the gateway kept the connection open after: {:?}",
        String::from_utf8_lossy(request)
    );
    String::from_utf8_lossy(&buf).into_owned()
}

fn wait_exit(g: &mut Gateway, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = g.proc.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// Crashes and hangs
// ---------------------------------------------------------------------------------------

both_drivers!(
    prompt_with_length_changing_case_does_not_kill_a_shard,
    |d| {
        let dir = std::env::var("INFERGATE_MODEL_DIR").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/models/all-MiniLM-L6-v2").to_string()
        });
        let m = Mock::start(&["--tokens", "4"]);
        let cfg = format!(
            r#"
[embedder]
model_dir = "{dir}"
backend = "cpu"
max_wait_us = 200

[providers.p]
kind = "openai"
base_url = "{url}"

[models."gpt-4o-mini"]
targets = [{{ provider = "p", model = "gpt-4o-mini" }}]

[models."gpt-4o-mini".cache]
semantic = true
"#,
            url = m.base_url()
        );
        let g = Gateway::start_with(&cfg, d, &[], &[("shards", "1")]);
        // The review's repro: the same prompt twice (the second passes the threshold and reaches
        // the guard), then variants around the apostrophe.
        for prompt in [
            "ȺȺ'éé what is the capital of France",
            "ȺȺ'éé what is the capital of France",
            "ȺȺ'ÉÉ what is the capital of France?",
            "İstanbul'un what is the capital of France",
        ] {
            let r = post_json(&g.addr, "/v1/chat/completions", &chat(prompt, false), &[]);
            assert_eq!(r.status, 200, "{prompt}: {}\n{}", r.body_str(), g.stderr());
        }
        ok(&g);
        assert!(!g.stderr().contains("panicked"), "{}", g.stderr());
    }
);

both_drivers!(provider_block_index_of_2_pow_31_is_refused, |d| {
    let events = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n".to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2147483648,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}\n\n".to_string(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string(),
    ];
    let up = ScriptedUpstream::start(Some(sse_response(&events)));
    let cfg = format!(
        r#"
[providers.hostile]
kind = "anthropic"
base_url = "{}"

[models."gpt-4o-mini"]
targets = [{{ provider = "hostile", model = "claude" }}]
"#,
        up.base_url()
    );
    let g = Gateway::start_with(&cfg, d, &[], &[("shards", "1")]);
    let r = post_json(&g.addr, "/v1/chat/completions", &chat("hi", true), &[]);
    assert_eq!(r.status, 200);
    let body = r.body_str();
    assert!(body.contains("\"error\""), "no error event: {body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(
        rss_bytes(g.proc.child.id()) < 300 << 20,
        "memory grew with the provider's index"
    );
    let recs = g.wait_records(1);
    assert_eq!(recs[0]["error"], "upstream_stream_untranslatable_event");
    // The shard still serves (one shard: the same thread).
    let r = post_json(&g.addr, "/v1/chat/completions", &chat("hi", true), &[]);
    assert_eq!(r.status, 200);
});

both_drivers!(a_panic_costs_one_connection_not_the_shard, |d| {
    let mut g = Gateway::start_with(
        MOCK_ONLY,
        d,
        &[("INFERGATE_FAILPOINTS", "1")],
        &[("shards", "1")],
    );
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("hi", false),
        &[("x-infergate-failpoint", "panic")],
    );
    assert_eq!(r.status, 500, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "internal_error");
    assert_eq!(r.json()["error"]["type"], "server_error");
    // The only shard keeps serving.
    for _ in 0..5 {
        ok(&g);
    }
    let recs = g.wait_records(6);
    assert!(
        recs.iter()
            .any(|r| r["error"] == "internal_panic" && r["status"] == 500),
        "{recs:?}"
    );
    // Recorded as the request it was: its id and endpoint.
    let id = r.header("x-infergate-request-id").unwrap();
    let panicked = recs
        .iter()
        .find(|r| r["error"] == "internal_panic")
        .unwrap();
    assert_eq!(panicked["request_id"], id.as_str());
    assert_eq!(panicked["endpoint"], "chat.completions");
    assert!(g.stderr().contains("a request panicked"), "{}", g.stderr());
    // SIGTERM still ends the process, cleanly.
    g.signal("TERM");
    let status = wait_exit(&mut g, Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", g.stderr());
});

both_drivers!(a_shard_that_dies_ends_the_process_loudly, |d| {
    let mut g = Gateway::start_with(
        MOCK_ONLY,
        d,
        &[("INFERGATE_FAILPOINTS", "1")],
        &[("shards", "1")],
    );
    let body = chat("hi", false);
    let mut s = TcpStream::connect(&g.addr).unwrap();
    // The answer may or may not come before the process ends: only the exit matters.
    let _ = write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-infergate-failpoint: kill-shard\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let status = wait_exit(&mut g, Duration::from_secs(10));
    assert_eq!(status.code(), Some(70), "{}", g.stderr());
    assert!(
        g.stderr().contains("shard 0 stopped while serving"),
        "{}",
        g.stderr()
    );
});

// ---------------------------------------------------------------------------------------
// The client must not choose what the gateway does
// ---------------------------------------------------------------------------------------

both_drivers!(duplicate_model_keys_never_reach_a_provider, |d| {
    let cap = CaptureUpstream::start(false);
    let cfg = format!(
        r#"
[providers.cap]
kind = "openai"
base_url = "{}"

[models."m"]
targets = [{{ provider = "cap", model = "real-model" }}]

[models."same"]
targets = [{{ provider = "cap", model = "same" }}]
"#,
        cap.base_url()
    );
    let g = Gateway::start(&cfg, d);
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    for body in [
        format!(r#"{{"model":"m","model":"gpt-4-attacker-choice",{msgs}}}"#),
        format!(r#"{{"model":"m","mod\u0065l":"gpt-4-attacker-choice",{msgs}}}"#),
        format!(r#"{{"model":"same","model":"gpt-4-attacker-choice",{msgs}}}"#),
        format!(r#"{{"mod\u0065l":"gpt-4-attacker-choice","model":"same",{msgs}}}"#),
    ] {
        let r = post_json(&g.addr, "/v1/chat/completions", &body, &[]);
        assert_eq!(r.status, 400, "{body}: {}", r.body_str());
        assert_eq!(r.json()["error"]["code"], "duplicate_key");
    }
    assert_eq!(cap.requests.lock().unwrap().len(), 0);
    // One model key, however it is spelled, is served and rewritten to the target.
    let body = format!(r#"{{"mod\u0065l":"m",{msgs}}}"#);
    let r = post_json(&g.addr, "/v1/chat/completions", &body, &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let (_, sent) = cap.request(0);
    let sent: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["model"], "real-model");
    assert_eq!(sent.as_object().unwrap().len(), 2);
});

both_drivers!(only_allowed_headers_reach_the_provider, |d| {
    let cap = CaptureUpstream::start(false);
    let cfg = format!(
        r#"
[providers.cap]
kind = "openai"
base_url = "{}"
forward_headers = ["x-team", "x-hop"]

[models."m"]
targets = [{{ provider = "cap", model = "m" }}]
"#,
        cap.base_url()
    );
    let g = Gateway::start(&cfg, d);
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        body,
        &[
            ("OpenAI-Organization", "org-attacker"),
            ("OpenAI-Project", "proj-attacker"),
            ("Content-Encoding", "identity"),
            ("Content-Range", "bytes 0-1/2"),
            ("Cookie", "session=1"),
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Mock-Fault", "status:500"),
            ("OpenAI-Beta", "assistants=v2"),
            ("User-Agent", "agent/1.0"),
            ("X-Team", "blue"),
            ("X-Hop", "drop-me"),
            ("Connection", "keep-alive, X-Hop"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let (head, _) = cap.request(0);
    let head = head.to_lowercase();
    for absent in [
        "openai-organization",
        "openai-project",
        "content-encoding",
        "content-range",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-mock-fault",
        "x-hop",
    ] {
        assert!(
            !head.contains(&format!("\n{absent}:")),
            "{absent} forwarded:\n{head}"
        );
    }
    for present in [
        "openai-beta: assistants=v2",
        "user-agent: agent/1.0",
        "x-team: blue",
    ] {
        assert!(head.contains(present), "{present} missing:\n{head}");
    }
});

both_drivers!(open_mode_refuses_what_a_web_page_can_send, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let body = chat("hi", false);
    let send = |ct: Option<&str>, origin: Option<&str>, path: &str| {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
            g.addr,
            body.len()
        );
        if let Some(ct) = ct {
            req.push_str(&format!("content-type: {ct}\r\n"));
        }
        if let Some(o) = origin {
            req.push_str(&format!("origin: {o}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        raw_request(&g.addr, &req)
    };
    // What a page can POST cross-origin without a preflight.
    let r = send(
        Some("text/plain;charset=UTF-8"),
        Some("https://evil.example"),
        "/v1/chat/completions",
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "origin_not_allowed");
    let r = send(Some("text/plain"), None, "/v1/chat/completions");
    assert_eq!(r.status, 415, "{}", r.body_str());
    let r = send(None, None, "/v1/chat/completions");
    assert_eq!(r.status, 415, "{}", r.body_str());
    let r = send(
        Some("application/json"),
        Some("http://127.0.0.1:3000"),
        "/v1/chat/completions",
    );
    assert_eq!(r.status, 403);
    // Errors keep the client's dialect.
    let r = send(Some("text/plain"), None, "/v1/messages");
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["type"], "error");
    // SDKs and curl send JSON without an Origin.
    let r = send(
        Some("application/json; charset=utf-8"),
        None,
        "/v1/chat/completions",
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let recs = g.wait_records(6);
    assert_eq!(recs[0]["status"], 403);

    // An operator can allow an origin, or any content type.
    let allowed = format!(
        "[auth]\nallowed_origins = [\"https://app.example\"]\nany_content_type = true\n{MOCK_ONLY}"
    );
    let g2 = Gateway::start(&allowed, d);
    let g = &g2;
    let send2 = |ct: &str, origin: &str| {
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: {ct}\r\norigin: {origin}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        raw_request(&g.addr, &req).status
    };
    assert_eq!(send2("application/json", "https://app.example"), 200);
    assert_eq!(send2("text/plain", "https://app.example"), 200);
    assert_eq!(send2("application/json", "https://evil.example"), 403);

    // With gateway keys, the key is the protection: no content-type rule.
    let keyed = format!(
        "[auth]\nkeys = [{{ name = \"k\", sha256 = \"{}\" }}]\n{MOCK_ONLY}",
        infergate::policy::sha256_hex("gw-key")
    );
    let g3 = Gateway::start(&keyed, d);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer gw-key\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(raw_request(&g3.addr, &req).status, 200);
});

both_drivers!(admin_api_needs_its_token_its_host_and_no_origin, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let admin = |req: String| raw_request(&g.admin, &req);
    let health = |host: &str, extra: &str| {
        admin(format!(
            "GET /admin/health HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n\r\n"
        ))
    };
    let reload = |host: &str, extra: &str| {
        admin(format!(
            "POST /admin/reload HTTP/1.1\r\nhost: {host}\r\n{extra}content-length: 0\r\nconnection: close\r\n\r\n"
        ))
    };
    assert_eq!(health(&g.admin, "").status, 200);
    let port = g.admin.rsplit(':').next().unwrap();
    assert_eq!(health(&format!("localhost:{port}"), "").status, 200);
    // DNS rebinding: a page's name resolving to loopback still says its own Host.
    assert_eq!(health(&format!("evil.example:{port}"), "").status, 403);
    assert_eq!(
        health(&g.admin, "origin: http://evil.example\r\n").status,
        403
    );
    let r = reload(&g.admin, "");
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    assert_eq!(
        reload(&g.admin, "authorization: Bearer wrong\r\n").status,
        401
    );
    let with_token = format!("authorization: Bearer {ADMIN_TOKEN}\r\n");
    assert_eq!(reload(&g.admin, &with_token).status, 200);
    assert_eq!(
        reload(&format!("evil.example:{port}"), &with_token).status,
        403
    );
    assert_eq!(
        reload(
            &g.admin,
            &format!("{with_token}origin: http://127.0.0.1:{port}\r\n")
        )
        .status,
        403
    );
    assert!(
        !g.stderr().contains(ADMIN_TOKEN),
        "the admin token is logged"
    );

    // Without a token the admin API is read-only.
    let ro = Gateway::start_with_env(MOCK_ONLY, d, &[("INFERGATE_TEST_ADMIN_TOKEN", "")]);
    let r = raw_request(
        &ro.admin,
        &format!(
            "POST /admin/reload HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            ro.admin
        ),
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert!(r.body_str().contains("read-only"));
});

#[test]
fn admin_listener_off_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshards = 1\n[admin]\nlisten = \"0.0.0.0:0\"\n[log]\npath = \"\"\n{MOCK_ONLY}"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_infergate"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a token"), "{err}");
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 framing
// ---------------------------------------------------------------------------------------

both_drivers!(framing_that_could_desync_a_front_proxy_is_refused, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let body = chat("hi", false);
    let n = body.len();
    let smuggled = "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n";
    let pre = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "two content-length values",
            format!("{pre}content-length: {n}\r\ncontent-length: {}\r\n\r\n{body}{smuggled}", n + smuggled.len()),
        ),
        (
            "a content-length list that disagrees",
            format!("{pre}content-length: {n}, {}\r\n\r\n{body}{smuggled}", n + 1),
        ),
        ("a signed content-length", format!("{pre}content-length: +{n}\r\n\r\n{body}")),
        ("a negative content-length", format!("{pre}content-length: -1\r\n\r\n{body}")),
        ("a hex content-length", format!("{pre}content-length: 0x{n:x}\r\n\r\n{body}")),
        ("content-length with junk", format!("{pre}content-length: {n}abc\r\n\r\n{body}")),
        (
            "two transfer-encoding headers",
            format!("{pre}transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "chunked not last",
            format!("{pre}transfer-encoding: chunked, gzip\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "another coding before chunked",
            format!("{pre}transfer-encoding: gzip, chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "both length and chunked",
            format!("{pre}content-length: {n}\r\ntransfer-encoding: chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "chunked on HTTP/1.0",
            format!("POST /v1/chat/completions HTTP/1.0\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "junk after a chunk size",
            format!("{pre}transfer-encoding: chunked\r\n\r\n{n:x}junk\r\n{body}\r\n0\r\n\r\n"),
        ),
        (
            "bare LF in chunk framing",
            format!("{pre}transfer-encoding: chunked\r\n\r\n{n:x}\n{body}\n0\n\n"),
        ),
        (
            "bare CR in chunk framing",
            format!("{pre}transfer-encoding: chunked\r\n\r\n{n:x}\r{body}\r\n0\r\n\r\n"),
        ),
        (
            "a long chunk extension",
            format!("{pre}transfer-encoding: chunked\r\n\r\n{n:x};{}\r\n{body}\r\n0\r\n\r\n", "e".repeat(5000)),
        ),
        (
            "bare LF in the head",
            format!("POST /v1/chat/completions HTTP/1.1\nhost: x\ncontent-type: application/json\ncontent-length: {n}\n\n{body}"),
        ),
    ];
    for (what, req) in cases {
        let got = exchange(&g.addr, req.as_bytes());
        assert!(got.starts_with("HTTP/1.1 400 "), "{what}: {got}");
        assert_eq!(
            got.matches("HTTP/1.1 ").count(),
            1,
            "{what}: a second response came back: {got}"
        );
    }
    // Equal duplicates are one length (RFC 9110 allows a list of one value repeated).
    let got = exchange(
        &g.addr,
        format!(
            "{pre}content-length: {n}\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n{body}"
        )
        .as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    ok(&g);
});

// ---------------------------------------------------------------------------------------
// Memory and connections
// ---------------------------------------------------------------------------------------

both_drivers!(large_bodies_give_their_memory_back, |d| {
    let m = Mock::start(&["--tokens", "4"]);
    let cfg = format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{}"

[models."gpt-4o-mini"]
targets = [{{ provider = "p", model = "gpt-4o-mini" }}]
"#,
        m.base_url()
    );
    let g = Gateway::start_with(
        &cfg,
        d,
        &[],
        &[
            ("max_body_bytes", "20000000"),
            ("header_timeout_ms", "20000"),
        ],
    );
    let pid = g.proc.child.id();
    ok(&g);
    let before = rss_bytes(pid);
    let big = chat(&"x".repeat(16 << 20), false);
    // Several per shard (connections land on shards by hash), on keep-alive connections
    // that stay open: a connection's read buffer must not keep a large body's size.
    let mut kept = Vec::new();
    for _ in 0..6 {
        let mut s = TcpStream::connect(&g.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{big}",
            big.len()
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\"usage\"") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 "));
        kept.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss_bytes(pid);
    while after > before + (48 << 20) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        ok(&g);
        after = rss_bytes(pid);
    }
    eprintln!("RSS {} MB before, {} MB after", before >> 20, after >> 20);
    drop(kept);
    assert!(
        after <= before + (48 << 20),
        "RSS stayed up: {} MB before, {} MB after",
        before >> 20,
        after >> 20
    );
});

both_drivers!(
    bodies_over_the_inflight_budget_get_503_with_retry_after,
    |d| {
        let g = Gateway::start_with(
            MOCK_ONLY,
            d,
            &[],
            &[
                ("max_body_bytes", "4194304"),
                ("max_inflight_body_bytes", "1048576"),
            ],
        );
        let big = chat(&"x".repeat(2 << 20), false);
        let r = post_json(&g.addr, "/v1/chat/completions", &big, &[]);
        assert_eq!(r.status, 503, "{}", r.body_str());
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        assert_eq!(r.json()["error"]["code"], "gateway_busy");
        // A chunked body that outgrows the budget as it arrives is refused the same way.
        let n = big.len();
        let (a, b) = big.split_at(n / 2);
        let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
        let got = exchange(&g.addr, req.as_bytes());
        assert!(
            got.starts_with("HTTP/1.1 503 "),
            "{}",
            &got[..got.len().min(300)]
        );
        // Reservations were given back.
        ok(&g);
        let small = chat(&"x".repeat(500_000), false);
        let r = post_json(&g.addr, "/v1/chat/completions", &small, &[]);
        assert_eq!(r.status, 200);
    }
);

both_drivers!(idle_connections_are_capped_and_time_out, |d| {
    let g = Gateway::start_with(
        MOCK_ONLY,
        d,
        &[],
        &[
            ("shards", "1"),
            ("max_connections_per_shard", "8"),
            ("first_request_timeout_ms", "500"),
        ],
    );
    // A connection that never sends a request is closed after the short first-request
    // timeout, not the 75 s keep-alive.
    let mut idle = TcpStream::connect(&g.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0);
    assert!(start.elapsed() < Duration::from_secs(3));

    // Past the cap, a connection gets 503 and is closed.
    let held: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(&g.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let r = post_json(&g.addr, "/v1/chat/completions", &chat("hi", false), &[]);
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "too_many_connections");
    // Once the idle ones time out, service is back.
    std::thread::sleep(Duration::from_millis(1200));
    ok(&g);
    drop(held);
    let lines = g.stderr().matches("connection limit reached").count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} log lines for the refusals"
    );
});

both_drivers!(descriptor_exhaustion_backs_off_and_recovers, |d| {
    use std::os::unix::process::CommandExt;
    let g = Gateway::start_adjusted(
        MOCK_ONLY,
        d,
        &[],
        &[("shards", "1"), ("first_request_timeout_ms", "500")],
        |cmd| {
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(|| {
                    let lim = libc::rlimit {
                        rlim_cur: 64,
                        rlim_max: 64,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    let held: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect(&g.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    ok(&g);
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    ok(&g);
    let err = g.stderr();
    let lines =
        err.matches("accept failed").count() + err.matches("connection limit reached").count();
    assert!(lines <= 4, "{lines} log lines:\n{err}");
});

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    use std::os::unix::process::CommandExt;
    let g = Gateway::start_adjusted(MOCK_ONLY, Driver::Uring, &[], &[], |cmd| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 2048,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", g.proc.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(soft, 2048, "{line}");
}

both_drivers!(a_client_that_hangs_up_cancels_the_provider_call, |d| {
    let up = ScriptedUpstream::start(None);
    let cfg = format!(
        r#"
[providers.slow]
kind = "openai"
base_url = "{}"

[models."gpt-4o-mini"]
targets = [{{ provider = "slow", model = "m" }}]
"#,
        up.base_url()
    );
    let g = Gateway::start(&cfg, d);
    let body = chat("hi", false);
    let mut s = TcpStream::connect(&g.addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.requests.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the provider got no request");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while up.closed_while_waiting.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the provider call went on after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let recs = g.wait_records(1);
    assert_eq!(recs[0]["status"], 499);
    assert_eq!(recs[0]["error"], "client_closed");
    assert_eq!(recs[0]["attempts"][0]["error"], "client_closed");
});

both_drivers!(client_strings_in_records_and_errors_are_bounded, |d| {
    let g = Gateway::start(MOCK_ONLY, d);
    let model = "m".repeat(60_000);
    let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
    let r = post_json(&g.addr, "/v1/chat/completions", &body, &[]);
    assert_eq!(r.status, 404);
    assert!(r.body.len() < 2_000, "{} bytes echoed", r.body.len());
    let recs = g.wait_records(1);
    let recorded = recs[0]["model"].as_str().unwrap();
    assert!(recorded.chars().count() <= 257, "{}", recorded.len());
    assert!(recorded.ends_with('…'));
    let log = std::fs::read_to_string(g.dir.path().join("requests.jsonl")).unwrap();
    assert!(log.len() < 4_000, "the record holds {} bytes", log.len());
});
