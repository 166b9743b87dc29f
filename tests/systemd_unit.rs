//! deploy/systemd/infergate.service passes `systemd-analyze verify` and rates OK in
//! `systemd-analyze security`, both of which work offline (no running systemd needed); the
//! system-call groups it allows hold what the gateway calls; the sample config checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/systemd/infergate.service"
);
const INSTALLED_BIN: &str = "/usr/local/bin/infergate";

fn analyze(args: &[&str]) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze: {e} (scripts/test-deps.sh installs the systemd package)")
        })
}

/// The unit with `ExecStart`/`ExecStartPre` pointed at the freshly built binary, written
/// to a temporary directory: verify refuses a unit whose binary does not exist, and
/// nothing else in the unit is changed.
fn unit_with_built_binary(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(UNIT).unwrap();
    assert!(
        text.contains(&format!("ExecStart={INSTALLED_BIN} ")),
        "{text}"
    );
    let bin = env!("CARGO_BIN_EXE_infergate");
    let changed = text.replace(&format!("={INSTALLED_BIN} "), &format!("={bin} "));
    let differing = text
        .lines()
        .zip(changed.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 2,
        "only ExecStartPre and ExecStart name the binary"
    );
    let path = dir.join("infergate.service");
    std::fs::write(&path, changed).unwrap();
    path
}

#[test]
fn the_unit_verifies_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_built_binary(dir.path());
    let out = analyze(&["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    // Unknown or misspelt settings are warnings with exit code 0: none allowed.
    assert!(
        stderr.trim().is_empty() && out.stdout.is_empty(),
        "verify warned: {stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_sandbox_rates_ok() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with_built_binary(dir.path());
    // Exposure 2.0 or less ("OK"); the threshold is in tenths.
    let out = analyze(&[
        "security",
        "--offline=yes",
        "--threshold=20",
        unit.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "exposure above 2.0:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(UNIT).unwrap();
    for setting in [
        "Type=notify",
        "WatchdogSec=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "LimitNOFILE=",
        "MemoryMax=",
        "StateDirectory=",
        "LogsDirectory=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(text.contains(setting), "the unit lacks {setting:?}");
    }
}

#[test]
fn the_allowed_system_calls_hold_what_the_gateway_calls() {
    let text = std::fs::read_to_string(UNIT).unwrap();
    let filter = text
        .lines()
        .find_map(|l| l.strip_prefix("SystemCallFilter=@system-service"))
        .unwrap();
    for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
        assert!(
            filter.split_whitespace().any(|c| c == call),
            "{call} not allowed"
        );
    }
    // What the unit leaves to the group: pinning, raising the open-files limit, io_uring.
    let allowed = expand("@system-service");
    let needed = [
        "sched_setaffinity",
        "sched_getaffinity",
        "setrlimit",
        "prlimit64",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
    ];
    for call in needed {
        assert!(
            allowed.iter().any(|c| c == call),
            "@system-service lacks {call}"
        );
    }
    // And the denied group takes none of them away.
    let denied = expand("@privileged");
    assert!(
        denied.iter().any(|c| c == "chroot"),
        "the group expands: {denied:?}"
    );
    for call in needed {
        assert!(
            !denied.iter().any(|c| c == call),
            "@privileged denies {call}"
        );
    }
}

/// The system calls of a `systemd-analyze syscall-filter` group, nested groups expanded.
fn expand(group: &str) -> Vec<String> {
    let out = analyze(&["syscall-filter", group]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut calls = Vec::new();
    // The first line names the group itself; comments start with '#'.
    for entry in text.lines().skip(1).map(str::trim) {
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        if entry.starts_with('@') {
            calls.extend(expand(entry));
        } else {
            calls.push(entry.to_string());
        }
    }
    calls
}

#[test]
fn the_sample_config_checks() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/infergate.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_infergate"))
        .args(["check-config", sample])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
