//! `infergate doctor` against the real binary: a config with a missing model directory, an
//! unset key variable and an unreachable provider exits non-zero with a FAIL line (and its
//! fix) for each; a config that is right passes, and key values are never printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::process::{Command, Output};

fn doctor(config: &str, env: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("infergate.toml");
    std::fs::write(
        &path,
        config.replace("{dir}", &dir.path().display().to_string()),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_infergate"));
    cmd.arg("doctor").arg("--config").arg(&path);
    cmd.env_remove("DOCTOR_TEST_UNSET_KEY")
        .env_remove("INFERGATE_DRIVER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{stdout}"))
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn each_mistake_gets_a_fail_line_with_its_fix_and_a_non_zero_exit() {
    let mock = Mock::start(&[]);
    let down = closed_port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
shards = 1

[log]
path = "{{dir}}/requests.jsonl"

[embedder]
model_dir = "{{dir}}/no-such-model"

[providers.keyed]
kind = "openai"
base_url = "{}"
api_key_env = "DOCTOR_TEST_UNSET_KEY"

[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:{down}/v1"

[models."gpt-4o-mini"]
targets = [{{ provider = "keyed", model = "gpt-4o-mini" }}, {{ provider = "down", model = "x" }}]
cache = {{ semantic = true }}
"#,
        mock.base_url()
    );
    let (out, stdout) = doctor(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("infergate: 3 check(s) failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let model = line(&stdout, "FAIL  model files: ");
    assert!(model.contains("model.safetensors"), "{model}");
    assert!(
        model.contains("; fix: run scripts/fetch-model.sh"),
        "{model}"
    );

    let key = line(&stdout, "FAIL  provider keyed key: ");
    assert!(
        key.contains(
            "environment variable DOCTOR_TEST_UNSET_KEY is not set; fix: set DOCTOR_TEST_UNSET_KEY"
        ),
        "{key}"
    );

    let unreachable = line(&stdout, "FAIL  provider down reachable: ");
    assert!(
        unreachable.contains(&format!("TCP connect to 127.0.0.1:{down} failed")),
        "{unreachable}"
    );
    assert!(
        unreachable.contains("fix: nothing listens at"),
        "{unreachable}"
    );

    // The rest is reported too: the mock is reachable, the machine checks ran.
    line(&stdout, "ok    provider keyed reachable: ");
    line(&stdout, "ok    provider down key: no credential needed");
    line(&stdout, "ok    config: ");
    for check in [
        "io_uring: ",
        "memlock: ",
        "open files: ",
        "cpus: ",
        "cuda: ",
        "clock: ",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check))),
            "no {check} line in:\n{stdout}"
        );
    }
    assert!(line(&stdout, "doctor: ").ends_with("3 fail"), "{stdout}");
}

#[test]
fn a_sound_config_passes_without_showing_key_values() {
    let mock = Mock::start(&[]);
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[log]
path = "{{dir}}/requests.jsonl"

[providers.keyed]
kind = "openai"
base_url = "{}"
api_key_env = "DOCTOR_TEST_KEY"

[models."gpt-4o-mini"]
targets = [{{ provider = "keyed", model = "gpt-4o-mini" }}]
"#,
        mock.base_url()
    );
    let secret = "sk-doctor-secret-0c9e";
    let (out, stdout) = doctor(&config, &[("DOCTOR_TEST_KEY", secret)]);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        line(&stdout, "ok    provider keyed key: "),
        "ok    provider keyed key: DOCTOR_TEST_KEY is set"
    );
    assert!(!stdout.contains(secret));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    assert!(line(&stdout, "doctor: ").ends_with(" 0 fail"), "{stdout}");
}

#[test]
fn an_unreadable_config_fails_and_the_machine_checks_still_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["doctor", "--config", "/nonexistent/infergate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let config = line(&stdout, "FAIL  config: ");
    assert!(config.contains("/nonexistent/infergate.toml"), "{config}");
    for check in ["io_uring: ", "memlock: ", "clock: "] {
        assert!(
            stdout
                .lines()
                .any(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check))),
            "no {check} line in:\n{stdout}"
        );
    }
    assert!(line(&stdout, "doctor: ").ends_with(" 1 fail"), "{stdout}");
}
