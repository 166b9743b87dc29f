//! `infergate embed --backend cuda` writes what `--backend cpu` writes (same token ids,
//! vectors within fp32 rounding). Without a device: prints "skipped: no CUDA device" and checks
//! instead that `--backend cuda` fails with a clear error (no panic); the CPU twin always runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod gpu_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use gpu_support::*;
use infergate::embed::cuda::probe;
use serde::Deserialize;

#[derive(Deserialize)]
struct OutLine {
    input_ids: Vec<u32>,
    embedding: Vec<f32>,
}

/// The first `n` dev lines as CLI input, and their reference.
fn input(n: usize) -> (String, Vec<DevLine>) {
    let dev: Vec<DevLine> = read_jsonl("dev.jsonl");
    let dev: Vec<DevLine> = dev.into_iter().take(n).collect();
    let mut s = String::new();
    for l in &dev {
        s.push_str(&serde_json::json!({ "text": l.text }).to_string());
        s.push('\n');
    }
    (s, dev)
}

fn run(backend: &str, stdin: &str) -> Output {
    // `$INFERGATE_BIN` when the prebuilt test runs on another machine.
    let bin =
        std::env::var_os("INFERGATE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_infergate").into());
    let mut child = Command::new(bin)
        .args(["embed", "--backend", backend, "--batch", "8", "--model-dir"])
        .arg(model_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn parse(out: &Output) -> Vec<OutLine> {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn cli_cpu_twin_matches_reference() {
    let (stdin, dev) = input(24);
    let got = parse(&run("cpu", &stdin));
    assert_eq!(got.len(), dev.len());
    for (g, want) in got.iter().zip(&dev) {
        assert_eq!(g.input_ids, want.input_ids);
        assert!(cosine(&g.embedding, &want.embedding) >= 0.9999);
    }
}

#[test]
fn cli_cuda_matches_cli_cpu() {
    let (stdin, _) = input(24);
    if let Err(e) = probe::probe() {
        skip(&e.to_string());
        let out = run("cuda", &stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("cannot run here") && !stderr.contains("panicked"),
            "{stderr}"
        );
        return;
    }
    let cuda = parse(&run("cuda", &stdin));
    let cpu = parse(&run("cpu", &stdin));
    assert_eq!(cuda.len(), cpu.len());
    for (i, (g, c)) in cuda.iter().zip(&cpu).enumerate() {
        assert_eq!(g.input_ids, c.input_ids, "line {i}");
        let max_abs = g
            .embedding
            .iter()
            .zip(&c.embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            cosine(&g.embedding, &c.embedding) >= 0.9999 && max_abs <= 1e-4,
            "line {i}"
        );
    }
}
