//! Per-provider concurrency limits and the targets' health in `/admin/health`, with the real
//! binary and mockllm: a provider with `max_concurrency = 2` and slow answers sends the
//! overflow of six concurrent calls to the next target, or answers 503 when it is the only
//! one; its in-flight count returns to 0 however an answer ends; a target failing every
//! call shows as ejected, and one answering 429 as benched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A GET on the admin listener, with the admin token.
fn admin_get(g: &Gateway, path: &str) -> RawResponse {
    raw_request(
        &g.admin,
        &format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    )
}

/// `GET /admin/health` as JSON.
fn health(g: &Gateway) -> serde_json::Value {
    let r = admin_get(g, "/admin/health");
    assert_eq!(r.status, 200, "{}", r.body_str());
    r.json()
}

/// The `/admin/health` entry of target `provider`/`model`.
fn target(g: &Gateway, provider: &str, model: &str) -> serde_json::Value {
    let h = health(g);
    h["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["provider"] == provider && t["model"] == model)
        .unwrap_or_else(|| panic!("no target {provider}/{model} in {h}"))
        .clone()
}

/// The provider's attempts in flight, as `/admin/health` and `/metrics` both say.
fn in_flight(g: &Gateway, provider: &str) -> u64 {
    let from_health = health(g)["providers"][provider]["in_flight"]
        .as_u64()
        .unwrap();
    let metrics = admin_get(g, "/metrics");
    let prefix = format!("infergate_upstream_in_flight{{provider=\"{provider}\"}} ");
    let from_metrics: u64 = metrics
        .body_str()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {}", metrics.body_str()))
        .parse()
        .unwrap();
    // Read one after the other: equal unless an attempt began or ended in between.
    from_health.max(from_metrics)
}

/// Waits until `provider` has `n` attempts in flight (5 s at most).
fn wait_in_flight(g: &Gateway, provider: &str, n: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = in_flight(g, provider);
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} attempts in flight at {provider}, not {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The line of a scrape that starts with `prefix`.
fn metric_line(g: &Gateway, prefix: &str) -> String {
    let metrics = admin_get(g, "/metrics");
    metrics
        .body_str()
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {}", metrics.body_str()))
        .to_string()
}

/// Sends `n` chat calls for `model` at once; returns each response.
fn concurrent(g: &Gateway, model: &str, n: usize) -> Vec<RawResponse> {
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let addr = g.addr.clone();
            let body = chat_body(model, false);
            std::thread::spawn(move || post_json(&addr, "/v1/chat/completions", &body, &[]))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The providers each attempt of a record went to, with `!` after a refused one.
fn attempts(record: &serde_json::Value) -> Vec<String> {
    record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let p = a["provider"].as_str().unwrap();
            match a["error"].as_str() {
                Some("concurrency_limited") => format!("{p}!"),
                _ => p.to_string(),
            }
        })
        .collect()
}

#[test]
fn a_full_provider_sends_the_overflow_to_the_next_target() {
    // Slow enough that all six arrive while the first two wait, on a busy machine too.
    let slow = Mock::start(&["--ttft-ms", "1500"]);
    let spare = Mock::start(&[]);
    let config = format!(
        r#"
[providers.slow]
kind = "openai"
base_url = "{}"
max_concurrency = 2

[providers.spare]
kind = "openai"
base_url = "{}"

[models.m]
targets = [{{ provider = "slow", model = "gpt-4o-mini" }}, {{ provider = "spare", model = "gpt-4o-mini" }}]
"#,
        slow.base_url(),
        spare.base_url()
    );
    // Two shards: the limit holds over both.
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "2")]);
    for r in concurrent(&g, "m", 6) {
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let records = g.wait_records(6);
    let mut orders: Vec<Vec<String>> = records.iter().map(attempts).collect();
    orders.sort();
    assert_eq!(
        orders,
        [
            vec!["slow"],
            vec!["slow"],
            vec!["slow!", "spare"],
            vec!["slow!", "spare"],
            vec!["slow!", "spare"],
            vec!["slow!", "spare"],
        ]
    );
    // A refusal is no call: no status, no time.
    let refused = records
        .iter()
        .find(|r| r["provider"] == "spare")
        .unwrap()
        .clone();
    assert!(refused["attempts"][0]["status"].is_null(), "{refused}");
    assert!(
        refused["attempts"][0]["latency_ms"].as_f64().unwrap() < 5.0,
        "{refused}"
    );
    assert_eq!(slow.stats()["requests"]["chat"], 2, "{}", slow.stats());
    wait_in_flight(&g, "slow", 0, "after the calls");
    assert_eq!(
        metric_line(
            &g,
            "infergate_upstream_concurrency_refusals_total{provider=\"slow\"}"
        ),
        "infergate_upstream_concurrency_refusals_total{provider=\"slow\"} 4"
    );
    let h = health(&g);
    assert_eq!(h["providers"]["slow"]["max_concurrency"], 2);
    assert_eq!(
        h["providers"]["spare"]["max_concurrency"],
        serde_json::Value::Null
    );
}

#[test]
fn a_lone_full_target_answers_503_in_the_clients_dialect() {
    let slow = Mock::start(&["--ttft-ms", "1000"]);
    let config = format!(
        r#"
[providers.slow]
kind = "openai"
base_url = "{}"
max_concurrency = 2

[models.m]
targets = [{{ provider = "slow", model = "gpt-4o-mini" }}]
"#,
        slow.base_url()
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "2")]);
    let answers = concurrent(&g, "m", 6);
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 2);
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 503, "{}", r.body_str());
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        assert_eq!(r.json()["error"]["code"], "upstream_concurrency_exhausted");
    }
    let records = g.wait_records(6);
    let refused: Vec<_> = records.iter().filter(|r| r["status"] == 503).collect();
    assert_eq!(refused.len(), 4);
    for r in refused {
        assert_eq!(attempts(r), ["slow!"]);
        assert_eq!(r["error"], "upstream_concurrency_exhausted");
    }
    // An Anthropic client of a full gateway gets Anthropic's error shape.
    wait_in_flight(&g, "slow", 0, "after the calls");
    let holders = {
        let addr = g.addr.clone();
        std::thread::spawn(move || {
            let body = chat_body("m", false);
            let a = std::thread::spawn({
                let (addr, body) = (addr.clone(), body.clone());
                move || post_json(&addr, "/v1/chat/completions", &body, &[])
            });
            let b = post_json(&addr, "/v1/chat/completions", &body, &[]);
            (a.join().unwrap(), b)
        })
    };
    wait_in_flight(&g, "slow", 2, "two calls held");
    let messages = r#"{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_json(&g.addr, "/v1/messages", messages, &[]);
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "overloaded_error", "{v}");
    let (a, b) = holders.join().unwrap();
    assert_eq!((a.status, b.status), (200, 200));
    wait_in_flight(&g, "slow", 0, "after the held calls");
}

#[test]
fn a_reload_keeps_the_count_of_attempts_in_flight() {
    let slow = Mock::start(&["--ttft-ms", "1500"]);
    let config = |limit: u32| {
        format!(
            "[providers.slow]\nkind = \"openai\"\nbase_url = \"{}\"\nmax_concurrency = {limit}\n\n\
             [models.m]\ntargets = [{{ provider = \"slow\", model = \"gpt-4o-mini\" }}]\n",
            slow.base_url()
        )
    };
    let g = Gateway::start_with(&config(1), Driver::Uring, &[], &[("shards", "2")]);
    let held = {
        let addr = g.addr.clone();
        std::thread::spawn(move || {
            post_json(&addr, "/v1/chat/completions", &chat_body("m", false), &[])
        })
    };
    wait_in_flight(&g, "slow", 1, "one call held");
    // A new table (the limit rewritten as it was): the call in flight still counts.
    g.rewrite_config(&format!("# reloaded\n{}", config(1)));
    let r = g.admin_reload();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(in_flight(&g, "slow"), 1);
    let r = post_json(&g.addr, "/v1/chat/completions", &chat_body("m", false), &[]);
    assert_eq!(r.status, 503, "{}", r.body_str());
    assert_eq!(held.join().unwrap().status, 200);
    wait_in_flight(&g, "slow", 0, "after the held call");
    // A raised limit applies from the next request.
    g.rewrite_config(&config(2));
    assert_eq!(g.admin_reload().status, 200);
    assert_eq!(health(&g)["providers"]["slow"]["max_concurrency"], 2);
}

/// Opens a streamed call with `headers` and reads until the first event came.
fn open_stream(g: &Gateway, headers: &[(&str, &str)]) -> TcpStream {
    let body = chat_body("m", true);
    let mut s = TcpStream::connect(&g.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        g.addr,
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(6).any(|w| w == b"data: ") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the first event");
        got.extend_from_slice(&buf[..n]);
    }
    s
}

#[test]
fn the_in_flight_count_returns_to_zero_however_an_answer_ends() {
    // Slow streams (40 tokens 50 ms apart) unless a call asks otherwise.
    let mock = Mock::start(&["--tokens", "40", "--itl-ms", "50"]);
    let config = format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{}"
forward_headers = ["x-mock-*"]
max_concurrency = 8
stream_idle_timeout_ms = 300

[models.m]
targets = [{{ provider = "p", model = "gpt-4o-mini" }}]
eject = {{ consecutive_failures = 0 }}
"#,
        mock.base_url()
    );
    let g = Gateway::start_with(
        &config,
        Driver::Uring,
        &[("INFERGATE_FAILPOINTS", "1")],
        &[("shards", "2")],
    );
    let fast = ("x-mock-itl-ms", "0");
    let send = |stream: bool, headers: &[(&str, &str)]| {
        post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("m", stream),
            headers,
        )
    };

    // A whole answer, and a stream relayed to its end.
    assert_eq!(send(false, &[fast]).status, 200);
    wait_in_flight(&g, "p", 0, "whole answer");
    let r = send(true, &[fast]);
    assert!(r.body_str().contains("[DONE]"), "{}", r.body_str());
    wait_in_flight(&g, "p", 0, "complete stream");

    // The client goes away mid-stream: counted while it streams, not after.
    let s = open_stream(&g, &[]);
    wait_in_flight(&g, "p", 1, "stream open");
    drop(s);
    wait_in_flight(&g, "p", 0, "client gone mid-stream");

    // The provider fails: before answering, or mid-stream (reset, error event, silence).
    assert_eq!(send(false, &[("x-mock-fault", "status:503")]).status, 503);
    wait_in_flight(&g, "p", 0, "provider error status");
    assert_eq!(send(false, &[("x-mock-fault", "reset")]).status, 502);
    wait_in_flight(&g, "p", 0, "provider reset");
    for fault in ["reset-mid-stream", "error-mid-stream", "stall-mid-stream"] {
        let r = send(true, &[("x-mock-fault", fault)]);
        assert_eq!(r.status, 200);
        assert!(
            r.body_str().contains("\"error\""),
            "{fault}: {}",
            r.body_str()
        );
        wait_in_flight(&g, "p", 0, fault);
    }

    // The call's agent run is killed mid-stream.
    let mut s = open_stream(&g, &[("x-infergate-run-id", "run-to-kill")]);
    wait_in_flight(&g, "p", 1, "run's stream open");
    let kill = raw_request(
        &g.admin,
        &format!(
            "POST /admin/runs/run-to-kill/kill HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    );
    assert_eq!(kill.status, 200, "{}", kill.body_str());
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        String::from_utf8_lossy(&rest).contains("run_killed"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    wait_in_flight(&g, "p", 0, "run killed");

    // A panic while the stream's permit is held.
    let r = raw_request(
        &g.addr,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-mock-itl-ms: 0\r\nx-infergate-failpoint: panic-after-stream\r\ncontent-length: {}\r\n\r\n{}",
            chat_body("m", true).len(),
            chat_body("m", true)
        ),
    );
    assert_eq!(r.status, 200);
    wait_in_flight(&g, "p", 0, "panic after a stream");
    assert!(
        g.stderr().contains("panic after a stream"),
        "{}",
        g.stderr()
    );

    // And still serving, with the limit intact.
    assert_eq!(send(false, &[fast]).status, 200);
    wait_in_flight(&g, "p", 0, "last call");
}

#[test]
fn admin_health_shows_ejected_and_benched_targets() {
    let down = Mock::start(&["--fault", "status:503"]);
    let limited = Mock::start(&["--fault", "status:429"]);
    let up = Mock::start(&[]);
    let config = format!(
        r#"
[providers.down]
kind = "openai"
base_url = "{}"

[providers.limited]
kind = "openai"
base_url = "{}"

[providers.up]
kind = "openai"
base_url = "{}"

[models.failing]
targets = [{{ provider = "down", model = "gpt-4o-mini" }}]
eject = {{ consecutive_failures = 3, cooldown_ms = 60000 }}

[models.busy]
targets = [{{ provider = "limited", model = "gpt-4o" }}, {{ provider = "up", model = "gpt-4o" }}]
"#,
        down.base_url(),
        limited.base_url(),
        up.base_url()
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    // Nothing seen yet: healthy.
    let t = target(&g, "down", "gpt-4o-mini");
    assert_eq!(t["state"], "healthy", "{t}");
    for _ in 0..2 {
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("failing", false),
            &[],
        );
        assert_eq!(r.status, 503);
    }
    // Failures short of the ejection show within the publish period.
    std::thread::sleep(Duration::from_millis(400));
    let t = target(&g, "down", "gpt-4o-mini");
    assert_eq!(
        (t["state"].as_str(), t["consecutive_failures"].as_u64()),
        (Some("healthy"), Some(2)),
        "{t}"
    );
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("failing", false),
        &[],
    );
    assert_eq!(r.status, 503);
    // The ejection is published at once.
    let t = target(&g, "down", "gpt-4o-mini");
    assert_eq!(t["state"], "ejected", "{t}");
    assert_eq!(t["shards"]["ejected"], 1, "{t}");
    assert_eq!(t["ejections"], 1, "{t}");
    let until = t["until_unix_ms"].as_u64().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(until > now_ms + 50_000 && until < now_ms + 61_000, "{t}");
    assert_eq!(
        metric_line(&g, "infergate_target_ejections_total{provider=\"down\""),
        "infergate_target_ejections_total{provider=\"down\",upstream_model=\"gpt-4o-mini\"} 1"
    );

    // A 429 benches its target for the retry-after, with the reason.
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("busy", false),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let t = target(&g, "limited", "gpt-4o");
    assert_eq!(
        (t["state"].as_str(), t["reason"].as_str()),
        (Some("benched"), Some("429")),
        "{t}"
    );
    assert_eq!(t["benched"]["429"], 1, "{t}");
    assert_eq!(
        metric_line(
            &g,
            "infergate_target_benched_total{provider=\"limited\",upstream_model=\"gpt-4o\",reason=\"429\"}"
        ),
        "infergate_target_benched_total{provider=\"limited\",upstream_model=\"gpt-4o\",reason=\"429\"} 1"
    );
    // The target that answered has a latency average and nothing against it.
    std::thread::sleep(Duration::from_millis(400));
    let t = target(&g, "up", "gpt-4o");
    assert_eq!(t["state"], "healthy", "{t}");
    assert!(t["ewma_ttfb_ms"].as_f64().unwrap() > 0.0, "{t}");
    assert_eq!(
        (t["in_flight"].as_u64(), t["consecutive_failures"].as_u64()),
        (Some(0), Some(0))
    );
    // mockllm's 429 says `retry-after: 1`: a second later the bench is over.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(target(&g, "limited", "gpt-4o")["state"], "healthy");
}
