//! HTTP/2 to providers through the real binary: chat whole and streamed over h2c to
//! mockllm, many concurrent calls multiplexed on one connection, failover from an HTTP/2
//! provider that is down or resets the stream, reconnecting after the provider restarts,
//! and HTTP/2 over TLS with a private CA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::time::Duration;

/// Providers with `http2 = true` (name and base URL, in target order) behind the alias
/// `gpt-4o-mini`.
fn h2_providers(providers: &[(&str, &str)], extra: &str) -> String {
    let mut out = String::new();
    for (name, url) in providers {
        out.push_str(&format!(
            "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{url}\"\nhttp2 = true\nforward_headers = [\"x-mock-*\"]\nconnect_timeout_ms = 2000\n{extra}\n\n"
        ));
    }
    let targets: Vec<String> = providers
        .iter()
        .map(|(name, _)| format!("{{ provider = \"{name}\", model = \"gpt-4o-mini\" }}"))
        .collect();
    out.push_str(&format!(
        "[models.\"gpt-4o-mini\"]\ntargets = [{}]\n",
        targets.join(", ")
    ));
    out
}

fn chat(g: &Gateway, stream: bool, headers: &[(&str, &str)]) -> RawResponse {
    post_json(
        &g.addr,
        "/v1/chat/completions",
        &chat_body("gpt-4o-mini", stream),
        headers,
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

both_drivers!(chat_whole_and_streamed_over_http2, |d| {
    let m = Mock::start(&["--tokens", "12"]);
    let g = Gateway::start(&h2_providers(&[("h2", &m.base_url())], ""), d);
    let r = chat(&g, false, &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
    assert_eq!(r.header("x-infergate-provider").as_deref(), Some("h2"));
    let content = r.json()["choices"][0]["message"]["content"].clone();
    assert!(content.as_str().unwrap().starts_with("Echo:"), "{content}");
    assert_eq!(r.json()["usage"]["completion_tokens"], 12);

    let r = chat(&g, true, &[]);
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(
        r.body_str().ends_with("data: [DONE]\n\n"),
        "{}",
        r.body_str()
    );
    assert!(r.body_str().matches("chat.completion.chunk").count() >= 12);

    // Events reach the client while the stream is still running: nothing buffers the
    // HTTP/2 answer.
    let body = chat_body("gpt-4o-mini", true);
    let StreamTiming {
        first_event_at,
        total,
        raw: buf,
    } = time_stream(&g.addr, &body, 15, 100);
    assert!(total >= Duration::from_millis(1200), "{total:?}");
    assert!(
        first_event_at < total / 3,
        "first event after {first_event_at:?} of {total:?}"
    );
    assert!(parse_response(&buf)
        .body_str()
        .ends_with("data: [DONE]\n\n"));

    let stats = m.stats();
    assert_eq!(stats["http2_requests"], 3, "{stats}");
    assert_eq!(stats["requests"]["chat"], 1, "{stats}");
    assert_eq!(stats["requests"]["chat_stream"], 2, "{stats}");
    let conns = stats["http2_connections"].as_u64().unwrap();
    // One per shard at most (the test gateway runs two).
    assert!((1..=2).contains(&conns), "{stats}");
    let recs = g.wait_records(3);
    assert!(recs.iter().all(|r| r["status"] == 200), "{recs:?}");
});

both_drivers!(concurrent_calls_share_one_connection, |d| {
    let m = Mock::start(&["--ttft-ms", "300"]);
    let g = Gateway::start_with(
        &h2_providers(&[("h2", &m.base_url())], ""),
        d,
        &[],
        &[("shards", "1")],
    );
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let addr = g.addr.clone();
            std::thread::spawn(move || {
                post_json(
                    &addr,
                    "/v1/chat/completions",
                    &chat_body("gpt-4o-mini", i % 2 == 0),
                    &[],
                )
            })
        })
        .collect();
    for c in calls {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body_str());
    }
    let stats = m.stats();
    assert_eq!(stats["http2_requests"], 20, "{stats}");
    assert_eq!(stats["http2_connections"], 1, "{stats}");
    // Plus this stats request's own HTTP/1.1 connection.
    assert_eq!(stats["connections"], 2, "{stats}");
});

both_drivers!(
    an_http2_provider_that_fails_before_answering_fails_over,
    |d| {
        let up = Mock::start(&[]);
        let resetting = Mock::start(&["--fault", "reset"]);
        let down = format!("http://127.0.0.1:{}/v1", closed_port());
        let g = Gateway::start(
            &h2_providers(
                &[
                    ("down", &down),
                    ("resetting", &resetting.base_url()),
                    ("up", &up.base_url()),
                ],
                "",
            ),
            d,
        );
        for stream in [false, true] {
            let r = chat(&g, stream, &[]);
            assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
            assert_eq!(r.header("x-infergate-provider").as_deref(), Some("up"));
            assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("3"));
        }
        let recs = g.wait_records(2);
        for rec in &recs {
            let attempts = rec["attempts"].as_array().unwrap();
            assert_eq!(attempts[0]["provider"], "down");
            assert_eq!(attempts[0]["error"], "connect", "{rec}");
            assert_eq!(attempts[1]["provider"], "resetting");
            assert_eq!(attempts[1]["error"], "http2", "{rec}");
            assert_eq!(attempts[2]["status"], 200);
        }
        assert_eq!(resetting.stats()["faults"]["reset"], 2);
        assert_eq!(up.stats()["http2_requests"], 2);
    }
);

both_drivers!(the_gateway_reconnects_after_the_provider_restarts, |d| {
    let m = Mock::start(&[]);
    let addr = m.addr.clone();
    let url = m.base_url();
    let g = Gateway::start_with(
        &h2_providers(&[("h2", &url)], ""),
        d,
        &[],
        &[("shards", "1")],
    );
    for _ in 0..3 {
        assert_eq!(chat(&g, false, &[]).status, 200);
    }
    assert_eq!(m.stats()["http2_connections"], 1);
    drop(m);
    let r = chat(&g, false, &[]);
    assert_eq!(r.status, 502, "{}", r.body_str());
    let m = Mock::start(&["--listen", &addr]);
    assert_eq!(m.addr, addr);
    for stream in [false, true, false] {
        let r = chat(&g, stream, &[]);
        assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
        assert_eq!(r.header("x-infergate-attempts").as_deref(), Some("1"));
    }
    let stats = m.stats();
    assert_eq!(stats["http2_requests"], 3, "{stats}");
    assert_eq!(stats["http2_connections"], 1, "{stats}");
    let recs = g.wait_records(7);
    let down = &recs[3]["attempts"][0];
    assert!(
        down["error"] == "connect" || down["error"] == "closed",
        "{down}"
    );
});

/// mockllm serving HTTP/2 over TLS with `certs`, and its base URL (`https://localhost:PORT/v1`).
fn tls_mock(certs: &TestCerts) -> (Mock, String) {
    let m = Mock::start(&[
        "--tls-cert",
        certs.cert.to_str().unwrap(),
        "--tls-key",
        certs.key.to_str().unwrap(),
    ]);
    let port = m.addr.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}/v1");
    (m, url)
}

both_drivers!(http2_over_tls_with_a_private_ca, |d| {
    let certs = test_certificates();
    let (m, url) = tls_mock(&certs);
    let port = m.addr.rsplit(':').next().unwrap();
    let extra = format!("tls_ca_file = \"{}\"", certs.ca.display());
    let g = Gateway::start_with(
        &h2_providers(&[("tls", &url)], &extra),
        d,
        &[],
        &[("shards", "1")],
    );
    for stream in [false, true, false] {
        let r = chat(&g, stream, &[]);
        assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
        if stream {
            assert!(
                r.body_str().ends_with("data: [DONE]\n\n"),
                "{}",
                r.body_str()
            );
        } else {
            let content = r.json()["choices"][0]["message"]["content"].clone();
            assert!(content.as_str().unwrap().starts_with("Echo:"), "{content}");
        }
    }
    // mockllm speaks only HTTP/2 over TLS: its counters, read over TLS with curl.
    let out = curl(&[
        "--cacert",
        certs.ca.to_str().unwrap(),
        &format!("https://localhost:{port}/mock/stats"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["http2_requests"], 4, "{stats}");
    assert_eq!(stats["http2_connections"], 2, "{stats}");
});

#[test]
fn a_provider_without_a_trusted_certificate_is_refused_over_http2() {
    let certs = test_certificates();
    let (_mock, url) = tls_mock(&certs);
    let g = Gateway::start(&h2_providers(&[("tls", &url)], ""), Driver::Uring);
    let r = chat(&g, false, &[]);
    assert_eq!(r.status, 502, "{}", r.body_str());
    let recs = g.wait_records(1);
    assert_eq!(recs[0]["attempts"][0]["error"], "tls");
}
