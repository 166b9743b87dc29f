//! Per-worker measurements: HDR histograms (microseconds) and counters, merged at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::exchange::Exchange;

/// Longest latency a histogram tracks (larger values are clamped): one hour, in µs.
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// Why a request did not produce a successful response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The TCP connection could not be opened.
    Connect,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// No complete response within the request timeout.
    Timeout,
    /// The response was not valid HTTP/1.1.
    Protocol,
    /// A streamed 2xx response ended without `data: [DONE]`.
    IncompleteStream,
    /// Another socket error.
    Io,
    /// A complete response with a non-2xx status.
    Status(u16),
}

/// Error counts by kind.
#[derive(Debug, Clone, Default)]
pub struct ErrorTally {
    pub connect: u64,
    pub reset: u64,
    pub timeout: u64,
    pub protocol: u64,
    pub incomplete_stream: u64,
    pub io: u64,
    pub status: BTreeMap<u16, u64>,
}

impl ErrorTally {
    fn count(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Reset => self.reset += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::Protocol => self.protocol += 1,
            ErrorKind::IncompleteStream => self.incomplete_stream += 1,
            ErrorKind::Io => self.io += 1,
            ErrorKind::Status(code) => *self.status.entry(code).or_default() += 1,
        }
    }

    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect
            + self.reset
            + self.timeout
            + self.protocol
            + self.incomplete_stream
            + self.io
            + self.status.values().sum::<u64>()
    }

    fn merge(&mut self, other: &ErrorTally) {
        self.connect += other.connect;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.protocol += other.protocol;
        self.incomplete_stream += other.incomplete_stream;
        self.io += other.io;
        for (code, n) in &other.status {
            *self.status.entry(*code).or_default() += n;
        }
    }
}

/// Everything one worker measured.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Successful requests: scheduled send (open loop) or actual send (closed loop) to end.
    pub latency: Histogram<u64>,
    /// Successful requests: same start to the first SSE event (streams) or first byte.
    pub ttfb: Histogram<u64>,
    /// Successful requests: actual send to end (what a closed-loop tool would report).
    pub service_time: Histogram<u64>,
    /// How late each request was sent relative to its schedule (generator lag + queueing).
    pub send_lag: Histogram<u64>,
    /// Requests scheduled (open loop) or started (closed loop).
    pub scheduled: u64,
    /// Requests with a 2xx response (and `[DONE]` when streamed).
    pub ok: u64,
    /// Requests that found every connection busy and the pool at its cap, so waited.
    pub backlogged: u64,
    /// Requests still queued when the run's drain deadline passed (never sent).
    pub not_sent: u64,
    /// Failures by kind.
    pub errors: ErrorTally,
    /// TCP connections opened.
    pub connections_opened: u64,
}

fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Recorder {
    /// Empty histograms and counters.
    pub fn new() -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            latency: histogram()?,
            ttfb: histogram()?,
            service_time: histogram()?,
            send_lag: histogram()?,
            scheduled: 0,
            ok: 0,
            backlogged: 0,
            not_sent: 0,
            errors: ErrorTally::default(),
            connections_opened: 0,
        })
    }

    /// Records how late a request left relative to `scheduled`.
    pub fn record_send(&mut self, scheduled: Instant, sent: Instant) {
        self.send_lag
            .saturating_record(micros(sent.saturating_duration_since(scheduled)));
    }

    /// Records one request's outcome; latencies count from `start`.
    pub fn record(
        &mut self,
        start: Instant,
        sent: Instant,
        result: Result<Exchange, ErrorKind>,
        stream: bool,
    ) {
        let exchange = match result {
            Ok(e) if !(200..300).contains(&e.status) => {
                self.errors.count(ErrorKind::Status(e.status));
                return;
            }
            Ok(e) if stream && !e.saw_done_event => {
                self.errors.count(ErrorKind::IncompleteStream);
                return;
            }
            Ok(e) => e,
            Err(kind) => {
                self.errors.count(kind);
                return;
            }
        };
        self.ok += 1;
        self.latency
            .saturating_record(micros(exchange.done.saturating_duration_since(start)));
        let first = if stream {
            exchange.first_event.unwrap_or(exchange.first_byte)
        } else {
            exchange.first_byte
        };
        self.ttfb
            .saturating_record(micros(first.saturating_duration_since(start)));
        self.service_time
            .saturating_record(micros(exchange.done.saturating_duration_since(sent)));
    }

    /// Adds another worker's measurements to these.
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.ttfb.add(&other.ttfb);
        let _ = self.service_time.add(&other.service_time);
        let _ = self.send_lag.add(&other.send_lag);
        self.scheduled += other.scheduled;
        self.ok += other.ok;
        self.backlogged += other.backlogged;
        self.not_sent += other.not_sent;
        self.errors.merge(&other.errors);
        self.connections_opened += other.connections_opened;
    }
}
