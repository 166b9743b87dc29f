//! loadgen against the real mockllm: short runs that must finish with zero errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::Mock;
use serde_json::Value;

fn loadgen(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run loadgen");
    assert!(
        out.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("loadgen JSON report")
}

#[test]
fn open_loop_run_has_no_errors() {
    let mock = Mock::start(&[]);
    let report = loadgen(&[
        "--url",
        &mock.url,
        "--rate",
        "200",
        "--duration",
        "1s",
        "--body-bytes",
        "1024",
    ]);
    assert_eq!(report["mode"], "open-loop");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    assert_eq!(report["requests"]["scheduled"], 200);
    assert_eq!(report["requests"]["ok"], 200);
    let latency = &report["latency_us"];
    assert_eq!(latency["count"], 200);
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(latency[key].as_u64().unwrap() > 0, "{key}");
    }
    assert!(latency["p50"].as_u64() <= latency["max"].as_u64());
    assert_eq!(mock.stats()["requests"]["chat"], 200);
}

#[test]
fn streaming_run_sees_done_and_counts_faults() {
    let mock = Mock::start(&["--tokens", "4"]);
    let report = loadgen(&[
        "--url",
        &mock.url,
        "--rate",
        "100",
        "--duration",
        "500ms",
        "--stream",
    ]);
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    assert_eq!(report["requests"]["ok"], 50);
    assert!(report["ttfb_us"]["p50"].as_u64() <= report["latency_us"]["p50"].as_u64());
    assert_eq!(mock.stats()["requests"]["chat_stream"], 50);

    let report = loadgen(&[
        "--url",
        &mock.url,
        "--rate",
        "100",
        "--duration",
        "300ms",
        "--header",
        "x-mock-fault:status:503",
    ]);
    assert_eq!(report["errors"]["status"]["503"], 30, "{report:#}");
    assert_eq!(report["requests"]["ok"], 0);
}

#[test]
fn closed_loop_run_completes() {
    let mock = Mock::start(&[]);
    let report = loadgen(&[
        "--url",
        &mock.url,
        "--closed-loop",
        "2",
        "--duration",
        "300ms",
    ]);
    assert_eq!(report["mode"], "closed-loop");
    assert_eq!(report["errors"]["total"], 0, "{report:#}");
    assert!(report["requests"]["ok"].as_u64().unwrap() > 10);
}
