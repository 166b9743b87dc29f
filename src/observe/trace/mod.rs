//! Traces: OpenTelemetry spans over OTLP/HTTP, with the GenAI semantic conventions.
//!
//! Each request gets a SERVER span (under the client's `traceparent` when it sent a valid
//! one) and a CLIENT span per provider attempt; each attempt sends the provider a
//! `traceparent` naming its own span. On the shard, [`Tracer::begin`] reads the client's
//! header and draws ids when the head arrives, and [`Tracer::end`] turns the finished record
//! into a compact [`RequestSpans`] pushed on a bounded queue; the exporter thread
//! ([`TraceExporter`]) batches, encodes and posts them. With `[otel]` off, only the trace id
//! for the record is made.
//!
//! `[otel]` is read at start: a reload that changes it is logged and takes effect on restart.

mod context;
mod counters;
mod encode;
mod exporter;
mod otlp_http;
mod proto;
mod semconv;
mod span;
#[cfg(test)]
mod tree;

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

pub use context::{parse_traceparent, RemoteParent, Sampler, TraceContext, TraceId};
pub use counters::{spans_dropped, spans_export_failed, spans_exported};
pub use encode::BatchEncoder;
pub use exporter::{TraceError, TraceExporter};
pub use span::{AttemptSpan, ProviderInfo, RequestSpans};

use super::RequestRecord;
use crate::config::OtelConfig;
use crate::http::HeaderList;

/// A shard's handle on the exporter: cheap to clone, never blocks. Off when `[otel]` has no
/// endpoint.
#[derive(Clone, Default)]
pub struct Tracer {
    on: Option<On>,
}

#[derive(Clone)]
struct On {
    queue: SyncSender<RequestSpans>,
    sampler: Sampler,
}

impl Tracer {
    /// A tracer that exports nothing (the trace id for the record is still made).
    pub fn off() -> Self {
        Self { on: None }
    }

    fn new(queue: SyncSender<RequestSpans>, sampler: Sampler) -> Self {
        Self {
            on: Some(On { queue, sampler }),
        }
    }

    /// A tracer whose spans go to the returned queue instead of a collector (benches and
    /// tests that look at what a shard hands over).
    pub fn with_queue(capacity: usize, sample_ratio: f64) -> (Self, Receiver<RequestSpans>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        (Self::new(tx, Sampler::ratio(sample_ratio)), rx)
    }

    /// Whether spans are exported.
    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    /// The trace context of a request whose head is `headers`.
    pub fn begin(&self, headers: &HeaderList) -> TraceContext {
        TraceContext::begin(
            context::client_traceparent(headers),
            self.on.as_ref().map(|o| o.sampler),
        )
    }

    /// Hands a finished request's spans to the exporter when it is sampled; `provider`
    /// looks a provider up by its config name.
    pub fn end<'p>(
        &self,
        cx: &TraceContext,
        record: &RequestRecord,
        provider: impl Fn(&str) -> Option<ProviderInfo<'p>>,
    ) {
        if cx.sampled && self.on.is_some() {
            self.send(RequestSpans::new(cx, record, provider));
        }
    }

    /// Queues one request's spans; a full queue drops them (counted in [`spans_dropped`]).
    pub fn send(&self, spans: RequestSpans) {
        let Some(on) = &self.on else { return };
        match on.queue.try_send(spans) {
            Ok(()) => {}
            Err(TrySendError::Full(s) | TrySendError::Disconnected(s)) => {
                counters::add_dropped(s.span_count());
            }
        }
    }
}

/// The `[otel]` settings the process started with (set once, at start, tracing on or off).
static RUNNING: OnceLock<OtelConfig> = OnceLock::new();

fn note_running(cfg: &OtelConfig) {
    let _ = RUNNING.set(cfg.clone());
}

/// Called by the reloader with a new config's `[otel]`: the exporter is not rebuilt on
/// reload, so a change is only logged (it takes effect on restart).
pub fn note_reload(cfg: &OtelConfig) {
    let running = RUNNING.get().cloned().unwrap_or_default();
    if *cfg != running {
        tracing::warn!("[otel] changed; trace export settings only change on restart");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(extra: &str) -> crate::http::RequestHead {
        let text = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{extra}\r\n");
        crate::http::RequestHead::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_sampled_request_reaches_the_queue_and_an_unsampled_one_does_not() {
        let (tracer, rx) = Tracer::with_queue(4, 1.0);
        let h = head("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n");
        let cx = tracer.begin(&h.headers);
        let record = RequestRecord::started("r".into(), 0);
        tracer.end(&cx, &record, |_| None);
        let spans = rx.try_recv().unwrap();
        assert_eq!(spans.trace_id, cx.trace_id);
        assert_eq!(spans.parent, Some(0x00f0_67aa_0ba9_02b7));
        let h = head("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\n");
        let cx = tracer.begin(&h.headers);
        tracer.end(&cx, &record, |_| None);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tracer, _rx) = Tracer::with_queue(1, 1.0);
        let cx = tracer.begin(&head("").headers);
        let record = RequestRecord::started("r".into(), 0);
        let before = spans_dropped();
        tracer.end(&cx, &record, |_| None);
        tracer.end(&cx, &record, |_| None);
        assert!(spans_dropped() > before);
    }

    #[test]
    fn off_makes_a_trace_id_and_nothing_else() {
        let tracer = Tracer::off();
        assert!(!tracer.is_on());
        let cx = tracer.begin(&head("").headers);
        assert!(!cx.sampled && !cx.propagate);
        assert_ne!(cx.trace_id.0, 0);
    }
}
