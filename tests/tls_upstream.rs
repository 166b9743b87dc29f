//! Upstream HTTPS through rustls against a real TLS server (Python's ssl module) with a
//! certificate from a private CA: trusted through `tls_ca_file`, refused without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::io::BufRead;
use std::process::{Command, Stdio};

struct TlsServer {
    child: std::process::Child,
    port: u16,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_tls_server() -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=infergate test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(d.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "ext.cnf",
        ],
    );
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/tls_upstream.py"
        ))
        .arg(d.join("server.pem"))
        .arg(d.join("server.key"))
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
    TlsServer {
        child,
        port,
        ca: d.join("ca.pem"),
        _dir: dir,
    }
}

fn config(port: u16, ca: Option<&std::path::Path>) -> String {
    let ca_line = ca.map_or(String::new(), |p| {
        format!("tls_ca_file = \"{}\"", p.display())
    });
    format!(
        "[providers.tls]\nkind = \"openai\"\nbase_url = \"https://localhost:{port}/v1\"\napi_key_env = \"INFERGATE_TEST_TLS_KEY\"\n{ca_line}\n\n[models.m]\ntargets = [{{ provider = \"tls\", model = \"over-tls\" }}]\n"
    )
}

both_drivers!(https_provider_with_a_private_ca, |d| {
    let server = start_tls_server();
    let g = Gateway::start_with_env(
        &config(server.port, Some(&server.ca)),
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
