//! Metrics with the real binary: `GET /metrics` after real traffic through mockllm passes
//! `promtool check metrics` and counts what happened; a real Prometheus server scrapes it
//! (OpenMetrics) and answers a rate and histogram quantiles; every metric the Grafana
//! dashboard queries is exported; `[metrics] enabled = false` turns the path off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use infergate::policy::sha256_hex;

const KEY: &str = "metrics-test-key";

/// `chat` tries a provider that always answers 503, then one that answers after 20 ms:
/// every request fails over once. `cached` has the exact cache. The key belongs to `acme`.
fn config(flaky: &Mock, good: &Mock) -> String {
    format!(
        r#"
[auth]
keys = [{{ name = "k", sha256 = "{}", tenant = "acme" }}]

[tenants.acme]

[providers.flaky]
kind = "openai"
base_url = "{}"

[providers.good]
kind = "openai"
base_url = "{}"

[models.chat]
targets = [{{ provider = "flaky", model = "up-flaky" }}, {{ provider = "good", model = "up-good" }}]
# every request fails over (what the failover counters are checked on): never ejected
eject = {{ consecutive_failures = 0 }}

[models.cached]
targets = [{{ provider = "good", model = "up-good" }}]
cache = {{ exact = true }}

[pricing."up-good"]
input = 1.0
output = 2.0
"#,
        sha256_hex(KEY),
        flaky.base_url(),
        good.base_url()
    )
}

fn mocks() -> (Mock, Mock) {
    (
        Mock::start(&["--fault", "status:503"]),
        Mock::start(&["--ttft-ms", "20", "--tokens", "8"]),
    )
}

fn chat(g: &Gateway, model: &str, stream: bool) -> RawResponse {
    let body = format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"Count to three"}}]}}"#
    );
    post_json(
        &g.addr,
        "/v1/chat/completions",
        &body,
        &[("authorization", &format!("Bearer {KEY}"))],
    )
}

fn scrape(g: &Gateway, accept: Option<&str>) -> RawResponse {
    let accept = accept.map_or(String::new(), |a| format!("accept: {a}\r\n"));
    raw_request(
        &g.admin,
        &format!(
            "GET /metrics HTTP/1.1\r\nhost: {}\r\n{accept}connection: close\r\n\r\n",
            g.admin
        ),
    )
}

/// The sum of every sample of `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    let mut found = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, v) = line.rsplit_once(' ').unwrap();
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, want)| rest.contains(&format!("{k}=\"{want}\"")))
        {
            sum += v.parse::<f64>().unwrap();
            found = true;
        }
    }
    assert!(found, "no {name} sample with {labels:?} in\n{text}");
    sum
}

/// Sends the test traffic: 6 plain and 2 streamed requests to `chat`, a miss and a hit on
/// `cached`, and one request for a model nobody configured.
fn traffic(g: &Gateway) {
    for _ in 0..6 {
        let r = chat(g, "chat", false);
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    for _ in 0..2 {
        assert_eq!(chat(g, "chat", true).status, 200);
    }
    assert_eq!(chat(g, "cached", false).status, 200);
    let hit = chat(g, "cached", false);
    assert_eq!(hit.header("x-infergate-cache").as_deref(), Some("hit"));
    assert_eq!(chat(g, "gpt-nobody-configured", false).status, 404);
}

#[test]
fn metrics_count_the_traffic_and_pass_promtool() {
    let (flaky, good) = mocks();
    let g = Gateway::start(&config(&flaky, &good), Driver::Uring);
    traffic(&g);
    // Wait for the shards to publish their gauges (every second).
    std::thread::sleep(Duration::from_millis(1200));
    let r = scrape(&g, None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.body_str().to_string();

    // promtool parses and lints it (help, types, names, units).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test-deps.sh installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let chat_ok = [
        ("model", "chat"),
        ("provider", "good"),
        ("upstream_model", "up-good"),
        ("tenant", "acme"),
        ("status_class", "2xx"),
    ];
    assert_eq!(value(&text, "infergate_requests_total", &chat_ok), 8.0);
    // A model nobody configured is `other`, never its own series.
    assert_eq!(
        value(
            &text,
            "infergate_request_errors_total",
            &[("model", "other"), ("error", "model_not_found")]
        ),
        1.0
    );
    assert!(!text.contains("gpt-nobody-configured"));
    assert_eq!(
        value(&text, "infergate_failovers_total", &[("model", "chat")]),
        8.0
    );
    assert_eq!(
        value(
            &text,
            "infergate_upstream_attempts_total",
            &[("provider", "flaky"), ("result", "5xx")]
        ),
        8.0
    );
    for (result, n) in [("miss", 1.0), ("hit", 1.0)] {
        let labels = [("model", "cached"), ("result", result)];
        assert_eq!(value(&text, "infergate_cache_requests_total", &labels), n);
    }
    let tokens_out = value(
        &text,
        "infergate_tokens_total",
        &[("model", "chat"), ("type", "output")],
    );
    assert!(tokens_out >= 6.0 * 8.0, "{tokens_out}");
    assert!(
        value(
            &text,
            "infergate_cost_usd_total",
            &[("tenant", "acme"), ("model", "chat")]
        ) > 0.0
    );
    // Latencies: 8 chat requests, each at least the mock's 20 ms to first token.
    let chat = [("model", "chat")];
    assert_eq!(
        value(&text, "infergate_request_duration_seconds_count", &chat),
        8.0
    );
    assert_eq!(
        value(
            &text,
            "infergate_request_duration_seconds_bucket",
            &[("model", "chat"), ("le", "0.01")]
        ),
        0.0
    );
    let p50 = value(
        &text,
        "infergate_request_duration_quantiles_seconds",
        &[("model", "chat"), ("quantile", "0.5")],
    );
    assert!((0.02..5.0).contains(&p50), "{p50}");
    let overhead = value(
        &text,
        "infergate_gateway_overhead_quantiles_seconds",
        &[("model", "chat"), ("quantile", "0.5")],
    );
    assert!(overhead < p50, "overhead {overhead} vs total {p50}");
    assert_eq!(
        value(
            &text,
            "infergate_upstream_duration_seconds_count",
            &[("provider", "flaky")]
        ),
        8.0
    );
    assert_eq!(
        value(&text, "infergate_time_to_first_byte_seconds_count", &chat),
        8.0
    );
    assert_eq!(value(&text, "infergate_records_dropped_total", &[]), 0.0);
    assert_eq!(
        value(
            &text,
            "infergate_provider_available",
            &[("provider", "good")]
        ),
        1.0
    );
    assert!(value(&text, "infergate_route_table_version", &[]) >= 1.0);
    // Two shards publish their gauges; the good provider's connections went back to the pool.
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("infergate_client_connections{"))
            .count(),
        2
    );
    assert_eq!(value(&text, "infergate_open_streams", &[]), 0.0);
    assert!(
        value(
            &text,
            "infergate_upstream_idle_connections",
            &[("provider", "good")]
        ) >= 1.0
    );

    // OpenMetrics when the scraper asks for it.
    let om = scrape(
        &g,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(
        om.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = om.body_str();
    assert!(om.contains("# TYPE infergate_requests counter\n"));
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn grafana_dashboard_queries_only_exported_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/infergate.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    let mut titles = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        titles.push(panel["title"].as_str().unwrap().to_lowercase());
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["definition"].as_str() {
            exprs.push(q.to_string());
        }
    }
    for topic in [
        "requests",
        "error",
        "latency",
        "overhead",
        "first byte",
        "tokens",
        "cost",
        "tenant",
        "cache hit",
        "provider",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}"
        );
    }
    let mut names: Vec<String> = Vec::new();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("infergate_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names.sort();
    names.dedup();
    assert!(names.len() >= 12, "{names:?}");

    let (flaky, good) = mocks();
    let g = Gateway::start(&config(&flaky, &good), Driver::Epoll);
    traffic(&g);
    let text = scrape(&g, None).body_str().to_string();
    let exported: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{text}");
}

#[test]
fn metrics_can_be_turned_off() {
    let (flaky, good) = mocks();
    let cfg = format!("{}\n[metrics]\nenabled = false\n", config(&flaky, &good));
    let g = Gateway::start(&cfg, Driver::Uring);
    assert_eq!(chat(&g, "chat", false).status, 200);
    assert_eq!(scrape(&g, None).status, 404);
}

/// A free port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asks Prometheus for `query` until it has an answer; returns the first value.
fn query(prometheus: &str, query: &str, deadline: Instant) -> f64 {
    loop {
        let out = curl(&[
            "--get",
            &format!("http://{prometheus}/api/v1/query"),
            "--data-urlencode",
            &format!("query={query}"),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(s) = v["data"]["result"][0]["value"][1].as_str() {
            let x: f64 = s.parse().unwrap();
            if x.is_finite() {
                return x;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never answered {query}: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_prometheus_server_scrapes_and_queries_rates_and_quantiles() {
    let (flaky, good) = mocks();
    let g = Gateway::start(&config(&flaky, &good), Driver::Uring);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: infergate\n    static_configs:\n      - targets: ['{}']\n",
            g.admin
        ),
    )
    .unwrap();
    let server = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus (scripts/test-deps.sh installs it)");
    let _server = Proc {
        child: server,
        lines: std::sync::mpsc::channel::<String>().1,
    };

    // Steady traffic for a while: about 10 requests a second to `chat`.
    let stop = Instant::now() + Duration::from_secs(8);
    while Instant::now() < stop {
        assert_eq!(chat(&g, "chat", false).status, 200);
        std::thread::sleep(Duration::from_millis(60));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    // The scrape works (OpenMetrics, which Prometheus asks for).
    let up = query(&listen, r#"up{job="infergate"}"#, deadline);
    assert_eq!(
        up,
        1.0,
        "{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap()
    );
    let rate = query(
        &listen,
        r#"sum(rate(infergate_requests_total{model="chat",status_class="2xx"}[1m]))"#,
        deadline,
    );
    assert!((0.5..50.0).contains(&rate), "rate {rate}");
    let p50 = query(
        &listen,
        r#"histogram_quantile(0.5, sum by (le) (rate(infergate_request_duration_seconds_bucket{model="chat"}[1m])))"#,
        deadline,
    );
    // The mock takes 20 ms to its first token, in the 10-25 ms bucket (where the quantile
    // is interpolated); nothing here takes a second.
    assert!((0.01..1.0).contains(&p50), "p50 {p50}");
    let summary_p50 = query(
        &listen,
        r#"max(infergate_request_duration_quantiles_seconds{model="chat",quantile="0.5"})"#,
        deadline,
    );
    assert!(
        (0.02..1.0).contains(&summary_p50),
        "summary p50 {summary_p50}"
    );
    let overhead_p99 = query(
        &listen,
        r#"max(infergate_gateway_overhead_quantiles_seconds{model="chat",quantile="0.99"})"#,
        deadline,
    );
    assert!(
        (0.0..p50).contains(&overhead_p99),
        "overhead p99 {overhead_p99}"
    );
    let failovers = query(
        &listen,
        r#"sum(increase(infergate_failovers_total{model="chat"}[1m]))"#,
        deadline,
    );
    assert!(failovers > 0.0, "{failovers}");
}
