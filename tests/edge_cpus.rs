//! `[server] cpus` against the real binary: the shard threads' `Cpus_allowed_list` (from
//! `/proc/PID/task/*/status`) is the CPU each is pinned to, the shard count defaults to the
//! set's size, and a CPU the process may not use is a config error naming it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::process::Command;

const MOCK_ONLY: &str = r#"
[providers.mock]
kind = "mock"

[models."gpt-4o-mini"]
targets = [{ provider = "mock", model = "mock-model" }]
"#;

/// The CPUs this test may run on (the gateway it starts inherits them).
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    parse_list(&list)
}

fn parse_list(list: &str) -> Vec<usize> {
    list.split(',')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// Each shard thread's allowed CPUs, from /proc (thread names are cut to 15 bytes:
/// `infergate-shard`).
fn shard_cpus(pid: u32) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != "infergate-shard" {
            continue;
        }
        let status = std::fs::read_to_string(task.join("status")).unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        out.push(parse_list(&list));
    }
    out.sort();
    out
}

/// Starts the gateway with `[server] cpus = cpus` and `shards` as given (the harness's
/// default `shards = 2` removed when `None`).
fn start(cpus: &str, shards: Option<usize>) -> Gateway {
    let cpus = format!("\"{cpus}\"");
    let shards_setting = shards.map(|n| n.to_string());
    let mut server = vec![("cpus", cpus.as_str())];
    if let Some(n) = &shards_setting {
        server.push(("shards", n.as_str()));
    }
    Gateway::start_adjusted(
        MOCK_ONLY,
        Driver::Uring,
        &[],
        &server,
        |cmd: &mut Command| {
            if shards.is_none() {
                let path = cmd.get_args().nth(1).unwrap().to_owned();
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(&path, text.replace("shards = 2\n", "")).unwrap();
            }
        },
    )
}

#[test]
fn shards_are_pinned_to_the_configured_cpu() {
    let last = *allowed_cpus().last().unwrap();
    let g = start(&last.to_string(), Some(2));
    let threads = shard_cpus(g.proc.child.id());
    assert_eq!(
        threads,
        vec![vec![last], vec![last]],
        "two shards on CPU {last}"
    );
    let ready = raw_request(
        &g.admin,
        &format!(
            "GET /admin/ready HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            g.admin
        ),
    );
    assert_eq!(ready.json()["shards"], 2);
}

#[test]
fn the_shard_count_defaults_to_the_cpu_sets_size() {
    let allowed = allowed_cpus();
    let set: Vec<usize> = allowed.iter().copied().take(2).collect();
    let list = set
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let g = start(&list, None);
    let threads = shard_cpus(g.proc.child.id());
    let expected: Vec<Vec<usize>> = set.iter().map(|&c| vec![c]).collect();
    assert_eq!(threads, expected, "one shard per CPU of {list}");
}

#[test]
fn a_cpu_outside_the_allowed_set_is_refused_by_name() {
    let allowed = allowed_cpus();
    let outside = (0..1024).find(|c| !allowed.contains(c)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cpus = format!("[{outside}]");
    let config = Gateway::full_config_with(MOCK_ONLY, dir.path(), &[("cpus", cpus.as_str())]);
    let path = dir.path().join("infergate.toml");
    std::fs::write(&path, config).unwrap();
    let bin = env!("CARGO_BIN_EXE_infergate");

    let check = Command::new(bin)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains(&format!(
            "[server] cpus names CPU(s) {outside} that this process may not run on"
        )),
        "{err}"
    );

    let serve = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(1));
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(err.contains(&format!("CPU(s) {outside} ")), "{err}");
    assert!(
        !String::from_utf8_lossy(&serve.stdout).contains("listening"),
        "it must not serve"
    );
}
