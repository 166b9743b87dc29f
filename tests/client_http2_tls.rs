//! HTTP/2 and TLS on the client side, with the real binary, mockllm behind it and clients from
//! the wild: curl (`--http2` over TLS with ALPN, `--http2-prior-knowledge` on plain TCP,
//! `--http1.1` over TLS) and the official openai SDK on httpx with HTTP/2 over TLS, streaming
//! included. Also: the certificate is reloaded from its files without a restart, errors keep
//! the client's dialect over HTTP/2, and a client that resets its stream cancels the wait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(mock: &Mock) -> String {
    format!(
        "[providers.mock]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.m]\ntargets = [{{ provider = \"mock\", model = \"gpt-4o-mini\" }}]\n",
        mock.base_url()
    )
}

/// A gateway terminating TLS with a certificate of a private CA.
fn tls_gateway(mock: &Mock, d: Driver, certs: &TestCerts) -> Gateway {
    let tls = format!(
        "{{ cert = \"{}\", key = \"{}\" }}",
        certs.cert.display(),
        certs.key.display()
    );
    Gateway::start_with(&config(mock), d, &[], &[("tls", &tls), ("shards", "1")])
}

/// `https://localhost:PORT` of a TLS gateway (the certificate names localhost).
fn https_url(g: &Gateway) -> String {
    let port = g.addr.rsplit(':').next().unwrap();
    format!("https://localhost:{port}")
}

/// Runs curl; returns stdout, after a last line of `%{http_version} %{http_code}`.
fn curl_ok(args: &[&str]) -> (String, String) {
    let mut all: Vec<&str> = vec![
        "-sS",
        "--max-time",
        "20",
        "-w",
        "\n%{http_version} %{http_code}",
    ];
    all.extend_from_slice(args);
    let out = Command::new("curl").args(&all).output().unwrap();
    let shown: Vec<String> = args.iter().map(|a| a.chars().take(200).collect()).collect();
    assert!(
        out.status.success(),
        "curl {shown:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (body.to_string(), status.to_string())
}

fn chat(stream: bool) -> String {
    chat_body("m", stream)
}

fn assert_stream(body: &str) {
    let events = body.matches("data: ").count();
    assert!(events >= 3, "too few events: {body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
}

both_drivers!(curl_speaks_http2_and_http1_over_tls, |d| {
    let mock = Mock::start(&["--tokens", "6"]);
    let certs = test_certificates();
    let g = tls_gateway(&mock, d, &certs);
    let url = format!("{}/v1/chat/completions", https_url(&g));
    let ca = certs.ca.to_str().unwrap();
    let json = ["-H", "content-type: application/json", "-d"];
    let body = chat(false);
    let mut args = vec!["--http2", "--cacert", ca, url.as_str()];
    args.extend_from_slice(&json);
    args.push(&body);
    let (answer, status) = curl_ok(&args);
    assert_eq!(status, "2 200", "{answer}");
    assert!(answer.contains("\"chat.completion\""), "{answer}");

    let body = chat(true);
    let mut args = vec!["-N", "--http2", "--cacert", ca, url.as_str()];
    args.extend_from_slice(&json);
    args.push(&body);
    let (answer, status) = curl_ok(&args);
    assert_eq!(status, "2 200");
    assert_stream(&answer);

    let mut args = vec!["-N", "--http1.1", "--cacert", ca, url.as_str()];
    args.extend_from_slice(&json);
    args.push(&body);
    let (answer, status) = curl_ok(&args);
    assert_eq!(status, "1.1 200");
    assert_stream(&answer);

    // 20 streamed requests at once share one connection: every one answered, one connect.
    // (Over TLS: curl 7.88 fails parallel transfers with prior knowledge, against nginx too.)
    let many = format!("{url}?n=[1-20]");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--http2",
            "--cacert",
            ca,
            "--parallel",
            "--parallel-max",
            "20",
            "-H",
            "content-type: application/json",
            "-d",
            &body,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code} %{num_connects}\n",
            &many,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20, "{text}");
    assert!(lines.iter().all(|l| l.starts_with("2 200 ")), "{text}");
    let connects: u32 = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(connects, 1, "{text}");

    // Without the CA the client refuses the certificate: it really is TLS with that chain.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("{}/v1/models", https_url(&g)),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let records = g.wait_records(23);
    assert!(records.iter().all(|r| r["status"] == 200), "{records:?}");
});

both_drivers!(curl_http2_prior_knowledge_on_the_plain_port, |d| {
    let mock = Mock::start(&["--tokens", "4", "--ttft-ms", "50"]);
    let g = Gateway::start_with(&config(&mock), d, &[], &[("shards", "1")]);
    let url = format!("{}/v1/chat/completions", g.url());
    let body = chat(true);
    let (answer, status) = curl_ok(&[
        "-N",
        "--http2-prior-knowledge",
        &url,
        "-H",
        "content-type: application/json",
        "-d",
        &body,
    ]);
    assert_eq!(status, "2 200");
    assert_stream(&answer);

    g.wait_records(1);
});

both_drivers!(openai_sdk_on_httpx_http2_over_tls, |d| {
    let mock = Mock::start(&["--tokens", "5"]);
    let certs = test_certificates();
    let g = tls_gateway(&mock, d, &certs);
    let url = https_url(&g);
    let ca = certs.ca.to_str().unwrap();
    run_python_check_at(&g, &url, "openai_http2_check.py", &[("INFERGATE_CA", ca)]);
});

/// The serial number of the certificate the server at `port` presents.
fn served_serial(port: &str) -> String {
    let script = format!(
        "echo | openssl s_client -connect 127.0.0.1:{port} -servername localhost 2>/dev/null | openssl x509 -noout -serial"
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file_serial(pem: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_certificate_is_reloaded_from_its_files_without_a_restart() {
    let mock = Mock::start(&[]);
    let certs = test_certificates();
    let g = tls_gateway(&mock, Driver::Uring, &certs);
    let port = g.addr.rsplit(':').next().unwrap().to_string();
    let first = file_serial(&certs.cert);
    assert_eq!(served_serial(&port), first);

    // A broken file is refused and logged; the current certificate stays.
    std::fs::write(&certs.cert, "not a certificate").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !g.stderr().contains("TLS certificate not reloaded") {
        assert!(Instant::now() < deadline, "{}", g.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served_serial(&port), first);

    // A new certificate and key, moved into place: served to new connections soon after.
    let (cert, key) = certs.issue("renewed");
    let second = file_serial(&cert);
    assert_ne!(first, second);
    std::fs::rename(&key, &certs.key).unwrap();
    std::fs::rename(&cert, &certs.cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_serial(&port) != second {
        assert!(Instant::now() < deadline, "{}", g.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (answer, status) = curl_ok(&[
        "--http2",
        "--cacert",
        certs.ca.to_str().unwrap(),
        &format!("{}/v1/models", https_url(&g)),
    ]);
    assert_eq!(status, "2 200", "{answer}");
}

both_drivers!(bad_requests_over_http2_get_errors_in_their_dialect, |d| {
    let mock = Mock::start(&[]);
    let g = Gateway::start_with(&config(&mock), d, &[], &[("shards", "1")]);
    let h2 = |path: &str, body: &str| {
        curl_ok(&[
            "--http2-prior-knowledge",
            &format!("{}{path}", g.url()),
            "-H",
            "content-type: application/json",
            "-H",
            "anthropic-version: 2023-06-01",
            "-d",
            body,
        ])
    };
    let (answer, status) = h2("/v1/chat/completions", "{not json");
    assert_eq!(status, "2 400", "{answer}");
    let err: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(err["error"]["message"].is_string(), "{answer}");

    let (answer, status) = h2("/v1/messages", "{\"model\":\"m\"}");
    assert_eq!(status, "2 400", "{answer}");
    let err: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(err["type"], "error", "{answer}");

    // Larger than max_body_bytes (64 KiB in tests): 413 in the client's dialect.
    let big = format!(
        "{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "x".repeat(100_000)
    );
    let (answer, status) = h2("/v1/chat/completions", &big);
    assert_eq!(status, "2 413", "{answer}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()["error"]["code"],
        "request_too_large"
    );

    // The connection is still good for a proper request afterwards.
    let (answer, status) = h2("/v1/chat/completions", &chat(false));
    assert_eq!(status, "2 200", "{answer}");
});

#[test]
fn a_client_that_resets_its_stream_cancels_the_upstream_wait() {
    let mock = Mock::start(&["--ttft-ms", "5000"]);
    let g = Gateway::start_with(&config(&mock), Driver::Uring, &[], &[("shards", "1")]);
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "1",
            "--http2-prior-knowledge",
            &format!("{}/v1/chat/completions", g.url()),
            "-H",
            "content-type: application/json",
            "-d",
            &chat(false),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let records = g.wait_records(1);
    assert_eq!(records[0]["status"], 499, "{records:?}");
    assert_eq!(records[0]["error"], "client_closed");
    // Recorded when the client left, not when the provider would have answered.
    assert!(started.elapsed() < Duration::from_secs(4));
}
