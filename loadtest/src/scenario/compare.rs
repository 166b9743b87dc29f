//! Side-by-side results: each path's report, and what each proxy adds over the direct path.

use std::fmt;

use serde::Serialize;

use crate::loadgen::Report;

/// One path measured under one load.
#[derive(Debug, Clone, Serialize)]
pub struct PathResult {
    /// `direct`, `infergate` or `nginx`.
    pub path: String,
    /// Proxy CPU time (user + system) per successful request, µs; None for direct.
    pub cpu_us_per_request: Option<f64>,
    /// The load generator's report.
    pub report: Report,
}

/// All paths under one load (a rate, or the closed-loop run).
#[derive(Debug, Clone, Serialize)]
pub struct RateResult {
    /// E.g. `open-loop 1000 req/s`.
    pub mode: String,
    /// Direct first, then the proxies.
    pub paths: Vec<PathResult>,
}

/// The whole scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub stream: bool,
    pub body_bytes: usize,
    pub duration_s: f64,
    pub load_cpu: usize,
    pub proxy_cpu: usize,
    /// Paths skipped and other caveats.
    pub notes: Vec<String>,
    pub runs: Vec<RateResult>,
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
        }
        Ok(())
    }
}
