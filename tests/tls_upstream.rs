//! Upstream HTTPS through rustls against a real TLS server (Python's ssl module) with a
//! certificate from a private CA: trusted through `tls_ca_file`, refused without it; a
//! provider with `http2 = true` whose server offers no `h2` in ALPN is spoken to in HTTP/1.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::io::BufRead;
use std::process::{Command, Stdio};

struct TlsServer {
    child: std::process::Child,
    port: u16,
    certs: TestCerts,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_server() -> TlsServer {
    let certs = test_certificates();
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/tls_upstream.py"
        ))
        .arg(&certs.cert)
        .arg(&certs.key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    TlsServer { child, port, certs }
}

fn config(port: u16, ca: Option<&std::path::Path>) -> String {
    config_with(port, ca, "")
}

fn config_with(port: u16, ca: Option<&std::path::Path>, extra: &str) -> String {
    let ca_line = ca.map_or(String::new(), |p| {
        format!("tls_ca_file = \"{}\"", p.display())
    });
    format!(
        "[providers.tls]\nkind = \"openai\"\nbase_url = \"https://localhost:{port}/v1\"\napi_key_env = \"INFERGATE_TEST_TLS_KEY\"\n{ca_line}\n{extra}\n\n[models.m]\ntargets = [{{ provider = \"tls\", model = \"over-tls\" }}]\n"
    )
}

both_drivers!(https_provider_with_a_private_ca, |d| {
    let server = start_tls_server();
    let g = Gateway::start_with_env(
        &config(server.port, Some(&server.certs.ca)),
        d,
        &[("INFERGATE_TEST_TLS_KEY", "sk-tls")],
    );
    for _ in 0..3 {
        // Several requests: the pooled TLS connection is reused.
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            &[],
        );
        assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            "tls ok, model=over-tls, auth=yes"
        );
    }
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().contains("tls ok") && r.body_str().ends_with("data: [DONE]\n\n"),
        "{}",
        r.body_str()
    );
});

#[test]
fn an_untrusted_certificate_is_refused() {
    let server = start_tls_server();
    let g = Gateway::start_with_env(
        &config(server.port, None),
        Driver::Uring,
        &[("INFERGATE_TEST_TLS_KEY", "sk-tls")],
    );
    let r = post_json(
        &g.addr,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        &[],
    );
    assert_eq!(r.status, 502, "{}", r.body_str());
    assert!(r.body_str().contains("TLS"), "{}", r.body_str());
    let recs = g.wait_records(1);
    assert_eq!(recs[0]["attempts"][0]["error"], "tls");
}

#[test]
fn an_http2_provider_without_h2_in_alpn_is_spoken_to_in_http1() {
    let server = start_tls_server();
    let g = Gateway::start_with(
        &config_with(server.port, Some(&server.certs.ca), "http2 = true"),
        Driver::Uring,
        &[("INFERGATE_TEST_TLS_KEY", "sk-tls")],
        &[("shards", "1")],
    );
    // The first call learns HTTP/1.1 from ALPN; the next ones go straight to it.
    for stream in [false, true, false] {
        let r = post_json(
            &g.addr,
            "/v1/chat/completions",
            &format!(
                r#"{{"model":"m","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
            &[],
        );
        assert_eq!(r.status, 200, "{}\n{}", r.body_str(), g.stderr());
        assert!(
            r.body_str().contains("tls ok, model=over-tls, auth=yes"),
            "{}",
            r.body_str()
        );
    }
    let log = g.stderr();
    assert_eq!(log.matches("chose HTTP/1.1 in ALPN").count(), 1, "{log}");
}
