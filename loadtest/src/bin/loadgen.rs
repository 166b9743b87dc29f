//! `loadgen`: open-loop (fixed rate) or closed-loop load against one OpenAI-style endpoint.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use loadtest::loadgen::{self, parse_duration, LoadgenConfig, Mode, Target};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Open-loop, coordinated-omission-safe load generator: sends chat completions at a fixed
/// rate and measures latency from each request's scheduled send time (HDR histograms, µs).
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Target URL (http only); without a path, /v1/chat/completions.
    #[arg(long)]
    url: String,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to send for: 10s, 500ms, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Most connections (open loop); more are opened only while all are busy.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Closed-loop maximum-throughput mode with N concurrent connections (ignores --rate).
    #[arg(long, value_name = "N")]
    closed_loop: Option<usize>,
    /// Worker threads (each its own runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin worker threads to the CPUs this process may use.
    #[arg(long)]
    pin: bool,
    /// Pad the prompt so the chat body is about this many bytes.
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
    /// Ask for SSE streaming (measures time to first event and to [DONE]).
    #[arg(long)]
    stream: bool,
    /// Model name in the body.
    #[arg(long, default_value = "gpt-4o-mini")]
    model: String,
    /// Extra header `name:value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let target = Target::parse(&args.url)?;
    let mut config = LoadgenConfig::new(target, args.url.clone());
    config.mode = match args.closed_loop {
        Some(connections) => Mode::ClosedLoop { connections },
        None => Mode::OpenLoop { rate: args.rate },
    };
    config.duration = args.duration;
    config.max_connections = args.connections;
    config.threads = args.threads;
    config.pin = args.pin;
    config.stream = args.stream;
    config.model = args.model;
    config.body_bytes = args.body_bytes;
    config.timeout = args.timeout;
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("--header {header:?} is not name:value"))?;
        config
            .headers
            .push((name.trim().to_string(), value.trim().to_string()));
    }
    let report = loadgen::run(&config)?;
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
