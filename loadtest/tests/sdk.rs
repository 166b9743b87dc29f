//! mockllm through the official Python SDKs (scripts in tests/sdk/): the `anthropic` SDK
//! on the Messages dialect (messages, streaming, tool use and results, count_tokens, every
//! error status as the SDK's exception type) and the `openai` SDK on tool calls.
//! A test is skipped, with a note, when its SDK is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::Mock;

/// Runs tests/sdk/SCRIPT against `mock` (one Python process: importing an SDK takes
/// seconds); false when the script reports that its SDK is not installed.
fn run_script(module: &str, script: &str, mock: &Mock) -> bool {
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(path)
        .env("MOCK_URL", &mock.url)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stdout.trim() == "skip" {
        eprintln!("skipped: the {module} Python SDK is not installed (pip install {module})");
        return false;
    }
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {stderr}"
    );
    true
}

#[test]
fn anthropic_sdk_talks_to_mockllm() {
    let mock = Mock::start(&[]);
    if !run_script("anthropic", "anthropic_sdk.py", &mock) {
        return;
    }
    let stats = mock.stats();
    assert_eq!(stats["requests"]["anthropic_count_tokens"], 1);
    assert_eq!(stats["faults"]["status"], 7);
    assert_eq!(stats["faults"]["error_mid_stream"], 1);
}

#[test]
fn openai_sdk_reads_tool_calls() {
    let mock = Mock::start(&[]);
    if !run_script("openai", "openai_tools_sdk.py", &mock) {
        return;
    }
    let stats = mock.stats();
    assert_eq!(stats["requests"]["chat"], 2);
    assert_eq!(stats["requests"]["chat_stream"], 1);
}
