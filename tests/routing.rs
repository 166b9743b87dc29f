//! Routing with live health, with the real binary and mockllm: a target that keeps failing
//! is ejected, then let back by one probe; a provider's 429 with `retry-after` benches its
//! target until then; the latency strategy sends most calls to the faster of two healthy
//! targets. One shard, so every request sees the same health.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::time::{Duration, Instant};

/// The providers each attempt of a record went to.
fn attempts(record: &serde_json::Value) -> Vec<String> {
    record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["provider"].as_str().unwrap().to_string())
        .collect()
}

/// Two mockllm providers and alias `m` over their `gpt-4o-mini`, in that order, with
/// `extra` lines in the alias; the first forwards the client's `x-mock-*` knobs (so a request
/// can make it fail), the second does not.
fn two_targets(first: (&str, &Mock), second: (&str, &Mock), extra: &str) -> String {
    let ((a, ma), (b, mb)) = (first, second);
    format!(
        "[providers.{a}]\nkind = \"openai\"\nbase_url = \"{}\"\nforward_headers = [\"x-mock-*\"]\n\n\
         [providers.{b}]\nkind = \"openai\"\nbase_url = \"{}\"\n\n\
         [models.m]\ntargets = [{{ provider = \"{a}\", model = \"gpt-4o-mini\" }}, \
         {{ provider = \"{b}\", model = \"gpt-4o-mini\" }}]\n{extra}\n",
        ma.base_url(),
        mb.base_url()
    )
}

/// `[providers.p0]`, `[providers.p1]`, ... for `mocks`, in order.
fn numbered_providers(mocks: &[Mock]) -> String {
    mocks
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "[providers.p{i}]\nkind = \"openai\"\nbase_url = \"{}\"\n\n",
                m.base_url()
            )
        })
        .collect()
}

/// `GET /metrics` on the admin listener.
fn metrics(g: &Gateway) -> RawResponse {
    raw_request(
        &g.admin,
        &format!(
            "GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    )
}

/// Sends one chat request for `model` with `headers` and returns the record it left.
fn call(g: &Gateway, model: &str, headers: &[(&str, &str)]) -> serde_json::Value {
    let before = g.records().len();
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body(model, false),
        headers,
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    g.wait_records(before + 1).pop().unwrap()
}

#[test]
fn a_failing_target_is_ejected_then_one_probe_lets_it_back() {
    let flaky = Mock::start(&[]);
    let good = Mock::start(&[]);
    // Only `flaky` forwards the mock's fault header: a request carrying it fails there
    // and succeeds at `good`.
    let config = two_targets(
        ("flaky", &flaky),
        ("good", &good),
        "eject = { consecutive_failures = 3, cooldown_ms = 800 }",
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let fail = [("x-mock-fault", "status:503")];
    for _ in 0..3 {
        assert_eq!(attempts(&call(&g, "m", &fail)), ["flaky", "good"]);
    }
    // Ejected: straight to the fallback, not even when the fault is gone.
    let ejected_at = Instant::now();
    for _ in 0..5 {
        assert_eq!(attempts(&call(&g, "m", &[])), ["good"]);
    }
    assert!(
        ejected_at.elapsed() < Duration::from_millis(800),
        "too slow a machine"
    );
    // After the cooldown one probe goes to it; it fails, so it is ejected for twice as long.
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(attempts(&call(&g, "m", &fail)), ["flaky", "good"]);
    assert_eq!(attempts(&call(&g, "m", &[])), ["good"]);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(attempts(&call(&g, "m", &[])), ["good"], "1.6 s, not 0.8");
    // The next probe answers: back in rotation, first again.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(attempts(&call(&g, "m", &[])), ["flaky"]);
    for _ in 0..3 {
        assert_eq!(attempts(&call(&g, "m", &[])), ["flaky"]);
    }
}

#[test]
fn a_429_benches_its_target_for_the_retry_after() {
    let limited = Mock::start(&[]);
    let other = Mock::start(&[]);
    let config = two_targets(("limited", &limited), ("other", &other), "");
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    // mockllm's 429 says `retry-after: 1`.
    let r = call(&g, "m", &[("x-mock-fault", "status:429")]);
    assert_eq!(attempts(&r), ["limited", "other"]);
    assert_eq!(r["attempts"][0]["status"], 429);
    let benched_at = Instant::now();
    for _ in 0..3 {
        assert_eq!(attempts(&call(&g, "m", &[])), ["other"]);
    }
    assert!(
        benched_at.elapsed() < Duration::from_secs(1),
        "too slow a machine"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(attempts(&call(&g, "m", &[])), ["limited"]);
}

#[test]
fn the_latency_strategy_sends_most_calls_to_the_faster_target() {
    let slow = Mock::start(&["--ttft-ms", "30"]);
    let fast = Mock::start(&["--ttft-ms", "2"]);
    let config = two_targets(("slow", &slow), ("fast", &fast), r#"strategy = "latency""#);
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let mut to_fast = 0;
    for _ in 0..40 {
        let r = call(&g, "m", &[]);
        assert_eq!(attempts(&r).len(), 1);
        if r["provider"] == "fast" {
            to_fast += 1;
        }
    }
    // Each gets tried while it has no sample; then the faster wins every draw of two
    // (the slow one's average fades with a 5 s half-life: not within this test).
    assert!(to_fast >= 36, "{to_fast} of 40 went to the faster target");
}

#[test]
fn the_retry_budget_caps_retries_during_a_full_outage() {
    let a = Mock::start(&["--fault", "status:503"]);
    let b = Mock::start(&["--fault", "status:503"]);
    let config = two_targets(("a", &a), ("b", &b), "retries = { budget_percent = 20 }");
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let n = 60;
    for _ in 0..n {
        let r = post_json(&g.addr, "/v1/chat/completions", &chat_body("m", false), &[]);
        // Every client still gets a well-formed answer: the provider's error.
        assert_eq!(r.status, 503, "{}", r.body_str());
        assert!(r.json()["error"]["message"].is_string());
    }
    let records = g.wait_records(n);
    let attempts: usize = records
        .iter()
        .map(|r| r["attempts"].as_array().unwrap().len())
        .sum();
    let spent = records
        .iter()
        .filter(|r| r["retry_budget_spent"] == true)
        .count();
    // Without a budget every request would have tried both (120 attempts); with it, retries
    // are at most 20% of the requests plus the floor of 10 per window.
    assert!(attempts <= n + 10 + n / 5, "{attempts} attempts");
    assert!(attempts > n, "some requests failed over: {attempts}");
    assert_eq!(spent, n * 2 - attempts, "each request cut short says so");
    // And the metrics count them.
    let metrics = metrics(&g);
    let line = format!("infergate_retry_budget_spent_total{{model=\"m\"}} {spent}");
    assert!(metrics.body_str().contains(&line), "{}", metrics.body_str());
}

#[test]
fn retries_past_the_targets_ask_them_again_after_a_backoff() {
    let down = Mock::start(&["--fault", "status:503"]);
    let config = format!(
        r#"
[providers.down]
kind = "openai"
base_url = "{}"

[models.m]
targets = [{{ provider = "down", model = "gpt-4o-mini" }}]
retries = {{ max = 2, base_ms = 20 }}
eject = {{ consecutive_failures = 0 }}
"#,
        down.base_url()
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let r = post_json(&g.addr, "/v1/chat/completions", &chat_body("m", false), &[]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("3"));
    let record = g.wait_records(1).pop().unwrap();
    assert_eq!(attempts(&record), ["down", "down", "down"]);
    // Each repeat waited a jittered backoff below 20 ms, then 40 ms: the attempts start
    // no sooner than they end.
    let starts: Vec<f64> = record["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["start_ms"].as_f64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[1] >= w[0]), "{starts:?}");
    assert!(starts[2] - starts[0] < 1_000.0, "{starts:?}");
}

#[test]
fn region_pinning_never_crosses_regions() {
    let us = Mock::start(&[]);
    let eu = Mock::start(&[]);
    let hash = |k: &str| infergate::policy::sha256_hex(k);
    let config = format!(
        r#"
[auth]
keys = [
  {{ name = "eu-key", sha256 = "{}", region = "eu" }},
  {{ name = "us-key", sha256 = "{}", region = "us" }},
  {{ name = "any-key", sha256 = "{}" }},
]

[providers.us]
kind = "openai"
base_url = "{}"
region = "us"

[providers.eu]
kind = "openai"
base_url = "{}"
region = "eu-west-1"
forward_headers = ["x-mock-*"]

[models.m]
targets = [{{ provider = "us", model = "gpt-4o-mini" }}, {{ provider = "eu", model = "gpt-4o-mini" }}]

[models.us-only]
targets = [{{ provider = "us", model = "gpt-4o-mini" }}]
"#,
        hash("key-eu"),
        hash("key-us"),
        hash("key-any"),
        us.base_url(),
        eu.base_url()
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let bearer = |k: &str| format!("Bearer {k}");
    let (eu_key, us_key, any_key) = (bearer("key-eu"), bearer("key-us"), bearer("key-any"));
    assert_eq!(
        attempts(&call(&g, "m", &[("authorization", &eu_key)])),
        ["eu"]
    );
    assert_eq!(
        attempts(&call(&g, "m", &[("authorization", &us_key)])),
        ["us"]
    );
    assert_eq!(
        attempts(&call(&g, "m", &[("authorization", &any_key)])),
        ["us"]
    );
    // The eu target failing: an eu request gets its error, never the us target.
    for _ in 0..8 {
        let before = g.records().len();
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat_body("m", false),
            &[("authorization", &eu_key), ("x-mock-fault", "status:503")],
        );
        assert_eq!(r.status, 503, "{}", r.body_str());
        let record = g.wait_records(before + 1).pop().unwrap();
        assert_eq!(attempts(&record), ["eu"]);
    }
    // No target in the region at all: a clear error in the client's dialect.
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("us-only", false),
        &[("authorization", &eu_key)],
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "no_target_in_region");
    assert_eq!(
        attempts(&call(&g, "us-only", &[("authorization", &us_key)])),
        ["us"]
    );
}

#[test]
fn a_session_sticks_to_its_target_and_moves_when_it_fails() {
    let mut mocks: Vec<Mock> = (0..3).map(|_| Mock::start(&[])).collect();
    let providers = numbered_providers(&mocks);
    let config = format!(
        r#"{providers}
[models.m]
targets = [{{ provider = "p0", model = "gpt-4o-mini", weight = 1 }}, {{ provider = "p1", model = "gpt-4o-mini", weight = 1 }}, {{ provider = "p2", model = "gpt-4o-mini", weight = 1 }}]
eject = {{ consecutive_failures = 2, cooldown_ms = 60000 }}
"#
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let session = [("x-infergate-session-id", "agent-run-42")];
    let home = call(&g, "m", &session)["provider"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..100 {
        assert_eq!(call(&g, "m", &session)["provider"], home.as_str());
    }
    // Without a session, weighted draws spread the calls.
    let spread: std::collections::HashSet<String> = (0..30)
        .map(|_| call(&g, "m", &[])["provider"].as_str().unwrap().to_string())
        .collect();
    assert!(spread.len() >= 2, "{spread:?}");
    // The home target goes down: the session fails over, then moves to one other target
    // for good once home is ejected, and the record says why.
    let i: usize = home.trim_start_matches('p').parse().unwrap();
    mocks[i].proc.child.kill().unwrap();
    mocks[i].proc.child.wait().unwrap();
    let first = call(&g, "m", &session);
    assert_eq!(attempts(&first)[0], home);
    let moved_to = first["provider"].as_str().unwrap().to_string();
    assert_ne!(moved_to, home);
    call(&g, "m", &session);
    for _ in 0..20 {
        let r = call(&g, "m", &session);
        assert_eq!(attempts(&r), [moved_to.as_str()]);
        assert_eq!(r["affinity_moved"], "ejected");
    }
    let metrics = metrics(&g);
    let line = r#"infergate_affinity_moves_total{model="m",reason="ejected"} 20"#;
    assert!(metrics.body_str().contains(line), "{}", metrics.body_str());
}

#[test]
fn rate_limit_headers_saying_nothing_is_left_route_away_before_a_429() {
    let full = Mock::start(&[]);
    let other = Mock::start(&[]);
    let config = two_targets(("full", &full), ("other", &other), "");
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    // Requests left: nothing changes.
    let left = [("x-mock-ratelimit-remaining", "5")];
    assert_eq!(attempts(&call(&g, "m", &left)), ["full"]);
    assert_eq!(attempts(&call(&g, "m", &[])), ["full"]);
    // The answer says none are left until the reset in 1 s: the next calls go elsewhere
    // without the provider having to refuse one.
    let none = [("x-mock-ratelimit-remaining", "0")];
    assert_eq!(attempts(&call(&g, "m", &none)), ["full"]);
    let at = Instant::now();
    for _ in 0..3 {
        assert_eq!(attempts(&call(&g, "m", &[])), ["other"]);
    }
    assert!(at.elapsed() < Duration::from_secs(1), "too slow a machine");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(attempts(&call(&g, "m", &[])), ["full"]);
}

#[test]
fn a_stream_that_goes_silent_ends_at_the_stream_idle_timeout() {
    let stalls = Mock::start(&["--tokens", "8"]);
    let config = format!(
        r#"
[providers.stalls]
kind = "openai"
base_url = "{}"
forward_headers = ["x-mock-*"]
first_byte_timeout_ms = 20000
stream_idle_timeout_ms = 300

[models.m]
targets = [{{ provider = "stalls", model = "gpt-4o-mini" }}]
"#,
        stalls.base_url()
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let started = Instant::now();
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("m", true),
        &[("x-mock-fault", "stall-mid-stream")],
    );
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    let body = r.body_str().to_string();
    // Half the answer came, then silence: the stream ends with an error event after
    // 0.3 s of it, not the 20 s first-byte timeout.
    assert!(body.contains("chat.completion.chunk"), "{body}");
    assert!(body.contains("\"error\""), "{body}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    let record = g.wait_records(1).pop().unwrap();
    assert!(record["error"].is_string(), "{record}");
}

#[test]
fn the_cost_strategy_picks_the_cheapest_target_able_to_serve_the_request() {
    let m = Mock::start(&[]);
    let config = format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{}"

[models.m]
strategy = "cost"
targets = [{{ provider = "p", model = "gpt-4o" }}, {{ provider = "p", model = "gpt-4o-mini", tools = false, context_tokens = 1000 }}]

[models.small-only]
targets = [{{ provider = "p", model = "gpt-4o-mini", tools = false }}]
"#,
        m.base_url()
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let model_of = |body: &str| {
        let before = g.records().len();
        let r = post_json(&g.addr, "/v1/chat/completions", body, &[]);
        (r, g.wait_records(before + 1).pop().unwrap())
    };
    // Plain: the cheaper model first (the listed order says otherwise).
    let (r, rec) = model_of(&chat_body("m", false));
    assert_eq!(r.status, 200);
    assert_eq!(rec["attempts"][0]["model"], "gpt-4o-mini");
    // With tools, or too long for its context: only the model able to.
    let tools = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
    let (r, rec) = model_of(&tools.to_string());
    assert_eq!(r.status, 200);
    assert_eq!(attempts(&rec).len(), 1);
    assert_eq!(rec["attempts"][0]["model"], "gpt-4o");
    let long = serde_json::json!({"model": "m",
        "messages": [{"role": "user", "content": "word ".repeat(1200)}]});
    let (_, rec) = model_of(&long.to_string());
    assert_eq!(rec["attempts"][0]["model"], "gpt-4o");
    // No target able to: a clear error.
    let tools = tools.to_string().replace("\"m\"", "\"small-only\"");
    let r = post_json(&g.addr, "/v1/chat/completions", &tools, &[]);
    assert_eq!(r.status, 400, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "no_capable_target");
    assert!(r.body_str().contains("tools"), "{}", r.body_str());
}

#[test]
fn conditional_rules_pick_a_target_list_by_header_tools_and_size() {
    let m = Mock::start(&[]);
    let config = format!(
        r#"
[providers.p]
kind = "openai"
base_url = "{}"

[models.m]
targets = [{{ provider = "p", model = "gpt-4o-mini" }}]

[[models.m.rules]]
when = {{ header = "x-tier", value = "premium" }}
targets = [{{ provider = "p", model = "gpt-4o" }}]

[[models.m.rules]]
when = {{ tools = true }}
targets = [{{ provider = "p", model = "gpt-4.1" }}]

[[models.m.rules]]
when = {{ min_prompt_tokens = 1000 }}
targets = [{{ provider = "p", model = "gpt-4.1-mini" }}]
"#,
        m.base_url()
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let send = |body: &str, headers: &[(&str, &str)]| {
        let before = g.records().len();
        let r = post_json(&g.addr, "/v1/chat/completions", body, headers);
        assert_eq!(r.status, 200, "{}", r.body_str());
        let rec = g.wait_records(before + 1).pop().unwrap();
        (
            rec["attempts"][0]["model"].as_str().unwrap().to_string(),
            rec["route_rule"].clone(),
        )
    };
    let plain = chat_body("m", false);
    assert_eq!(
        send(&plain, &[]),
        ("gpt-4o-mini".into(), serde_json::Value::Null)
    );
    assert_eq!(
        send(&plain, &[("x-tier", "Premium")]),
        ("gpt-4o".into(), 1.into())
    );
    assert_eq!(send(&plain, &[("x-tier", "basic")]).0, "gpt-4o-mini");
    let tools = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});
    assert_eq!(send(&tools.to_string(), &[]), ("gpt-4.1".into(), 2.into()));
    // The first rule that holds wins.
    assert_eq!(
        send(&tools.to_string(), &[("x-tier", "premium")]).0,
        "gpt-4o"
    );
    let long = serde_json::json!({"model": "m",
        "messages": [{"role": "user", "content": "word ".repeat(1000)}]});
    assert_eq!(
        send(&long.to_string(), &[]),
        ("gpt-4.1-mini".into(), 3.into())
    );
}

#[test]
fn affinity_can_follow_a_body_field_such_as_the_user() {
    let mocks: Vec<Mock> = (0..3).map(|_| Mock::start(&[])).collect();
    let providers = numbered_providers(&mocks);
    let config = format!(
        r#"{providers}
[models.m]
targets = [{{ provider = "p0", model = "gpt-4o-mini", weight = 1 }}, {{ provider = "p1", model = "gpt-4o-mini", weight = 1 }}, {{ provider = "p2", model = "gpt-4o-mini", weight = 1 }}]
affinity_fields = ["metadata.user_id", "user"]
"#
    );
    let g = Gateway::start_with(&config, Driver::Uring, &[], &[("shards", "1")]);
    let body = |user: &str| {
        serde_json::json!({"model": "m", "user": user,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string()
    };
    let provider_of = |b: &str| {
        let before = g.records().len();
        assert_eq!(
            post_json(&g.addr, "/v1/chat/completions", b, &[]).status,
            200
        );
        g.wait_records(before + 1).pop().unwrap()["provider"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Each user sticks to one target; users spread over the targets.
    let mut homes = std::collections::HashSet::new();
    for user in ["ana", "bo", "cy", "di", "ed", "fay", "gus", "hal"] {
        let home = provider_of(&body(user));
        for _ in 0..10 {
            assert_eq!(provider_of(&body(user)), home, "{user}");
        }
        homes.insert(home);
    }
    assert!(homes.len() >= 2, "{homes:?}");
}
