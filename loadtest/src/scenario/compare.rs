//! Side-by-side results: each path's report, and what each proxy adds over the direct path.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::plot::SpectrumPoint;
use super::syscalls::SyscallReport;
use super::threads::ThreadCpu;
use crate::loadgen::Report;

/// One path measured under one load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathResult {
    /// `direct`, `infergate`, `nginx` or the name of a `--gateway`.
    pub path: String,
    /// The measured process (None for direct, or a gateway given without a PID).
    pub pid: Option<u32>,
    /// Proxy CPU time (user + system) per successful request, µs; None without a process.
    pub cpu_us_per_request: Option<f64>,
    /// The same CPU per thread name, busiest first (empty without a process).
    pub threads: Vec<ThreadCpu>,
    /// Latency by percentile, 0 to 99.99 (HDR percentile spectrum, from loadgen's histogram).
    pub latency_spectrum: Vec<SpectrumPoint>,
    /// The load generator's report.
    pub report: Report,
}

/// All paths under one load (a rate, or the closed-loop run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateResult {
    /// E.g. `open-loop 1000 req/s`.
    pub mode: String,
    /// Direct first, then the proxies.
    pub paths: Vec<PathResult>,
}

/// The whole scenario's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub stream: bool,
    pub body_bytes: usize,
    pub duration_s: f64,
    pub load_cpu: usize,
    pub proxy_cpu: usize,
    /// Where the mock listened (what `--gateway`s must route to).
    pub mock_url: String,
    /// Paths skipped and other caveats.
    pub notes: Vec<String>,
    pub runs: Vec<RateResult>,
    /// The syscall pass (`--syscalls`).
    pub syscalls: Option<SyscallReport>,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn added(a: u64, b: u64) -> i64 {
    i64::try_from(a).unwrap_or(i64::MAX) - i64::try_from(b).unwrap_or(i64::MAX)
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario: {} chat, {} B bodies, {:.1}s per run; load+mock on cpu {}, proxy on cpu {}",
            if self.stream {
                "streaming"
            } else {
                "non-streaming"
            },
            self.body_bytes,
            self.duration_s,
            self.load_cpu,
            self.proxy_cpu
        )?;
        writeln!(f, "mock: {}", self.mock_url)?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for run in &self.runs {
            // Wide enough for the longest path name (`refused-first+eject`).
            let width = run
                .paths
                .iter()
                .map(|p| p.path.chars().count())
                .max()
                .unwrap_or(0)
                .max(10);
            writeln!(f, "\n== {}", run.mode)?;
            writeln!(
                f,
                "{:<width$} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7} {:>10}",
                "path", "p50 µs", "p99 µs", "p99.9 µs", "ttfb p50", "ok/s", "errors", "cpu µs/req"
            )?;
            for p in &run.paths {
                let l = &p.report.latency_us;
                writeln!(
                    f,
                    "{:<width$} {:>9} {:>9} {:>9} {:>9} {:>10.1} {:>7} {:>10}",
                    p.path,
                    l.p50,
                    l.p99,
                    l.p999,
                    p.report.ttfb_us.p50,
                    p.report.achieved_rate,
                    p.report.errors.total,
                    p.cpu_us_per_request
                        .map(|c| format!("{c:.1}"))
                        .unwrap_or_else(|| "-".to_string())
                )?;
            }
            let Some(direct) = run.paths.first() else {
                continue;
            };
            let d = &direct.report.latency_us;
            for p in run.paths.iter().skip(1) {
                let l = &p.report.latency_us;
                writeln!(
                    f,
                    "{} over direct: p50 {:+} µs (x{:.2}), p99 {:+} µs (x{:.2}), p99.9 {:+} µs (x{:.2}), throughput x{:.2}",
                    p.path,
                    added(l.p50, d.p50),
                    ratio(l.p50, d.p50),
                    added(l.p99, d.p99),
                    ratio(l.p99, d.p99),
                    added(l.p999, d.p999),
                    ratio(l.p999, d.p999),
                    if direct.report.achieved_rate > 0.0 {
                        p.report.achieved_rate / direct.report.achieved_rate
                    } else {
                        0.0
                    }
                )?;
            }
            for p in run.paths.iter().filter(|p| !p.threads.is_empty()) {
                write_threads(f, p)?;
            }
        }
        if let Some(calls) = &self.syscalls {
            write_syscalls(f, calls)?;
        }
        Ok(())
    }
}

/// Threads that used less than this per request and were never scheduled are left out
/// of the text table (they are in the JSON).
const QUIET_THREAD_US: f64 = 0.05;

fn write_threads(f: &mut fmt::Formatter<'_>, p: &PathResult) -> fmt::Result {
    let width = p
        .threads
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(16);
    writeln!(f, "{} per thread ({} ok):", p.path, p.report.requests.ok)?;
    writeln!(
        f,
        "    {:<width$} {:>7} {:>11} {:>9} {:>8}",
        "thread", "threads", "cpu µs/req", "runs/req", "cpu ms"
    )?;
    let mut quiet = 0;
    for t in &p.threads {
        let runs = t.runs_per_request.unwrap_or(0.0);
        if t.cpu_us_per_request < QUIET_THREAD_US && runs == 0.0 {
            quiet += 1;
            continue;
        }
        writeln!(
            f,
            "    {:<width$} {:>7} {:>11.2} {:>9} {:>8.0}",
            t.name,
            t.threads,
            t.cpu_us_per_request,
            t.runs_per_request
                .map(|r| format!("{r:.3}"))
                .unwrap_or_else(|| "-".to_string()),
            t.cpu_ms
        )?;
    }
    if quiet > 0 {
        writeln!(f, "    ({quiet} idle thread name(s) not shown)")?;
    }
    Ok(())
}

fn write_syscalls(f: &mut fmt::Formatter<'_>, calls: &SyscallReport) -> fmt::Result {
    writeln!(
        f,
        "\n== syscalls per request ({}, {}; not a latency run)",
        calls.tool, calls.mode
    )?;
    for p in &calls.paths {
        writeln!(
            f,
            "{}: {:.2} per request ({} ok), io_uring_enter {:.2}",
            p.path, p.total_per_request, p.requests, p.io_uring_enter_per_request
        )?;
        for c in &p.top {
            writeln!(
                f,
                "    {:<24} {:>9.3} {:>12}",
                c.name, c.per_request, c.calls
            )?;
        }
    }
    Ok(())
}
