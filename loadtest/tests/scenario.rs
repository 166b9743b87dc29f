//! scenario end to end with a stand-in gateway: a script that checks the config it was given,
//! prints the gateway's ready line and becomes a mockllm on the configured port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
