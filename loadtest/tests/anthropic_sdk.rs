//! mockllm's Anthropic dialect through the official `anthropic` Python SDK
//! (tests/sdk/anthropic_sdk.py): messages, streaming, tool use and results, count_tokens,
//! and every error status raised as the SDK's exception type.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::Mock;

#[test]
fn anthropic_sdk_talks_to_mockllm() {
    let available = Command::new("python3")
        .args(["-c", "import anthropic"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !available {
        eprintln!("skipped: the anthropic Python SDK is not installed (pip install anthropic)");
        return;
    }
    let mock = Mock::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/anthropic_sdk.py");
    let out = Command::new("python3")
        .arg(script)
        .env("MOCK_URL", &mock.url)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let stats = mock.stats();
    assert_eq!(stats["requests"]["anthropic_count_tokens"], 1);
    assert_eq!(stats["faults"]["status"], 7);
    assert_eq!(stats["faults"]["error_mid_stream"], 1);
}
