//! `soak`: infergate under a mixed load for a chosen time, sampling its memory, descriptors,
//! connections and latency every window into a CSV and an SVG chart.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use loadtest::loadgen::parse_duration;
use loadtest::soak::{self, SoakConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs streams, Anthropic↔OpenAI translations, exact-cache hits and provider failures
/// through one infergate (one shard) while reloading its config every few seconds, and
/// writes soak.csv, soak.svg and summary.json. Stops by itself; only 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "soak", version)]
struct Args {
    /// The gateway binary.
    #[arg(long, default_value = "target/release/infergate")]
    infergate: PathBuf,
    /// The mockllm binary (default: next to this binary).
    #[arg(long)]
    mockllm: Option<PathBuf>,
    /// How long to run: 60m, 90s.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// One CSV row per window.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    window: Duration,
    /// Time between config reloads (POST /admin/reload).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    reload_every: Duration,
    /// Multiplies every lane's rate (about 175 req/s in all at 1).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Output directory.
    #[arg(long, default_value = "soak-out")]
    out: PathBuf,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.window.is_zero()
        || args.reload_every.is_zero()
        || !args.scale.is_finite()
        || args.scale <= 0.0
    {
        return Err("--window, --reload-every and --scale must be > 0".into());
    }
    let mockllm = match args.mockllm {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("mockllm"))
            .ok_or("cannot locate mockllm next to this binary; pass --mockllm")?,
    };
    let config = SoakConfig {
        infergate: args.infergate,
        mockllm,
        duration: args.duration,
        window: args.window,
        reload_every: args.reload_every,
        scale: args.scale,
        out: args.out,
    };
    let summary = soak::run(&config, &mut |line| eprintln!("soak: {line}"))?;
    eprintln!(
        "soak: {} windows; RSS {}..{} KiB (second half {:+.0} KiB/h); fds {}..{}; idle before {:?}, after {:?}; reloads {} ok, {} failed",
        summary.windows,
        summary.rss_kib_min,
        summary.rss_kib_max,
        summary.rss_kib_per_hour_second_half,
        summary.fds_min,
        summary.fds_max,
        summary.idle_before,
        summary.idle_after,
        summary.reloads_ok,
        summary.reloads_failed
    );
    for lane in &summary.lanes {
        eprintln!(
            "soak: lane {}: {} ok, {} errors {:?}{}",
            lane.name,
            lane.ok,
            lane.errors,
            lane.error_kinds,
            if lane.fails_by_design {
                " (fails by design)"
            } else {
                ""
            }
        );
    }
    eprintln!("soak: wrote {} and {}", summary.csv, summary.chart);
    Ok(())
}
