//! The exporter thread: drains the span queue shards fill, batches (up to
//! [`MAX_BATCH_SPANS`] spans or [`BATCH_DELAY`] after the oldest), encodes and posts each
//! batch. Shards never wait for it: a full queue drops spans (counted), and a collector that
//! is down, slow or failing costs only this thread's time. Failures are logged at most once
//! per [`LOG_EVERY`].

use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::context::Sampler;
use super::counters;
use super::encode::BatchEncoder;
use super::otlp_http::OtlpClient;
use super::span::RequestSpans;
use super::Tracer;
use crate::config::{ConfigError, OtelConfig};

/// Most spans in one export request.
pub const MAX_BATCH_SPANS: u64 = 512;
/// Longest a span waits for its batch to fill.
pub const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Requests (each one server span and its attempts) the queue holds.
pub const QUEUE_REQUESTS: usize = 4096;
/// Longest one post may take, connect included.
pub const POST_TIMEOUT: Duration = Duration::from_secs(2);
/// Fewest seconds between two warnings about lost spans.
pub const LOG_EVERY: Duration = Duration::from_secs(30);
/// How often the thread looks at the queue. Shards never wake it (a send is a lock-free
/// push), so a busy shard pays no context switch per request.
const POLL: Duration = Duration::from_millis(50);

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// `[otel]` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The thread could not be spawned.
    #[error("cannot start the trace exporter thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// The exporter thread's handle; joining it posts what was queued before.
pub struct TraceExporter {
    handle: Option<JoinHandle<()>>,
}

impl TraceExporter {
    /// Starts the exporter `cfg` describes and returns the tracer shards use; without an
    /// endpoint, no thread and a tracer that is off.
    pub fn start(cfg: &OtelConfig) -> Result<(Self, Tracer), TraceError> {
        let endpoint = cfg.endpoint()?;
        super::note_running(cfg);
        let Some(endpoint) = endpoint else {
            return Ok((Self { handle: None }, Tracer::off()));
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE_REQUESTS);
        let client = OtlpClient::new(endpoint, POST_TIMEOUT);
        let encoder = BatchEncoder::new(&cfg.service_name);
        let handle = std::thread::Builder::new()
            .name("infergate-otlp".into())
            .spawn(move || run(&rx, &client, encoder))?;
        let tracer = Tracer::new(tx, Sampler::ratio(cfg.sample_ratio));
        Ok((
            Self {
                handle: Some(handle),
            },
            tracer,
        ))
    }

    /// Waits for the thread to post what is queued (every tracer must have been dropped).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The thread: batch, post, repeat until every tracer is gone; then post the rest.
fn run(rx: &Receiver<RequestSpans>, client: &OtlpClient, mut encoder: BatchEncoder) {
    let mut batch = Batch::default();
    let mut warn = Warnings::new();
    loop {
        match rx.try_recv() {
            Ok(request) => {
                batch.push(request);
                if batch.spans >= MAX_BATCH_SPANS {
                    post(&mut batch, client, &mut encoder, &mut warn);
                }
            }
            Err(TryRecvError::Empty) => {
                if batch.due() {
                    post(&mut batch, client, &mut encoder, &mut warn);
                }
                warn.queue_drops();
                std::thread::sleep(POLL);
            }
            Err(TryRecvError::Disconnected) => break,
        }
    }
    if batch.spans > 0 {
        post(&mut batch, client, &mut encoder, &mut warn);
    }
}

/// Requests waiting to be posted.
#[derive(Default)]
struct Batch {
    requests: Vec<RequestSpans>,
    spans: u64,
    oldest: Option<Instant>,
}

impl Batch {
    fn push(&mut self, r: RequestSpans) {
        self.oldest.get_or_insert_with(Instant::now);
        self.spans += r.span_count();
        self.requests.push(r);
    }

    fn due(&self) -> bool {
        self.oldest.is_some_and(|t| t.elapsed() >= BATCH_DELAY)
    }
}

/// Encodes and posts the batch, counts the outcome, and empties it.
fn post(batch: &mut Batch, client: &OtlpClient, encoder: &mut BatchEncoder, warn: &mut Warnings) {
    let body = encoder.encode(&batch.requests);
    let spans = batch.spans;
    match client.post(body) {
        Ok(0) => counters::add_exported(spans),
        Ok(rejected) => {
            let rejected = u64::try_from(rejected).unwrap_or(0).min(spans);
            counters::add_exported(spans - rejected);
            counters::add_failed(rejected);
            warn.failure(&format!(
                "the collector refused {rejected} of {spans} spans"
            ));
        }
        Err(e) => {
            counters::add_failed(spans);
            warn.failure(&e.to_string());
        }
    }
    *batch = Batch::default();
}

/// Warnings about lost spans, at most one per [`LOG_EVERY`] each, with what was lost since.
struct Warnings {
    failures: Throttle,
    drops: Throttle,
    dropped_seen: u64,
}

impl Warnings {
    fn new() -> Self {
        Self {
            failures: Throttle::default(),
            drops: Throttle::default(),
            dropped_seen: counters::spans_dropped(),
        }
    }

    fn failure(&mut self, why: &str) {
        if let Some(since) = self.failures.ready() {
            tracing::warn!(
                error = why,
                failed_since_last_warning = since,
                spans_lost_total = counters::spans_export_failed(),
                "trace export failed; spans are dropped, requests are not affected"
            );
        }
    }

    fn queue_drops(&mut self) {
        let now = counters::spans_dropped();
        if now > self.dropped_seen && self.drops.ready().is_some() {
            tracing::warn!(
                dropped = now - self.dropped_seen,
                "trace queue full; spans dropped (the collector is slower than the traffic)"
            );
            self.dropped_seen = now;
        }
    }
}

/// Lets an event through at most once per [`LOG_EVERY`], counting the ones it held back.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// `Some(held back since the last one)` when this event may be logged.
    fn ready(&mut self) -> Option<u64> {
        match self.last {
            Some(t) if t.elapsed() < LOG_EVERY => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(Instant::now());
                Some(std::mem::take(&mut self.held))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::trace::context::{TraceContext, TraceId};
    use crate::observe::RequestRecord;
    use prost::Message;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn the_throttle_lets_one_through_per_interval() {
        let mut t = Throttle::default();
        assert_eq!(t.ready(), Some(0));
        assert_eq!(t.ready(), None);
        assert_eq!(t.ready(), None);
        t.last = Some(Instant::now() - LOG_EVERY);
        assert_eq!(t.ready(), Some(2));
    }

    fn spans(n: usize) -> RequestSpans {
        let cx = TraceContext {
            trace_id: TraceId(n as u128 + 1),
            span_id: 1,
            parent: None,
            sampled: true,
            propagate: true,
        };
        RequestSpans::new(&cx, &RequestRecord::started(format!("r{n}"), 0), |_| None)
    }

    /// A collector that answers 200 to every post and hands back each body.
    fn collector() -> (String, mpsc::Receiver<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 65536];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if got.len() >= end + 4 + len {
                        tx.send(got[end + 4..].to_vec()).unwrap();
                        break;
                    }
                }
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
            }
        });
        (format!("http://{addr}"), rx)
    }

    #[test]
    fn queued_spans_are_posted_in_batches_and_flushed_at_the_end() {
        let (endpoint, bodies) = collector();
        let cfg = OtelConfig {
            endpoint: Some(endpoint),
            ..OtelConfig::default()
        };
        let (exporter, tracer) = TraceExporter::start(&cfg).unwrap();
        // 600 requests of one span each: one full batch of 512 at once, the rest at the end.
        for i in 0..600 {
            tracer.send(spans(i));
        }
        let first = bodies.recv_timeout(Duration::from_secs(5)).unwrap();
        let req = super::super::proto::ExportTraceServiceRequest::decode(&first[..]).unwrap();
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 512);
        drop(tracer);
        exporter.join();
        let rest = bodies.recv_timeout(Duration::from_secs(5)).unwrap();
        let req = super::super::proto::ExportTraceServiceRequest::decode(&rest[..]).unwrap();
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 88);
    }

    #[test]
    fn a_dead_collector_costs_the_sender_nothing_and_is_counted() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let cfg = OtelConfig {
            endpoint: Some(endpoint),
            ..OtelConfig::default()
        };
        let failed = counters::spans_export_failed();
        let (exporter, tracer) = TraceExporter::start(&cfg).unwrap();
        let t = Instant::now();
        for i in 0..100 {
            tracer.send(spans(i));
        }
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        drop(tracer);
        exporter.join();
        assert!(counters::spans_export_failed() >= failed + 100);
    }
}
