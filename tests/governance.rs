//! Governance with the real binary: keys of tenants with allowed models, region tags and
//! labels in records, request and token limits answered as 429s with `x-ratelimit-*` and
//! `retry-after` in each client's dialect (curl, the openai and anthropic SDKs), and
//! budgets that never overshoot under 200 concurrent requests across 2 shards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::time::Instant;

use infergate::policy::sha256_hex;

/// Providers, the alias `mock-model` and its price: $0.01 per 1M input tokens, $100 per 1M
/// output tokens (0.01 and 100 micro-dollars a token), so a call's cost is almost all output.
fn base(mock: &Mock) -> String {
    format!(
        r#"
[providers.mock]
kind = "openai"
base_url = "{}"
forward_headers = ["x-mock-*"]

[models."mock-model"]
targets = [{{ provider = "mock", model = "mock-model" }}]

[models."other-model"]
targets = [{{ provider = "mock", model = "mock-model" }}]

[pricing."mock-model"]
input = 0.01
output = 100.0
"#,
        mock.base_url()
    )
}

fn chat(model: &str, stream: bool, include_usage: bool, max_tokens: u32) -> String {
    let options = if include_usage {
        r#","stream_options":{"include_usage":true}"#
    } else {
        ""
    };
    format!(
        r#"{{"model":"{model}","stream":{stream}{options},"max_tokens":{max_tokens},"messages":[{{"role":"user","content":"Count to sixteen, please."}}]}}"#
    )
}

fn post(g: &Gateway, path: &str, body: &str, key: &str) -> RawResponse {
    post_json(
        &g.addr,
        path,
        body,
        &[("authorization", &format!("Bearer {key}"))],
    )
}

fn admin_get(g: &Gateway, path: &str) -> serde_json::Value {
    let r = raw_request(
        &g.admin,
        &format!(
            "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    );
    assert_eq!(r.status, 200, "{path}: {}", r.body_str());
    r.json()
}

#[test]
fn tenants_keys_models_regions_and_limits() {
    let m = Mock::start(&["--tokens", "8"]);
    let cfg = format!(
        r#"{}
[tenants.acme]
models = ["mock-*"]
limits = {{ rpm = 3 }}
region = "eu-west"
metadata = {{ team = "search" }}

[auth]
keys = [
  {{ name = "acme-1", sha256 = "{}", tenant = "acme", metadata = {{ agent = "planner" }} }},
  {{ name = "acme-2", sha256 = "{}", tenant = "acme", region = "us-east" }},
  {{ name = "solo", sha256 = "{}", models = ["other-*"], limits = {{ rpm = 1 }} }},
]
"#,
        base(&m),
        sha256_hex("ig-acme-1"),
        sha256_hex("ig-acme-2"),
        sha256_hex("ig-solo-secret"),
    );
    let g = Gateway::start(&cfg, Driver::Uring);
    let path = "/v1/chat/completions";

    // The tenant's allow-list: `other-model` is not among `mock-*`.
    let r = post(
        &g,
        path,
        &chat("other-model", false, false, 16),
        "ig-acme-1",
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert_eq!(r.json()["error"]["code"], "model_not_allowed");
    assert!(
        r.body_str().contains("tenant's allowed models"),
        "{}",
        r.body_str()
    );
    // The key's own list.
    let r = post(
        &g,
        path,
        &chat("mock-model", false, false, 16),
        "ig-solo-secret",
    );
    assert_eq!(r.status, 403, "{}", r.body_str());
    assert!(r.body_str().contains("key's allowed models"));

    // The tenant's 3 requests a minute are shared by its keys.
    for key in ["ig-acme-1", "ig-acme-2", "ig-acme-1"] {
        let r = post(&g, path, &chat("mock-model", false, false, 16), key);
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(r.header("x-ratelimit-limit-requests").as_deref(), Some("3"));
    }
    let r = post(&g, path, &chat("mock-model", false, false, 16), "ig-acme-2");
    assert_eq!(r.status, 429, "{}", r.body_str());
    let err = r.json();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tenant request limit of 3"));
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        r.header("x-ratelimit-remaining-requests").as_deref(),
        Some("0")
    );
    assert!(!r.body_str().contains("ig-acme-2"));

    // The key's own limit, answered to curl in OpenAI's shape.
    let ok = post(
        &g,
        path,
        &chat("other-model", false, false, 16),
        "ig-solo-secret",
    );
    assert_eq!(ok.status, 200, "{}", ok.body_str());
    let out = curl(&[
        "-i",
        &format!("{}{path}", g.url()),
        "-H",
        "authorization: Bearer ig-solo-secret",
        "-H",
        "content-type: application/json",
        "-d",
        &chat("other-model", false, false, 16),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("x-ratelimit-limit-requests: 1"), "{text}");
    assert!(text.contains("retry-after: "), "{text}");
    assert!(text.contains("key request limit of 1 per minute"), "{text}");

    // Records carry the tenant, the region (the key's own wins) and the labels.
    let records = g.wait_records(8);
    let by_key = |k: &str| {
        records
            .iter()
            .filter(|r| r["key"] == k && r["status"] == 200)
            .collect::<Vec<_>>()
    };
    let a1 = by_key("acme-1");
    assert_eq!(a1.len(), 2);
    assert_eq!(a1[0]["tenant"], "acme");
    assert_eq!(a1[0]["region"], "eu-west");
    assert_eq!(a1[0]["metadata"]["team"], "search");
    assert_eq!(a1[0]["metadata"]["agent"], "planner");
    assert_eq!(by_key("acme-2")[0]["region"], "us-east");
    // 8 output tokens at 100 µ$ plus a few input tokens at 0.01 µ$, rounded up.
    let cost = a1[0]["cost_usd"].as_f64().unwrap();
    assert!((0.000800..0.000802).contains(&cost), "{cost}");
    let refused = records.iter().find(|r| r["status"] == 429).unwrap();
    assert_eq!(refused["refused_by"], "tenant request limit");

    // The admin API reads where a key and its tenant stand.
    let acme = admin_get(&g, "/admin/tenants/acme");
    assert_eq!(acme["requests"]["limit"], 3);
    assert_eq!(acme["requests"]["remaining"], 0);
    let key = admin_get(&g, "/admin/keys/acme-2");
    assert_eq!(
        (key["tenant"].as_str(), key["region"].as_str()),
        (Some("acme"), Some("us-east"))
    );
}

#[test]
fn official_sdks_see_limits_in_their_own_dialect() {
    let m = Mock::start(&["--tokens", "8"]);
    let cfg = format!(
        r#"{}
[auth]
keys = [
  {{ name = "oa", sha256 = "{}", limits = {{ rpm = 2 }} }},
  {{ name = "an", sha256 = "{}", limits = {{ rpm = 2 }} }},
]
"#,
        base(&m),
        sha256_hex("ig-openai-sdk"),
        sha256_hex("ig-anthropic-sdk"),
    );
    let g = Gateway::start(&cfg, Driver::Uring);
    run_python_check(
        &g,
        "governance_check.py",
        &[
            ("INFERGATE_OPENAI_KEY", "ig-openai-sdk"),
            ("INFERGATE_ANTHROPIC_KEY", "ig-anthropic-sdk"),
        ],
    );
}

/// Sends `bodies` all at once, one connection each; returns the statuses.
fn burst(g: &Gateway, bodies: Vec<String>, key: &'static str) -> Vec<u16> {
    let addr = g.addr.clone();
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                post_json(
                    &addr,
                    "/v1/chat/completions",
                    &body,
                    &[("authorization", &format!("Bearer {key}"))],
                )
                .status
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn budgets_never_overshoot_under_concurrency() {
    // Each call reserves 64 output tokens (6,400 µ$) and uses 16 (1,600 µ$): the $0.13 cap
    // holds about 20 reservations at once; after they settle, room comes back.
    let m = Mock::start(&["--tokens", "16", "--ttft-ms", "700"]);
    let cfg = format!(
        r#"{}
[auth]
keys = [ {{ name = "capped", sha256 = "{}", budget = {{ usd = 0.13, per = "total" }} }} ]
"#,
        base(&m),
        sha256_hex("ig-capped"),
    );
    let g = Gateway::start(&cfg, Driver::Uring);
    let cap = 0.13;
    // Non-streamed, streamed with usage, streamed without (settled at the reservation).
    let bodies: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 | 1 => chat("mock-model", false, false, 64),
            2 => chat("mock-model", true, true, 64),
            _ => chat("mock-model", true, false, 64),
        })
        .collect();
    let statuses = burst(&g, bodies, "ig-capped");
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // 20 full reservations, and one more whose max tokens the rest of the cap pays for.
    assert!((15..=21).contains(&admitted), "{admitted} admitted of 200");

    // Everything settled: nothing stays reserved, the spend is within the cap.
    let usage = admin_get(&g, "/admin/keys/capped");
    let budget = &usage["budget"];
    assert_eq!(budget["reserved_usd"], 0.0, "{usage}");
    let spent = budget["spent_usd"].as_f64().unwrap();
    assert!(spent <= cap && spent > 0.0, "{usage}");

    // Requests after the settle succeed again, until the cap is reached; never beyond it.
    let mut after = 0;
    for _ in 0..120 {
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &chat("mock-model", false, false, 64),
            &[
                ("authorization", "Bearer ig-capped"),
                ("x-mock-ttft-ms", "0"),
            ],
        );
        match r.status {
            200 => after += 1,
            429 => {
                assert_eq!(r.json()["error"]["code"], "insufficient_quota");
                assert!(
                    r.body_str().contains("key budget of $0.130000"),
                    "{}",
                    r.body_str()
                );
                break;
            }
            s => panic!("unexpected {s}: {}", r.body_str()),
        }
    }
    assert!(
        after >= 1,
        "no request succeeded after the first wave settled"
    );
    let budget = admin_get(&g, "/admin/keys/capped")["budget"].clone();
    let spent = budget["spent_usd"].as_f64().unwrap();
    assert!(spent <= cap, "spent {spent} over the cap {cap}");
    assert_eq!(budget["reserved_usd"], 0.0);
    // The records add up to the same spend, and each says what was reserved.
    let records = g.wait_records(200 + after + 1);
    let ok: Vec<_> = records.iter().filter(|r| r["status"] == 200).collect();
    let recorded: f64 = ok.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
    assert!(recorded <= cap + 1e-9, "recorded {recorded} over the cap");
    assert!(
        (recorded - spent).abs() < 1e-5,
        "records {recorded} vs spend {spent}"
    );
    assert!(ok
        .iter()
        .all(|r| r["reservation"]["usd"].as_f64().unwrap() > 0.0));
    // The last requests had their max tokens lowered to what the budget still paid for.
    assert!(ok
        .iter()
        .any(|r| r["reservation"]["max_output_tokens"].is_u64()));
}

#[test]
fn token_limits_never_admit_more_than_they_allow() {
    let m = Mock::start(&["--tokens", "16", "--ttft-ms", "1500"]);
    let cfg = format!(
        r#"{}
[auth]
keys = [ {{ name = "tpm", sha256 = "{}", limits = {{ tpm = 4000 }} }} ]
"#,
        base(&m),
        sha256_hex("ig-tpm"),
    );
    let g = Gateway::start(&cfg, Driver::Uring);
    let start = Instant::now();
    let bodies: Vec<String> = (0..200)
        .map(|i| chat("mock-model", i % 2 == 0, i % 4 == 0, 64))
        .collect();
    let statuses = burst(&g, bodies, "ig-tpm");
    let elapsed = start.elapsed().as_secs_f64();
    let records = g.wait_records(200);
    let admitted: u64 = records
        .iter()
        .filter(|r| r["status"] == 200)
        .map(|r| r["reservation"]["tokens"].as_u64().unwrap())
        .sum();
    // GCRA refills continuously: 4000 a minute is 66.7 a second.
    let allowed = 4000.0 + 4000.0 / 60.0 * elapsed;
    assert!(
        (admitted as f64) <= allowed,
        "{admitted} tokens admitted, {allowed} allowed"
    );
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok >= 10, "{ok} admitted");
    let refused = records.iter().find(|r| r["status"] == 429).unwrap();
    assert_eq!(refused["refused_by"], "key token limit");
}
