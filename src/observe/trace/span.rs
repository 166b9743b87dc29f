//! What a shard hands the exporter for one sampled request: the server span and one client
//! span per provider attempt, as plain fields taken from the finished record. Building it
//! is a few small copies; names, attributes and protobuf come later, on the exporter thread.

use super::context::{TraceContext, TraceId};
use super::semconv;
use crate::config::ProviderKind;
use crate::observe::RequestRecord;
use crate::wire::FinishReason;

/// What a span says about a provider (found in the route table by the record's name).
#[derive(Debug, Clone, Copy)]
pub struct ProviderInfo<'a> {
    /// Its kind, for `gen_ai.provider.name`.
    pub kind: ProviderKind,
    /// Its host and port, for `server.address` and `server.port`.
    pub addr: Option<(&'a str, u16)>,
}

/// One request's spans, ready to encode.
#[derive(Debug, Clone)]
pub struct RequestSpans {
    /// The trace.
    pub trace_id: TraceId,
    /// The server span.
    pub span_id: u64,
    /// The client's span, the server span's parent.
    pub parent: Option<u64>,
    /// When the request began, Unix nanoseconds.
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
    /// The record's endpoint (`chat.completions`, ...).
    pub endpoint: &'static str,
    /// `x-infergate-request-id`.
    pub request_id: String,
    /// Status sent to the client.
    pub status: u16,
    /// The gateway's error code, if it answered one.
    pub error: Option<String>,
    /// The alias the client asked for.
    pub model: Option<String>,
    /// The upstream model that answered.
    pub response_model: Option<String>,
    /// `gen_ai.provider.name` of the provider that answered.
    pub provider: Option<&'static str>,
    /// Input tokens.
    pub tokens_in: Option<u64>,
    /// Output tokens.
    pub tokens_out: Option<u64>,
    /// Why generation stopped, when known.
    pub finish_reason: Option<FinishReason>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// What the cache did.
    pub cache: Option<&'static str>,
    /// One client span per provider attempt.
    pub attempts: Vec<AttemptSpan>,
}

/// One provider attempt's client span.
#[derive(Debug, Clone)]
pub struct AttemptSpan {
    /// Its span id (the one its `traceparent` named).
    pub span_id: u64,
    /// When it began, Unix nanoseconds.
    pub start_ns: u64,
    /// When it ended.
    pub end_ns: u64,
    /// `gen_ai.provider.name`.
    pub provider: &'static str,
    /// The provider's config name.
    pub provider_name: String,
    /// The upstream model.
    pub model: String,
    /// The provider's HTTP status.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
    /// The provider's host and port.
    pub server: Option<(String, u16)>,
}

impl RequestSpans {
    /// The spans of a finished request; `provider` looks a provider up by its config name.
    pub fn new<'p>(
        cx: &TraceContext,
        record: &RequestRecord,
        provider: impl Fn(&str) -> Option<ProviderInfo<'p>>,
    ) -> Self {
        let start_ns = record.start_unix_ns;
        let attempts = record
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let info = provider(&a.provider);
                let begin = start_ns.saturating_add(ms_to_ns(a.start_ms));
                AttemptSpan {
                    span_id: cx.attempt_span_id(i),
                    start_ns: begin,
                    end_ns: begin.saturating_add(ms_to_ns(a.latency_ms)),
                    provider: info.map_or("unknown", |p| semconv::provider_name(p.kind)),
                    provider_name: a.provider.clone(),
                    model: a.model.clone(),
                    status: a.status,
                    error: a.error.clone(),
                    server: info.and_then(|p| p.addr).map(|(h, p)| (h.to_string(), p)),
                }
            })
            .collect();
        Self {
            trace_id: cx.trace_id,
            span_id: cx.span_id,
            parent: cx.parent,
            start_ns,
            end_ns: start_ns.saturating_add(ms_to_ns(record.latency_ms)),
            endpoint: record.endpoint,
            request_id: record.request_id.clone(),
            status: record.status,
            error: record.error.clone(),
            model: record.model.clone(),
            response_model: record.upstream_model.clone(),
            provider: record
                .provider
                .as_deref()
                .and_then(&provider)
                .map(|p| semconv::provider_name(p.kind)),
            tokens_in: record.tokens_in,
            tokens_out: record.tokens_out,
            finish_reason: record.finish_reason,
            stream: record.stream,
            cache: record.cache,
            attempts,
        }
    }

    /// How many spans this is.
    pub fn span_count(&self) -> u64 {
        1 + self.attempts.len() as u64
    }
}

/// Milliseconds (as the record keeps them) to nanoseconds.
fn ms_to_ns(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1e6) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::AttemptRecord;

    #[test]
    fn spans_follow_the_record() {
        let cx = TraceContext {
            trace_id: TraceId(42),
            span_id: 9,
            parent: Some(5),
            sampled: true,
            propagate: true,
        };
        let mut record = RequestRecord::started("r1".into(), 0);
        record.start_unix_ns = 1_000_000_000;
        record.latency_ms = 30.0;
        record.status = 200;
        record.model = Some("alias".into());
        record.provider = Some("backup".into());
        record.upstream_model = Some("m2".into());
        for (provider, start_ms, status) in [("primary", 1.0, 500), ("backup", 11.5, 200)] {
            record.attempts.push(AttemptRecord {
                provider: provider.into(),
                model: "m".into(),
                status: Some(status),
                error: None,
                latency_ms: 10.0,
                start_ms,
            });
        }
        let spans = RequestSpans::new(&cx, &record, |name| {
            Some(ProviderInfo {
                kind: if name == "primary" {
                    ProviderKind::Openai
                } else {
                    ProviderKind::Anthropic
                },
                addr: Some(("api.example", 443)),
            })
        });
        assert_eq!(spans.span_count(), 3);
        assert_eq!(
            (spans.start_ns, spans.end_ns),
            (1_000_000_000, 1_030_000_000)
        );
        assert_eq!(spans.provider, Some("anthropic"));
        let [first, second] = &spans.attempts[..] else {
            panic!("two attempts")
        };
        assert_eq!(
            (first.start_ns, first.end_ns),
            (1_001_000_000, 1_011_000_000)
        );
        assert_eq!(second.start_ns, 1_011_500_000);
        assert_eq!((first.provider, second.provider), ("openai", "anthropic"));
        assert_eq!(first.span_id, cx.attempt_span_id(0));
        assert_eq!(second.span_id, cx.attempt_span_id(1));
        assert_eq!(first.server, Some(("api.example".to_string(), 443)));
    }
}
