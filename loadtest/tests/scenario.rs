//! scenario end to end with a stand-in gateway: a script that checks the config it was given,
//! prints the gateway's ready line and becomes a mockllm on the configured port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const FAKE_GATEWAY: &str = r#"#!/bin/sh
# Usage: fake-infergate --config FILE
[ "$1" = "--config" ] || exit 2
grep -q '^\[providers.mock\]' "$2" || exit 3
grep -q 'kind = "openai"' "$2" || exit 3
grep -q '^\[models."gpt-4o-mini"\]' "$2" || exit 3
port=$(sed -n '/^\[server\]/,/^\[/s/^listen = "127.0.0.1:\([0-9]*\)"/\1/p' "$2")
[ -n "$port" ] || exit 4
echo "infergate listening on http://127.0.0.1:$port"
exec "$MOCKLLM" --listen "127.0.0.1:$port" --no-pin >/dev/null
"#;

#[test]
fn scenario_measures_direct_and_gateway_and_cleans_up() {
    let dir = std::env::temp_dir().join(format!("loadtest-scenario-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gateway = dir.join("fake-infergate");
    std::fs::write(&gateway, FAKE_GATEWAY).unwrap();
    std::fs::set_permissions(&gateway, std::fs::Permissions::from_mode(0o755)).unwrap();

    let tag = format!("LOADTEST_SCENARIO_TEST={}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_scenario"))
        .env("MOCKLLM", env!("CARGO_BIN_EXE_mockllm"))
        .env("LOADTEST_SCENARIO_TEST", std::process::id().to_string())
        .args(["--infergate", gateway.to_str().unwrap()])
        .args(["--mockllm", env!("CARGO_BIN_EXE_mockllm")])
        .args(["--rates", "200", "--duration", "400ms", "--warmup", "200ms"])
        .args(["--closed-loop", "2", "--no-nginx", "--json"])
        .output()
        .expect("run scenario");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "scenario failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "one rate and the closed loop");
    for run in runs {
        let paths = run["paths"].as_array().unwrap();
        assert_eq!(paths[0]["path"], "direct");
        assert_eq!(paths[1]["path"], "infergate");
        assert!(paths[0]["cpu_us_per_request"].is_null());
        assert!(paths[1]["cpu_us_per_request"].is_number());
        for p in paths {
            assert_eq!(p["report"]["errors"]["total"], 0, "{p:#}");
            assert!(p["report"]["requests"]["ok"].as_u64().unwrap() > 0);
        }
    }
    assert_eq!(runs[0]["paths"][0]["report"]["requests"]["ok"], 80);

    // Every child is gone: no process carries this run's tag in its environment any more.
    // (Checking ports instead is flaky on a shared machine: others bind freed ports.)
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == tag.as_bytes()))
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(leftovers.is_empty(), "children left running: {leftovers:?}");
}

/// A gateway given by URL and PID is measured beside direct, with its CPU per request and
/// per thread; `--mock-port` fixes the mock's port; `--out` writes the JSON, the text and
/// the charts. The "gateway" here is a second mockllm (the scenario only needs something
/// that answers chat completions and a PID to read).
#[test]
fn scenario_measures_a_gateway_given_by_url_and_pid_and_draws_charts() {
    let theirs = common::Mock::start(&["--threads", "2"]);
    let dir = std::env::temp_dir().join(format!("loadtest-scenario-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mock_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_scenario"));
    command
        .args(["--no-infergate", "--no-nginx"])
        .args(["--mockllm", env!("CARGO_BIN_EXE_mockllm")])
        .args(["--mock-port", &mock_port.to_string()])
        .args(["--gateway", &format!("theirs={}", theirs.url)])
        .args(["--gateway-pid", &format!("theirs={}", theirs.child.id())])
        .args([
            "--rates",
            "200,400",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
        ])
        .args([
            "--closed-loop",
            "2",
            "--json",
            "--out",
            dir.to_str().unwrap(),
        ]);
    let syscalls = loadtest::scenario::syscalls::resolve(loadtest::scenario::SyscallTool::Auto);
    if syscalls.is_ok() {
        command.args(["--syscalls", "--syscall-rate", "200"]);
    } else {
        eprintln!("no perf or strace here: the syscall pass is not exercised");
    }
    let out = command.output().expect("run scenario");
    assert!(
        out.status.success(),
        "scenario failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["mock_url"],
        format!("http://127.0.0.1:{mock_port}"),
        "the mock listens where it was told"
    );
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "two rates and the closed loop");
    for run in runs {
        let paths = run["paths"].as_array().unwrap();
        let names: Vec<&str> = paths.iter().map(|p| p["path"].as_str().unwrap()).collect();
        assert_eq!(names, ["direct", "theirs"]);
        assert!(paths[0]["threads"].as_array().unwrap().is_empty());
        let theirs_result = &paths[1];
        assert_eq!(theirs_result["pid"], theirs.child.id());
        assert!(theirs_result["cpu_us_per_request"].as_f64().unwrap() >= 0.0);
        // Its threads by name: the main thread and the two server threads.
        let threads: Vec<&str> = theirs_result["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for name in ["mockllm", "mockllm-0", "mockllm-1"] {
            assert!(threads.contains(&name), "{threads:?}");
        }
        for p in paths {
            assert_eq!(p["report"]["errors"]["total"], 0, "{p:#}");
            let spectrum = p["latency_spectrum"].as_array().unwrap();
            assert!(spectrum.len() > 20, "{spectrum:?}");
            assert_eq!(spectrum[0]["percentile"], 0.0);
        }
    }
    for file in [
        "report.json",
        "report.txt",
        "latency-spectrum-open-loop-200-rps.svg",
        "latency-spectrum-open-loop-400-rps.svg",
        "latency-spectrum-closed-loop-2-connections.svg",
        "cpu-per-request.svg",
    ] {
        let text =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        if file.ends_with(".svg") {
            assert!(text.contains("<svg") && text.contains("</svg>"), "{file}");
            assert!(
                text.lines().any(|line| line.trim() == "theirs"),
                "{file} has no legend entry"
            );
        }
    }
    let text = std::fs::read_to_string(dir.join("report.txt")).unwrap();
    assert!(text.contains("theirs per thread"), "{text}");
    // --replot draws the charts again from report.json alone.
    std::fs::remove_file(dir.join("cpu-per-request.svg")).unwrap();
    let replot = Command::new(env!("CARGO_BIN_EXE_scenario"))
        .args(["--replot", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(replot.status.success(), "{replot:?}");
    assert!(dir.join("cpu-per-request.svg").is_file());
    if syscalls.is_ok() {
        let calls = &report["syscalls"]["paths"][0];
        assert_eq!(calls["path"], "theirs");
        assert!(
            calls["total_per_request"].as_f64().unwrap() > 0.0,
            "{calls:#}"
        );
        assert!(!calls["top"].as_array().unwrap().is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gateway that answers nothing stops the scenario at once with a message that says
/// where the mock is.
#[test]
fn scenario_reports_a_gateway_that_does_not_answer() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_scenario"))
        .args(["--no-infergate", "--no-nginx"])
        .args(["--mockllm", env!("CARGO_BIN_EXE_mockllm")])
        .args(["--gateway", &format!("down=http://127.0.0.1:{closed}")])
        .args(["--rates", "100", "--duration", "200ms", "--warmup", "0s"])
        .output()
        .expect("run scenario");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway down at http://127.0.0.1:")
            && stderr.contains("mockllm at http://127.0.0.1:"),
        "{stderr}"
    );
}
