//! The run's result: JSON (for tools) and text (for people).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::config::{LoadgenConfig, Mode};
use super::recorder::Recorder;

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Request counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RequestCounts {
    /// Scheduled (open loop) or started (closed loop).
    pub scheduled: u64,
    /// Successful (2xx, and `[DONE]` seen when streaming).
    pub ok: u64,
    /// Failed, all kinds.
    pub errors: u64,
    /// Had to wait for a connection because all were busy at the cap (sent late).
    pub backlogged: u64,
    /// Still queued at the drain deadline, never sent.
    pub not_sent: u64,
}

/// Errors by kind; `status` is keyed by the status code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ErrorCounts {
    pub total: u64,
    pub connect: u64,
    pub reset: u64,
    pub timeout: u64,
    pub protocol: u64,
    pub incomplete_stream: u64,
    pub io: u64,
    pub status: BTreeMap<String, u64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// `open-loop` or `closed-loop`.
    pub mode: String,
    pub url: String,
    pub stream: bool,
    /// Requested rate (open loop only).
    pub target_rate: Option<f64>,
    /// Connection cap (open loop) or connection count (closed loop).
    pub connections: usize,
    pub threads: usize,
    pub duration_s: f64,
    /// Successful requests per second of the scheduled duration.
    pub achieved_rate: f64,
    pub requests: RequestCounts,
    /// From scheduled send (open loop) or actual send (closed loop) to the response's end.
    pub latency_us: LatencySummary,
    /// Same start, to the first SSE `data:` event (streams) or the first response byte.
    pub ttfb_us: LatencySummary,
    /// From actual send to the response's end.
    pub service_time_us: LatencySummary,
    /// How late requests left relative to their schedule.
    pub send_lag_us: LatencySummary,
    pub errors: ErrorCounts,
    pub connections_opened: u64,
}

impl Report {
    pub(crate) fn new(config: &LoadgenConfig, rec: &Recorder, _elapsed: Duration) -> Self {
        let (mode, target_rate, connections) = match config.mode {
            Mode::OpenLoop { rate } => ("open-loop", Some(rate), config.max_connections),
            Mode::ClosedLoop { connections } => ("closed-loop", None, connections),
        };
        let duration_s = config.duration.as_secs_f64();
        let errors = ErrorCounts {
            total: rec.errors.total(),
            connect: rec.errors.connect,
            reset: rec.errors.reset,
            timeout: rec.errors.timeout,
            protocol: rec.errors.protocol,
            incomplete_stream: rec.errors.incomplete_stream,
            io: rec.errors.io,
            status: rec
                .errors
                .status
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
        };
        Self {
            mode: mode.to_string(),
            url: config.url.clone(),
            stream: config.stream,
            target_rate,
            connections,
            threads: config.threads.max(1),
            duration_s,
            achieved_rate: rec.ok as f64 / duration_s,
            requests: RequestCounts {
                scheduled: rec.scheduled,
                ok: rec.ok,
                errors: errors.total,
                backlogged: rec.backlogged,
                not_sent: rec.not_sent,
            },
            latency_us: LatencySummary::of(&rec.latency),
            ttfb_us: LatencySummary::of(&rec.ttfb),
            service_time_us: LatencySummary::of(&rec.service_time),
            send_lag_us: LatencySummary::of(&rec.send_lag),
            errors,
            connections_opened: rec.connections_opened,
        }
    }
}

fn row(f: &mut fmt::Formatter<'_>, name: &str, s: &LatencySummary) -> fmt::Result {
    writeln!(
        f,
        "  {name:<13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11.1}",
        s.p50, s.p90, s.p99, s.p999, s.max, s.mean
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target_rate {
            Some(rate) => writeln!(
                f,
                "{} {} at {rate} req/s for {:.1}s ({} max connections, {} threads{})",
                self.mode,
                self.url,
                self.duration_s,
                self.connections,
                self.threads,
                if self.stream { ", stream" } else { "" }
            )?,
            None => writeln!(
                f,
                "{} {} with {} connections for {:.1}s ({} threads{})",
                self.mode,
                self.url,
                self.connections,
                self.duration_s,
                self.threads,
                if self.stream { ", stream" } else { "" }
            )?,
        }
        let r = &self.requests;
        writeln!(
            f,
            "requests: {} scheduled, {} ok, {} errors, {} backlogged, {} not sent; achieved {:.1} req/s; {} connections opened",
            r.scheduled, r.ok, r.errors, r.backlogged, r.not_sent, self.achieved_rate, self.connections_opened
        )?;
        writeln!(
            f,
            "  {:<13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}",
            "(µs)", "p50", "p90", "p99", "p99.9", "max", "mean"
        )?;
        row(f, "latency", &self.latency_us)?;
        row(f, "ttfb", &self.ttfb_us)?;
        row(f, "service time", &self.service_time_us)?;
        row(f, "send lag", &self.send_lag_us)?;
        let e = &self.errors;
        if e.total > 0 {
            write!(
                f,
                "errors: connect {}, reset {}, timeout {}, protocol {}, incomplete stream {}, io {}",
                e.connect, e.reset, e.timeout, e.protocol, e.incomplete_stream, e.io
            )?;
            for (code, n) in &e.status {
                write!(f, ", status {code}: {n}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
impl Report {
    /// The report of a run that measured nothing, for other modules' tests.
    #[allow(clippy::unwrap_used)]
    pub(crate) fn new_empty(config: &LoadgenConfig) -> Self {
        Self::new(config, &Recorder::new().unwrap(), Duration::ZERO)
    }
}
