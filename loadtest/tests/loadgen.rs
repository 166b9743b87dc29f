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

/// Runs loadgen under a hard wall-clock cap; panics if it does not finish in time.
fn loadgen_within(args: &[&str], cap: std::time::Duration) -> (Value, std::time::Duration) {
    let started = std::time::Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .arg("--json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run loadgen");
    loop {
        if child.try_wait().expect("wait loadgen").is_some() {
            break;
        }
        if started.elapsed() > cap {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen {args:?} did not finish within {cap:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    let out = child.wait_with_output().expect("loadgen output");
    assert!(
        out.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = serde_json::from_slice(&out.stdout).expect("loadgen JSON report");
    (report, elapsed)
}

fn assert_counts_add_up(report: &Value) {
    let requests = &report["requests"];
    let scheduled = requests["scheduled"].as_u64().unwrap();
    let ok = requests["ok"].as_u64().unwrap();
    let errors = requests["errors"].as_u64().unwrap();
    let not_sent = requests["not_sent"].as_u64().unwrap();
    assert_eq!(scheduled, ok + errors + not_sent, "{report:#}");
    assert_eq!(errors, report["errors"]["total"].as_u64().unwrap());
}

/// Regression: at 1000+ req/s with busy connections, the open loop used to livelock (a
/// connection task woke itself forever on the shared queue, the runtime never parked,
/// the ticker's wake-ups and the timers never ran) and grew without bound.
#[test]
fn open_loop_with_busy_connections_ends_on_time() {
    let mock = Mock::start(&[]);
    let (report, elapsed) = loadgen_within(
        &[
            "--url",
            &mock.url,
            "--rate",
            "2000",
            "--duration",
            "2s",
            "--body-bytes",
            "1024",
            "--header",
            "x-mock-ttft-ms:20",
            "--timeout",
            "3s",
        ],
        std::time::Duration::from_secs(2 + 3 + 5),
    );
    assert_counts_add_up(&report);
    assert_eq!(report["requests"]["scheduled"], 4000, "{report:#}");
    // Loaded CI machines may lose a few, but most must succeed.
    assert!(
        report["requests"]["ok"].as_u64().unwrap() >= 3000,
        "{report:#}"
    );
    assert!(elapsed.as_secs_f64() < 10.0, "{elapsed:?}");
}

/// With every connection busy past the end, the run still ends at duration + timeout:
/// the backlog is bounded, unsent requests are `not_sent`, in-flight ones time out.
#[test]
fn saturated_open_loop_ends_at_the_drain_deadline() {
    let mock = Mock::start(&[]);
    let (report, elapsed) = loadgen_within(
        &[
            "--url",
            &mock.url,
            "--rate",
            "2000",
            "--duration",
            "1s",
            "--connections",
            "4",
            "--header",
            "x-mock-fault:stall",
            "--timeout",
            "1s",
        ],
        std::time::Duration::from_secs(1 + 1 + 5),
    );
    assert_counts_add_up(&report);
    assert_eq!(report["requests"]["scheduled"], 2000, "{report:#}");
    assert_eq!(report["requests"]["ok"], 0, "{report:#}");
    assert!(
        report["errors"]["timeout"].as_u64().unwrap() >= 4,
        "{report:#}"
    );
    assert!(
        report["requests"]["not_sent"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(
        report["requests"]["backlogged"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    assert!(elapsed.as_secs_f64() < 7.0, "{elapsed:?}");
}
