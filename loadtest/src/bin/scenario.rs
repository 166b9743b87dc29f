//! `scenario`: direct vs. infergate vs. nginx under the same load, in one run.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use loadtest::loadgen::parse_duration;
use loadtest::scenario::{self, ExternalGateway, ScenarioConfig, SyscallPass, SyscallTool};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measures loadgen → mockllm directly, through infergate and through nginx (when on PATH)
/// and through any gateway you run (`--gateway`), at fixed rates and in closed loop, and
/// prints what each proxy adds (latency percentiles, ratios, CPU time per request and per
/// thread, optionally syscalls per request). Only 127.0.0.1; all children killed at the end.
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
    /// Do not start and measure infergate (e.g. to measure only your own `--gateway`).
    #[arg(long)]
    no_infergate: bool,
    /// Port of the scenario's mockllm on 127.0.0.1 (0: any free port). Fix it to point
    /// your own gateway at the mock before the run.
    #[arg(long, default_value_t = 0)]
    mock_port: u16,
    /// A gateway you run, as NAME=URL (repeatable): `http://127.0.0.1:PORT` gets chat
    /// completions at `/v1/chat/completions`; a URL with a path is used as is. It must
    /// route model gpt-4o-mini to the mockllm (see --mock-port).
    #[arg(long = "gateway", value_name = "NAME=URL", value_parser = parse_named)]
    gateways: Vec<(String, String)>,
    /// The process of a `--gateway`, as NAME=PID (repeatable): its CPU time (all threads)
    /// is charged per request and broken down per thread.
    #[arg(long = "gateway-pid", value_name = "NAME=PID", value_parser = parse_named)]
    gateway_pids: Vec<(String, String)>,
    /// Count the live descendants of each --gateway-pid too (e.g. nginx's workers under
    /// its master process).
    #[arg(long)]
    gateway_children: bool,
    /// Also count syscalls per request per target, in a separate pass after the latency
    /// runs (the counter slows the gateway, so its latencies are not reported).
    #[arg(long)]
    syscalls: bool,
    /// Which tool counts syscalls.
    #[arg(long, value_enum, default_value = "auto")]
    syscall_tool: SyscallTool,
    /// Open-loop rate of the syscall pass (default: the first of --rates).
    #[arg(long)]
    syscall_rate: Option<f64>,
    /// Write report.json, report.txt and SVG charts (latency percentile spectrum per load,
    /// CPU per request by rate) into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Only redraw the charts of DIR/report.json (written by --out) into DIR; runs nothing.
    #[arg(long, value_name = "DIR")]
    replot: Option<PathBuf>,
}

/// `NAME=VALUE`, both non-empty.
fn parse_named(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// The `--gateway`s with their `--gateway-pid`s; every PID must name a gateway.
fn gateways(
    urls: &[(String, String)],
    pids: &[(String, String)],
) -> Result<Vec<ExternalGateway>, String> {
    let builtin = ["direct", "infergate", "nginx"];
    let mut out: Vec<ExternalGateway> = Vec::new();
    for (name, url) in urls {
        if builtin.contains(&name.as_str()) || out.iter().any(|g| &g.name == name) {
            return Err(format!("--gateway name {name:?} is taken; choose another"));
        }
        if !url.starts_with("http://") {
            return Err(format!("--gateway {name}: only http:// URLs ({url:?})"));
        }
        out.push(ExternalGateway {
            name: name.clone(),
            url: url.clone(),
            pid: None,
        });
    }
    for (name, pid) in pids {
        let gateway = out
            .iter_mut()
            .find(|g| &g.name == name)
            .ok_or_else(|| format!("--gateway-pid {name}: no --gateway {name}=URL"))?;
        gateway.pid = Some(
            pid.parse()
                .map_err(|_| format!("--gateway-pid {name}: {pid:?} is not a PID"))?,
        );
    }
    Ok(out)
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
    if let Some(dir) = &args.replot {
        // Charts again from a saved report (e.g. after the chart code changed).
        let text = std::fs::read(dir.join("report.json"))?;
        let report: scenario::ScenarioReport = serde_json::from_slice(&text)?;
        for file in scenario::plot::write_charts(&report, dir)? {
            eprintln!("scenario: wrote {}", file.display());
        }
        return Ok(());
    }
    let mockllm = match args.mockllm {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("mockllm"))
            .ok_or("cannot locate mockllm next to this binary; pass --mockllm")?,
    };
    let gateways = gateways(&args.gateways, &args.gateway_pids)?;
    let syscalls = args.syscalls.then(|| SyscallPass {
        tool: args.syscall_tool,
        rate: args
            .syscall_rate
            .or(args.rates.first().copied())
            .unwrap_or(1000.0),
        duration: args.duration,
    });
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
        start_infergate: !args.no_infergate,
        mock_port: args.mock_port,
        gateways,
        gateway_children: args.gateway_children,
        syscalls,
    };
    let report = scenario::run(&config, &mut |line| eprintln!("scenario: {line}"))?;
    if let Some(dir) = &args.out {
        for file in scenario::write_out(&report, dir)? {
            eprintln!("scenario: wrote {}", file.display());
        }
    }
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
