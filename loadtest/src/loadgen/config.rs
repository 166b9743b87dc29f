//! What a run does: target, schedule (open or closed loop), request shape, limits.

use std::time::Duration;

use super::target::Target;
use super::LoadgenError;

/// How requests are scheduled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Fixed rate in requests per second, independent of responses; latency is measured
    /// from each request's scheduled send time.
    OpenLoop {
        /// Requests per second (all threads together).
        rate: f64,
    },
    /// Maximum throughput: this many connections, each sending its next request as soon
    /// as the previous response is complete; latency is measured from the actual send.
    ClosedLoop {
        /// Concurrent connections (all threads together).
        connections: usize,
    },
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct LoadgenConfig {
    /// Where to send.
    pub target: Target,
    /// The URL as given, for the report.
    pub url: String,
    /// Open or closed loop.
    pub mode: Mode,
    /// How long to schedule requests for.
    pub duration: Duration,
    /// Open loop: most connections per run (spread over threads).
    pub max_connections: usize,
    /// Worker threads, each with its own runtime.
    pub threads: usize,
    /// Pin worker i to the i-th allowed CPU.
    pub pin: bool,
    /// Ask for an SSE stream (`"stream": true`).
    pub stream: bool,
    /// `model` of the chat body.
    pub model: String,
    /// Pad the prompt so the body is about this many bytes (0: no padding).
    pub body_bytes: usize,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// A JSON body sent as is instead of the chat completion built from `model`, `stream`
    /// and `body_bytes` (e.g. an Anthropic Messages request); `stream` still says whether
    /// the answer is read as SSE.
    pub body: Option<Vec<u8>>,
    /// A request not complete after this is counted as a timeout.
    pub timeout: Duration,
}

/// One worker's part of a run.
#[derive(Debug, Clone)]
pub struct WorkerShare {
    pub target: Target,
    pub mode: Mode,
    pub duration: Duration,
    pub max_connections: usize,
    pub stream: bool,
    pub timeout: Duration,
    /// Offset of this worker's first send, so workers interleave instead of bursting.
    pub phase: Duration,
}

impl LoadgenConfig {
    /// Defaults for `target`: 1000 req/s open loop for 10 s, up to 256 connections, 1 thread.
    pub fn new(target: Target, url: impl Into<String>) -> Self {
        Self {
            target,
            url: url.into(),
            mode: Mode::OpenLoop { rate: 1000.0 },
            duration: Duration::from_secs(10),
            max_connections: 256,
            threads: 1,
            pin: false,
            stream: false,
            model: "gpt-4o-mini".to_string(),
            body_bytes: 0,
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(10),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), LoadgenError> {
        match self.mode {
            Mode::OpenLoop { rate } if !(rate > 0.0 && rate.is_finite()) => {
                return Err(LoadgenError::Config("rate must be > 0".into()))
            }
            Mode::ClosedLoop { connections: 0 } => {
                return Err(LoadgenError::Config("closed loop needs connections".into()))
            }
            _ => {}
        }
        if self.duration.is_zero() {
            return Err(LoadgenError::Config("duration must be > 0".into()));
        }
        if self.max_connections == 0 {
            return Err(LoadgenError::Config("connections must be > 0".into()));
        }
        Ok(())
    }

    pub(crate) fn share_for_worker(&self, index: usize, threads: usize) -> WorkerShare {
        let split = |total: usize| total / threads + usize::from(index < total % threads);
        let (mode, phase) = match self.mode {
            Mode::OpenLoop { rate } => {
                let per = rate / threads as f64;
                let phase = Duration::from_secs_f64(index as f64 / rate);
                (Mode::OpenLoop { rate: per }, phase)
            }
            Mode::ClosedLoop { connections } => (
                Mode::ClosedLoop {
                    connections: split(connections),
                },
                Duration::ZERO,
            ),
        };
        WorkerShare {
            target: self.target.clone(),
            mode,
            duration: self.duration,
            max_connections: split(self.max_connections).max(1),
            stream: self.stream,
            timeout: self.timeout,
            phase,
        }
    }
}

/// Parses a duration such as `10s`, `500ms`, `2m` or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?} (use ms, s or m)"
            ))
        }
    };
    if !(seconds >= 0.0 && seconds.is_finite()) {
        return Err(format!("invalid duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
