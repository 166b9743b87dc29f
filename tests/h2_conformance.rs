//! The HTTP/2 server against a conformance run in the manner of h2spec
//! (tests/python/h2_conformance.py: 66 cases of RFC 9113 and RFC 7541, frames sent by hand).
//! Every case passes except the ones the script lists as known, with why; a new failure, or a
//! known one that starts passing, fails this test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::Command;

both_drivers!(http2_conformance_cases, |d| {
    let mock = Mock::start(&[]);
    let config = format!(
        "[providers.mock]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[models.m]\ntargets = [{{ provider = \"mock\", model = \"gpt-4o-mini\" }}]\n",
        mock.base_url()
    );
    let g = Gateway::start_with(&config, d, &[], &[("shards", "1")]);
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/h2_conformance.py"
        ))
        .env("INFERGATE_ADDR", &g.addr)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("h2 conformance: "),
        "{text}{}\ngateway stderr:\n{}",
        String::from_utf8_lossy(&out.stderr),
        g.stderr()
    );
    // The gateway served on: a request after the run is answered.
    let r = raw_request(
        &g.addr,
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
});
