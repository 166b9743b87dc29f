//! `scenario`: direct vs. infergate vs. nginx under the same load, in one run.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use loadtest::loadgen::parse_duration;
use loadtest::scenario::{self, ScenarioConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measures loadgen → mockllm directly, through infergate and through nginx (when on PATH)
/// at fixed rates and in closed loop, and prints what each proxy adds (latency
/// percentiles, ratios, CPU time per request). Only 127.0.0.1; all children killed at the end.
#[derive(Debug, Parser)]
#[command(name = "scenario", version)]
struct Args {
    /// The gateway binary.
    #[arg(long, default_value = "target/release/infergate")]
    infergate: PathBuf,
    /// The mockllm binary (default: next to this binary).
    #[arg(long)]
    mockllm: Option<PathBuf>,
    /// Comma-separated open-loop rates in requests per second.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    rates: Vec<f64>,
    /// Length of each measured run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up per path.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Streaming chat requests.
    #[arg(long)]
    stream: bool,
    /// Chat body size in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// Connections of the closed-loop max-throughput run (0 skips it).
    #[arg(long, default_value_t = 16)]
    closed_loop: usize,
    /// Tokens per mock completion.
    #[arg(long, default_value_t = 16)]
    tokens: u32,
    /// Do not measure nginx even when it is on PATH.
    #[arg(long)]
    no_nginx: bool,
    /// Print the full result as JSON.
    #[arg(long)]
    json: bool,
    /// Also measure infergate with keys, limits and budgets on (`infergate+governance`).
    #[arg(long)]
    governance: bool,
    /// Also measure infergate with every guardrail rule redacting requests and answers
    /// (`infergate+guardrails`).
    #[arg(long)]
    guardrails: bool,
    /// Also measure infergate with `[metrics] enabled = false` (`infergate-metrics`), beside
    /// the default gateway, which keeps metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Also measure infergate exporting every request's spans over OTLP/HTTP to a sink in
    /// this process (`infergate+traces`, sample ratio 1.0).
    #[arg(long)]
    traces: bool,
    /// Also measure failover: the alias's first target fails fast, then the mock answers.
    /// `refused-first`: the first target's port refuses connections; `503-first`: it is a
    /// second mockllm answering 503 at once. Each with ejection off (every request pays the
    /// failed attempt) and with the default ejection (`+eject`: ejected after 5 failures).
    #[arg(long)]
    failover: bool,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scenario: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mockllm = match args.mockllm {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("mockllm"))
            .ok_or("cannot locate mockllm next to this binary; pass --mockllm")?,
    };
    let config = ScenarioConfig {
        infergate: args.infergate,
        mockllm,
        nginx: !args.no_nginx,
        rates: args.rates,
        duration: args.duration,
        warmup: args.warmup,
        stream: args.stream,
        body_bytes: args.body_bytes,
        closed_loop_connections: args.closed_loop,
        mock_tokens: args.tokens,
        governance: args.governance,
        guardrails: args.guardrails,
        no_metrics: args.no_metrics,
        traces: args.traces,
        failover: args.failover,
    };
    let report = scenario::run(&config, &mut |line| eprintln!("scenario: {line}"))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    out.flush()?;
    Ok(())
}
