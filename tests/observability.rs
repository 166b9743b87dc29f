//! Observability with the real binary after one mixed run (plain, streamed, translated,
//! failed over, cached, refused, unknown model): the records, the Prometheus metrics and the
//! OTLP spans count the same requests and attempts; the admin API answers queries over the
//! recent records and usage; `infergate logs` reads the log and its rotated files; an alias
//! with `log_bodies` records bodies with its guardrail rules' matches redacted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

fn config(mock: &Mock, otel: &str) -> String {
    format!(
        r#"
[otel]
endpoint = "{otel}"
sample_ratio = 1.0

[providers.mock]
kind = "openai"
base_url = "{url}"

[providers.dead]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"

[guardrails.watch]
rules = ["email"]
action = "flag"

[models.chat]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
guardrails = ["watch"]
log_bodies = true

[models.failover]
targets = [{{ provider = "dead", model = "gpt-4o-mini" }}, {{ provider = "mock", model = "gpt-4o" }}]

[models.cached]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
cache = {{ exact = true }}
"#,
        url = mock.base_url()
    )
}

fn chat(model: &str, stream: bool, text: &str) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
        .to_string()
}

fn admin_get(g: &Gateway, path: &str) -> RawResponse {
    raw_request(
        &g.admin,
        &format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    )
}

/// The sum of every sample of `name` in a Prometheus text page.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let n = series.split_once('{').map_or(series, |(n, _)| n);
            (n == name).then(|| v.parse::<f64>().unwrap())
        })
        .sum()
}

/// Sends the mixed run; returns how many requests it made.
fn mixed_run(g: &Gateway) -> usize {
    let meta = [("x-infergate-metadata", r#"{"agent": "planner", "step": 3}"#)];
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("chat", false, "mail ops@example.org"),
        &meta,
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("chat", true, "stream please"),
        &[],
    );
    assert_eq!(r.status, 200);
    let messages =
        json!({"model": "chat", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]});
    let r = post_json(&g.addr, "/v1/messages", &messages.to_string(), &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("failover", false, "fall over"),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    for expected in ["miss", "hit"] {
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat("cached", false, "same question"),
            &[],
        );
        assert_eq!(r.header("x-infergate-cache").as_deref(), Some(expected));
    }
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("nobody", false, "x"),
        &[],
    );
    assert_eq!(r.status, 404);
    let bad = [("x-infergate-metadata", "[1, 2]")];
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat("chat", false, "x"),
        &bad,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "invalid_metadata");
    8
}

#[test]
fn records_metrics_and_traces_agree_and_can_be_queried() {
    let receiver = OtlpReceiver::start();
    let m = Mock::start(&[]);
    let g = Gateway::start(&config(&m, &receiver.endpoint()), Driver::Uring);
    let n = mixed_run(&g);
    let records = g.wait_records(n);
    assert_eq!(records.len(), n, "{records:?}");
    let attempts: usize = records
        .iter()
        .map(|r| r["attempts"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        attempts, 6,
        "chat ×3, failover ×2, cache miss ×1: {records:#?}"
    );

    // Metrics count the same requests and attempts.
    let page = admin_get(&g, "/metrics");
    assert_eq!(page.status, 200);
    let text = page.body_str().to_string();
    assert_eq!(
        metric_sum(&text, "infergate_requests_total"),
        n as f64,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "infergate_upstream_attempts_total"),
        attempts as f64
    );
    assert_eq!(metric_sum(&text, "infergate_failovers_total"), 1.0);
    let tokens_in: u64 = records.iter().filter_map(|r| r["tokens_in"].as_u64()).sum();
    let tokens_out: u64 = records
        .iter()
        .filter_map(|r| r["tokens_out"].as_u64())
        .sum();
    let counted = metric_sum(&text, "infergate_tokens_total");
    assert!(
        counted >= (tokens_in + tokens_out) as f64,
        "{counted} vs {tokens_in}+{tokens_out}"
    );

    // Traces: one server span per record, one client span per attempt, joined by trace id.
    let deadline = Instant::now() + Duration::from_secs(15);
    let spans = loop {
        let spans = receiver.lines();
        let servers = spans.iter().filter(|s| s["kind"] == 2).count();
        if servers >= n || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let servers: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 2).collect();
    let clients = spans.iter().filter(|s| s["kind"] == 3).count();
    assert_eq!(servers.len(), n, "{spans:#?}");
    assert_eq!(clients, attempts);
    for r in &records {
        assert!(
            servers.iter().any(|s| s["trace_id"] == r["trace_id"]),
            "no server span for record {r}"
        );
    }

    // Records: overhead, cost parts (the mock's model is priced), client metadata, and the
    // logged bodies with the email redacted.
    let first = records
        .iter()
        .find(|r| r["client_metadata"].is_object())
        .unwrap();
    assert_eq!(
        first["client_metadata"],
        json!({"agent": "planner", "step": 3})
    );
    assert!(first["overhead_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        first["cost"]["input_usd"].as_f64().unwrap() > 0.0,
        "{first}"
    );
    let logged = first["request_body"].to_string();
    assert!(
        logged.contains("[REDACTED:email]") && !logged.contains("ops@example.org"),
        "{logged}"
    );
    assert!(first["response_body"]["choices"].is_array(), "{first}");
    let streamed = records.iter().find(|r| r["stream"] == true).unwrap();
    assert!(streamed["response_body"]
        .as_str()
        .unwrap()
        .contains("data: [DONE]"));
    assert!(records
        .iter()
        .filter(|r| r["model"] == "cached")
        .all(|r| r.get("request_body").is_none()));

    // Admin queries over the recent records.
    let failed = admin_get(&g, "/admin/requests?status=4xx");
    assert_eq!(failed.status, 200, "{}", failed.body_str());
    assert_eq!(failed.json()["count"], 2);
    let id = records[0]["request_id"].as_str().unwrap();
    let one = admin_get(&g, &format!("/admin/requests/{id}"));
    assert_eq!(one.json()["request_id"], id);
    let by_model = admin_get(&g, "/admin/usage?by=model&window=day").json();
    let chat_row = by_model["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "chat")
        .unwrap();
    // The request refused for its metadata never got as far as naming a model.
    assert_eq!(chat_row["requests"], 3, "{by_model}");
    assert_eq!(chat_row["errors"], 0);
    assert_eq!(admin_get(&g, "/admin/requests?colour=red").status, 400);
}

#[test]
fn infergate_logs_reads_a_log_and_its_rotated_files() {
    let m = Mock::start(&[]);
    let g = Gateway::start(&config(&m, "http://127.0.0.1:1"), Driver::Uring);
    let n = mixed_run(&g);
    let records = g.wait_records(n);
    // Rotate by hand the way the writer does (`.1` by size, `.YYYY-MM-DD` by day): the
    // oldest three records move to a dated file, the next two to `.1`.
    let log = g.dir.path().join("requests.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let dated = g.dir.path().join("requests.jsonl.2026-12-06");
    std::fs::write(&dated, format!("{}\n", lines[..3].join("\n"))).unwrap();
    std::fs::write(
        g.dir.path().join("requests.jsonl.1"),
        format!("{}\n", lines[3..5].join("\n")),
    )
    .unwrap();
    std::fs::write(&log, format!("{}\n", lines[5..].join("\n"))).unwrap();

    let logs = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_infergate"))
            .arg("logs")
            .args(args)
            .arg(&log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let all: Vec<Value> = logs(&["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.len(), records.len());
    let times: Vec<&str> = all.iter().map(|r| r["time"].as_str().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );
    let errors = logs(&["--json", "--errors"]);
    assert_eq!(errors.lines().count(), 2, "{errors}");
    let cached = logs(&["--json", "--model", "cached"]);
    assert_eq!(cached.lines().count(), 2);
    let newest = logs(&["--json", "--limit", "1"]);
    assert_eq!(
        serde_json::from_str::<Value>(newest.trim()).unwrap()["request_id"],
        all[all.len() - 1]["request_id"]
    );
    let since_future = logs(&["--json", "--since", "2999-01-01"]);
    assert!(since_future.is_empty());
    let table = logs(&[]);
    assert!(table.starts_with("TIME"), "{table}");
    assert_eq!(table.lines().count(), records.len() + 1);
    assert!(
        table.contains("mock/gpt-4o") && table.contains("cache:hit"),
        "{table}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["logs", "--status", "2x"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
