//! Traces through the real binary: the gateway exports OTLP/HTTP to a receiver built on the
//! official `opentelemetry-proto` Python package (tests/python/otlp_receiver.py), providers
//! are mockllm processes that report the `traceparent` they were sent. Checks the spans and
//! their GenAI attributes, the parent chain from the client's `traceparent` to each attempt,
//! failover, streams, a translated dialect, sampling, reload, and that a collector that is
//! down or silent never slows requests. `scripts/test-deps.sh` installs the package; without
//! it this test fails, it does not skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::OtlpReceiver as Receiver;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn config(otel: &str, bad: &str, good: &str) -> String {
    format!(
        r#"
[otel]
{otel}

[providers.primary]
kind = "openai"
base_url = "{good}"

[providers.broken]
kind = "openai"
base_url = "{bad}"

[models."gpt-4o-mini"]
targets = [{{ provider = "primary", model = "gpt-4o-mini-2024-07-18" }}]

[models."flaky"]
targets = [
  {{ provider = "broken", model = "gpt-4o" }},
  {{ provider = "primary", model = "gpt-4o-mini" }},
]
"#
    )
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// The request's last record (they are written in order).
fn last_record(g: &Gateway, n: usize) -> Value {
    g.wait_records(n).pop().unwrap()
}

/// Checks what every client span of a request shares: kind, parent, trace, timing inside
/// the server span.
fn check_client_span(server: &Value, client: &Value) {
    assert_eq!(client["kind"], 3, "{client}");
    assert_eq!(client["parent_span_id"], server["span_id"]);
    assert_eq!(client["trace_id"], server["trace_id"]);
    assert_eq!(attr(client, "gen_ai.operation.name"), "chat");
    let (s0, s1) = (
        server["start"].as_u64().unwrap(),
        server["end"].as_u64().unwrap(),
    );
    let (c0, c1) = (
        client["start"].as_u64().unwrap(),
        client["end"].as_u64().unwrap(),
    );
    assert!(
        s0 <= c0 && c0 < c1 && c1 <= s1,
        "client span [{c0}, {c1}] outside [{s0}, {s1}]"
    );
}

#[test]
fn requests_are_traced_from_the_client_through_every_attempt() {
    let receiver = Receiver::start();
    let good = Mock::start(&["--tokens", "7"]);
    let bad = Mock::start(&["--fault", "status:503"]);
    let otel = format!(
        "endpoint = \"{}\"\nservice_name = \"infergate-test\"\nsample_ratio = 1.0",
        receiver.endpoint()
    );
    let cfg = config(&otel, &bad.base_url(), &good.base_url());
    let g = Gateway::start(&cfg, Driver::Uring);

    // 1. A client with its own trace: the gateway's spans join it.
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[("traceparent", &traceparent), ("tracestate", "client=1")],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let record = last_record(&g, 1);
    assert_eq!(record["trace_id"], CLIENT_TRACE);
    let spans = receiver.wait_trace(CLIENT_TRACE, 2);
    let (server, client) = (&spans[0], &spans[1]);
    assert_eq!(server["kind"], 2);
    assert_eq!(server["name"], "POST /v1/chat/completions");
    assert_eq!(server["parent_span_id"], CLIENT_SPAN);
    assert_eq!(server["resource"]["service.name"], "infergate-test");
    assert_eq!(server["scope"], "infergate");
    assert!(server["schema_url"]
        .as_str()
        .unwrap()
        .contains("opentelemetry.io/schemas/"));
    assert_eq!(attr(server, "gen_ai.operation.name"), "chat");
    assert_eq!(attr(server, "gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(attr(server, "gen_ai.provider.name"), "openai");
    assert_eq!(attr(server, "http.response.status_code"), 200);
    assert_eq!(attr(server, "infergate.request_id"), &record["request_id"]);
    assert_eq!(attr(server, "gen_ai.usage.output_tokens"), 7);
    check_client_span(server, client);
    assert_eq!(client["name"], "chat gpt-4o-mini-2024-07-18");
    assert_eq!(attr(client, "gen_ai.provider.name"), "openai");
    assert_eq!(
        attr(client, "gen_ai.request.model"),
        "gpt-4o-mini-2024-07-18"
    );
    assert_eq!(
        attr(client, "gen_ai.response.model"),
        "gpt-4o-mini-2024-07-18"
    );
    assert_eq!(
        attr(client, "gen_ai.usage.input_tokens"),
        &record["tokens_in"]
    );
    assert_eq!(attr(client, "gen_ai.usage.output_tokens"), 7);
    assert_eq!(attr(client, "server.address"), "127.0.0.1");
    assert_eq!(client["status_code"], 0);
    // The provider saw the attempt's own span as its parent, and the client's tracestate.
    let sent = good.last_request();
    let want = format!(
        "00-{CLIENT_TRACE}-{}-01",
        client["span_id"].as_str().unwrap()
    );
    assert_eq!(sent["headers"]["traceparent"], want.as_str());
    assert_eq!(sent["headers"]["tracestate"], "client=1");

    // 2. Failover, no client trace: a new root trace with two client spans, one failed.
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("flaky", false),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    let record = last_record(&g, 2);
    let trace = record["trace_id"].as_str().unwrap().to_string();
    assert_eq!(trace.len(), 32);
    let spans = receiver.wait_trace(&trace, 3);
    let (server, failed, ok) = (&spans[0], &spans[1], &spans[2]);
    assert_eq!(server["parent_span_id"], "");
    assert_eq!(attr(server, "infergate.attempts"), 2);
    check_client_span(server, failed);
    check_client_span(server, ok);
    assert!(failed["end"].as_u64() <= ok["start"].as_u64());
    assert_eq!(attr(failed, "gen_ai.request.model"), "gpt-4o");
    assert_eq!(attr(failed, "infergate.provider"), "broken");
    assert_eq!(attr(failed, "http.response.status_code"), 503);
    assert_eq!(attr(failed, "error.type"), "503");
    assert_eq!(failed["status_code"], 2);
    assert_eq!(attr(ok, "infergate.provider"), "primary");
    assert!(attr(ok, "error.type").is_null());
    assert_eq!(ok["status_code"], 0);
    let failed_parent = format!("00-{trace}-{}-01", failed["span_id"].as_str().unwrap());
    assert_eq!(
        bad.last_request()["headers"]["traceparent"],
        failed_parent.as_str()
    );
    let ok_parent = format!("00-{trace}-{}-01", ok["span_id"].as_str().unwrap());
    assert_eq!(
        good.last_request()["headers"]["traceparent"],
        ok_parent.as_str()
    );

    // 3. A stream: the client span lasts until the stream ends, with the usage seen.
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    assert!(r.body_str().contains("data: [DONE]"));
    let record = last_record(&g, 3);
    assert_eq!(record["stream"], true);
    let spans = receiver.wait_trace(record["trace_id"].as_str().unwrap(), 2);
    let (server, client) = (&spans[0], &spans[1]);
    assert_eq!(attr(server, "infergate.stream"), true);
    check_client_span(server, client);
    assert_eq!(attr(client, "gen_ai.usage.output_tokens"), 7);
    assert_eq!(
        attr(client, "gen_ai.response.finish_reasons"),
        &serde_json::json!(["stop"])
    );
    let stream_ms = record["attempts"][0]["latency_ms"].as_f64().unwrap();
    let span_ms =
        (client["end"].as_u64().unwrap() - client["start"].as_u64().unwrap()) as f64 / 1e6;
    assert!(
        (span_ms - stream_ms).abs() < 1.0,
        "{span_ms} vs {stream_ms}"
    );

    // 4. An Anthropic Messages client to an OpenAI provider (translated both ways).
    let r = post_json(
        &g.addr,
        "/v1/messages",
        r#"{"model":"gpt-4o-mini","max_tokens":32,"messages":[{"role":"user","content":"hi"}]}"#,
        &[
            ("anthropic-version", "2023-06-01"),
            (
                "traceparent",
                &format!("00-{}-{CLIENT_SPAN}-01", "ab".repeat(16)),
            ),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.json()["type"], "message");
    let spans = receiver.wait_trace(&"ab".repeat(16), 2);
    let (server, client) = (&spans[0], &spans[1]);
    assert_eq!(server["name"], "POST /v1/messages");
    assert_eq!(attr(server, "http.route"), "/v1/messages");
    assert_eq!(attr(server, "gen_ai.operation.name"), "chat");
    check_client_span(server, client);
    assert_eq!(attr(client, "gen_ai.provider.name"), "openai");
    let sent = good.last_request();
    assert_eq!(sent["path"], "/v1/chat/completions");
    let want = format!(
        "00-{}-{}-01",
        "ab".repeat(16),
        client["span_id"].as_str().unwrap()
    );
    assert_eq!(sent["headers"]["traceparent"], want.as_str());

    // 5. An invalid traceparent is ignored (a new trace), and so is the tracestate with it;
    // an unsampled one is respected: no spans, but the provider still gets the context.
    let invalid = format!("00-{}-{CLIENT_SPAN}-01", CLIENT_TRACE.to_uppercase());
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[("traceparent", &invalid), ("tracestate", "client=1")],
    );
    assert_eq!(r.status, 200);
    let record = last_record(&g, 5);
    let trace = record["trace_id"].as_str().unwrap().to_string();
    assert_ne!(trace, CLIENT_TRACE);
    let sent = good.last_request();
    let tp = sent["headers"]["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with(&format!("00-{trace}-")) && tp.ends_with("-01"),
        "{tp}"
    );
    assert!(sent["headers"]["tracestate"].is_null(), "{sent}");
    let unsampled_trace = "cd".repeat(16);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[(
            "traceparent",
            &format!("00-{unsampled_trace}-{CLIENT_SPAN}-00"),
        )],
    );
    assert_eq!(r.status, 200);
    let tp = good.last_request()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        tp.starts_with(&format!("00-{unsampled_trace}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    assert!(
        !tp.contains(CLIENT_SPAN),
        "the client's traceparent was forwarded as is: {tp}"
    );
    // Spans go out in order: once the invalid one's trace arrived after it, the unsampled
    // request would have shown too.
    receiver.wait_trace(&trace, 2);
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200);
    let after = last_record(&g, 7);
    receiver.wait_trace(after["trace_id"].as_str().unwrap(), 2);
    let leaked = receiver
        .lines()
        .into_iter()
        .filter(|s| s["trace_id"] == unsampled_trace.as_str())
        .count();
    assert_eq!(leaked, 0, "an unsampled trace was exported");

    // 6. [otel] is read at start: a reload that changes it is taken (the routes) and
    // logged; one with a bad endpoint is refused.
    g.rewrite_config(&config(
        &format!("endpoint = \"{}\"\nsample_ratio = 0.5", receiver.endpoint()),
        &bad.base_url(),
        &good.base_url(),
    ));
    assert_eq!(g.admin_reload().status, 200);
    g.rewrite_config(&config(
        "endpoint = \"https://collector:4318\"",
        &bad.base_url(),
        &good.base_url(),
    ));
    let refused = g.admin_reload();
    assert_ne!(refused.status, 200);
    assert!(
        refused.body_str().contains("[otel] endpoint"),
        "{}",
        refused.body_str()
    );
    let stderr = g.stderr();
    assert!(stderr.contains("[otel] changed"), "{stderr}");
}

#[test]
fn the_ratio_samples_new_traces_and_the_client_decides_for_its_own() {
    let receiver = Receiver::start();
    let good = Mock::start(&[]);
    let otel = format!("endpoint = \"{}\"\nsample_ratio = 0.0", receiver.endpoint());
    let g = Gateway::start(
        &config(&otel, &good.base_url(), &good.base_url()),
        Driver::Uring,
    );
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[],
    );
    assert_eq!(r.status, 200);
    let root = last_record(&g, 1)["trace_id"].as_str().unwrap().to_string();
    // Not sampled, yet the provider is told so under the gateway's span.
    let tp = good.last_request()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        tp.starts_with(&format!("00-{root}-")) && tp.ends_with("-00"),
        "{tp}"
    );
    let sampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", false),
        &[("traceparent", &sampled)],
    );
    assert_eq!(r.status, 200);
    receiver.wait_trace(CLIENT_TRACE, 2);
    assert!(!receiver
        .lines()
        .iter()
        .any(|s| s["trace_id"] == root.as_str()));
}

#[test]
fn a_collector_that_is_down_or_silent_never_slows_requests() {
    // Down: nothing listens. Silent: a socket that accepts and never answers.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let good = Mock::start(&[]);
    for (what, addr) in [("down", down_addr), ("silent", silent_addr)] {
        let otel = format!("endpoint = \"http://{addr}\"");
        let g = Gateway::start(
            &config(&otel, &good.base_url(), &good.base_url()),
            Driver::Uring,
        );
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        // Three rounds a batch apart: several exports fail while requests go on.
        for round in 0..3 {
            for _ in 0..5 {
                let t = Instant::now();
                let r = post_json(
                    &g.addr,
                    "/v1/chat/completions",
                    &chat_body("gpt-4o-mini", false),
                    &[],
                );
                assert_eq!(r.status, 200, "{what}: {}", r.body_str());
                slowest = slowest.max(t.elapsed());
            }
            if round < 2 {
                std::thread::sleep(Duration::from_millis(1300));
            }
        }
        // A request that waited on the exporter would take its 2 s post timeout.
        assert!(
            slowest < Duration::from_millis(500),
            "{what}: slowest request {slowest:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(8));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !g.stderr().contains("trace export failed") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let stderr = g.stderr();
        // Logged once per interval, not once per failed batch.
        assert_eq!(
            stderr.matches("trace export failed").count(),
            1,
            "{what}: {stderr}"
        );
    }
    drop(silent);
}
