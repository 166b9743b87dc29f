//! Governance state that changes at run time, with the real binary: keys created, used and
//! revoked through the admin API; keys, budget spend and killed runs surviving a restart;
//! agent runs stopped by loop detection, and a killed run's open stream ending with an error
//! event.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn admin(g: &Gateway, method: &str, path: &str, body: &str) -> RawResponse {
    raw_request(
        &g.admin,
        &format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            g.admin,
            body.len()
        ),
    )
}

fn chat_as(g: &Gateway, key: &str, extra: &[(&str, &str)], body: &str) -> RawResponse {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    post_json(&g.addr, "/v1/chat/completions", body, &headers)
}

fn body(max_tokens: u32) -> String {
    format!(
        r#"{{"model":"mock-model","max_tokens":{max_tokens},"messages":[{{"role":"user","content":"Count to sixteen."}}]}}"#
    )
}

fn config(mock: &Mock, store: &std::path::Path) -> String {
    format!(
        r#"
[store]
path = "{}"

[governance]
run_id_fields = ["metadata.run_id", "user"]

[providers.mock]
kind = "openai"
base_url = "{}"

[models."mock-model"]
targets = [{{ provider = "mock", model = "mock-model" }}]

[pricing."mock-model"]
input = 0.01
output = 100.0

[tenants.acme]
models = ["mock-*"]
runs = {{ loop_repeat = 3, max_steps = 50 }}

[auth]
keys = [ {{ name = "ops", sha256 = "{}", tenant = "acme" }} ]
"#,
        store.display(),
        mock.base_url(),
        infergate::policy::sha256_hex("ig-ops-key"),
    )
}

/// SIGTERM, and wait for the process to finish its drain and final flush.
fn stop(mut g: Gateway) {
    g.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while g.proc.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "gateway did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn admin_keys_spend_and_killed_runs_survive_a_restart() {
    let m = Mock::start(&["--tokens", "16"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("infergate.db");
    let cfg = config(&m, &db);
    let g = Gateway::start(&cfg, Driver::Uring);

    // A tenant and a key made at run time; the plaintext is shown once.
    let r = admin(
        &g,
        "POST",
        "/admin/tenants",
        r#"{"name":"beta","limits":{"rpm":100}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_str());
    let r = admin(
        &g,
        "POST",
        "/admin/keys",
        r#"{"name":"bot-7","tenant":"beta","budget":{"usd":0.01,"per":"total"},"region":"ap-south","metadata":{"agent":"crawler"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_str());
    let secret = r.json()["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("ig-") && secret.len() > 60);
    // Bad input is a 400 that says what is wrong; a duplicate a 409; no token, 401.
    let bad = admin(
        &g,
        "POST",
        "/admin/keys",
        r#"{"name":"x","tenant":"nobody"}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.body_str());
    assert!(bad.body_str().contains("nobody"));
    assert_eq!(
        admin(&g, "POST", "/admin/keys", r#"{"name":"bot-7"}"#).status,
        409
    );
    assert_eq!(
        admin(&g, "POST", "/admin/keys", r#"{"name":"y","color":"red"}"#).status,
        400
    );
    let anonymous = raw_request(
        &g.admin,
        &format!(
            "DELETE /admin/keys/bot-7 HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    );
    assert_eq!(anonymous.status, 401);

    // The new key works at once, on every shard, and spends from its budget.
    for _ in 0..4 {
        let r = chat_as(&g, &secret, &[], &body(16));
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let listed = admin(&g, "GET", "/admin/keys", "").json();
    assert!(listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["name"] == "bot-7" && k["source"] == "store"));
    assert!(!admin(&g, "GET", "/admin/keys", "")
        .body_str()
        .contains(&secret));
    let spent = admin(&g, "GET", "/admin/keys/bot-7", "").json()["budget"]["spent_usd"]
        .as_f64()
        .unwrap();
    assert!(spent > 0.006, "{spent}");

    // A run killed before the restart.
    let r = admin(&g, "POST", "/admin/runs/run-dead/kill", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let records = g.wait_records(4);
    assert_eq!(records[0]["region"], "ap-south");
    assert_eq!(records[0]["tenant"], "beta");
    stop(g);

    // After the restart: the key, its spend and the killed run are all still there.
    let g = Gateway::start(&cfg, Driver::Uring);
    let after = admin(&g, "GET", "/admin/keys/bot-7", "").json();
    let spent_after = after["budget"]["spent_usd"].as_f64().unwrap();
    assert!(
        (spent_after - spent).abs() < 1e-9,
        "{spent_after} vs {spent}"
    );
    let r = chat_as(&g, &secret, &[], &body(16));
    assert_eq!(r.status, 200, "{}", r.body_str());
    // $0.01 holds six 16-token calls: what was spent before the restart still counts.
    let mut refused = None;
    for _ in 0..4 {
        let r = chat_as(&g, &secret, &[], &body(16));
        if r.status == 429 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the budget spent before the restart was forgotten");
    assert_eq!(refused.json()["error"]["code"], "insufficient_quota");
    let r = chat_as(
        &g,
        "ig-ops-key",
        &[("x-infergate-run-id", "run-dead")],
        &body(16),
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "run_killed");
    // The run id may also come from the body fields the config names.
    let by_user = r#"{"model":"mock-model","max_tokens":16,"user":"run-dead","messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(
        chat_as(&g, "ig-ops-key", &[], by_user).json()["error"]["code"],
        "run_killed"
    );
    let by_metadata = r#"{"model":"mock-model","max_tokens":16,"metadata":{"run_id":"run-dead"},"messages":[{"role":"user","content":"hi"}]}"#;
    assert_eq!(
        chat_as(&g, "ig-ops-key", &[], by_metadata).json()["error"]["code"],
        "run_killed"
    );

    // Revoked: the next request is refused, on every shard.
    let r = admin(&g, "DELETE", "/admin/keys/bot-7", "");
    assert_eq!(r.status, 200, "{}", r.body_str());
    for _ in 0..3 {
        assert_eq!(chat_as(&g, &secret, &[], &body(16)).status, 401);
    }
    // Config keys are changed in the file, not here.
    assert_eq!(admin(&g, "DELETE", "/admin/keys/ops", "").status, 409);
}

fn tool_turn(args: &str) -> String {
    format!(
        r#"{{"model":"mock-model","max_tokens":16,"messages":[{{"role":"user","content":"find it"}},{{"role":"assistant","content":null,"tool_calls":[{{"id":"c1","type":"function","function":{{"name":"search","arguments":"{args}"}}}}]}},{{"role":"tool","tool_call_id":"c1","content":"no results"}}]}}"#
    )
}

#[test]
fn a_looping_run_is_stopped_and_a_killed_runs_stream_ends_with_an_error_event() {
    let m = Mock::start(&["--tokens", "60", "--itl-ms", "100"]);
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(&config(&m, &dir.path().join("db")), Driver::Uring);
    let run = [("x-infergate-run-id", "run-loop"), ("x-mock-itl-ms", "0")];

    // The agent repeats the same tool call: the third time in a row stops the run.
    let same = tool_turn(r#"{\"q\":\"weather\"}"#);
    let other = tool_turn(r#"{\"q\":\"news\"}"#);
    for b in [&same, &other, &same, &same] {
        let r = chat_as(&g, "ig-ops-key", &run, b);
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let r = chat_as(&g, "ig-ops-key", &run, &same);
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "run_loop_detected");
    assert!(
        r.body_str().contains("same tool call 3 times in a row"),
        "{}",
        r.body_str()
    );
    let r = chat_as(&g, "ig-ops-key", &run, &other);
    assert_eq!(r.json()["error"]["code"], "run_stopped");
    let view = admin(&g, "GET", "/admin/runs/run-loop", "").json();
    let acme = &view["runs"]["acme"];
    assert_eq!(
        (
            acme["state"].as_str(),
            acme["calls"].as_u64(),
            acme["refused"].as_u64()
        ),
        (Some("stopped"), Some(4), Some(2))
    );
    assert!(acme["tokens"].as_u64().unwrap() > 0);

    // A streamed call of another run, killed while it streams.
    let stream_body = r#"{"model":"mock-model","stream":true,"max_tokens":60,"messages":[{"role":"user","content":"Count slowly."}]}"#;
    let mut s = TcpStream::connect(&g.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer ig-ops-key\r\nx-infergate-run-id: run-kill\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{stream_body}",
        g.addr,
        stream_body.len()
    )
    .unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let r = admin(&g, "POST", "/admin/runs/run-kill/kill", "");
    assert_eq!(r.json()["live_runs"], 1, "{}", r.body_str());
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the stream ran on after the kill"
    );
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let resp = parse_response(&all);
    let text = resp.body_str();
    assert!(text.contains("\"code\":\"run_killed\""), "{text}");
    assert!(
        text.trim_end().ends_with("}"),
        "the error event is the last, whole event: {text}"
    );
    assert!(
        all.ends_with(b"0\r\n\r\n"),
        "the chunked stream is terminated"
    );
    // Later calls of the killed run are refused.
    let r = chat_as(
        &g,
        "ig-ops-key",
        &[("x-infergate-run-id", "run-kill")],
        &body(16),
    );
    assert_eq!(r.json()["error"]["code"], "run_killed");
}
