//! Turns the span descriptions shards sent into one OTLP `ExportTraceServiceRequest`: span
//! names, kinds, parents, flags, status and the GenAI and HTTP attributes. Runs on the
//! exporter thread.

use super::proto::{
    self, AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue,
    Resource, ResourceSpans, ScopeSpans, Span, Status, Value,
};
use super::semconv as sc;
use super::span::{AttemptSpan, RequestSpans};
use prost::Message;

/// Who the spans come from: the resource and scope of every batch.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `service.name`.
    pub service_name: String,
}

/// Turns batches into the bodies the exporter posts (public for `bench/tracing.rs`).
pub struct BatchEncoder {
    origin: Origin,
    body: Vec<u8>,
}

impl BatchEncoder {
    /// An encoder for the spans of service `service_name`.
    pub fn new(service_name: &str) -> Self {
        Self {
            origin: Origin {
                service_name: service_name.to_string(),
            },
            body: Vec::new(),
        }
    }

    /// The `ExportTraceServiceRequest` holding every span of `batch`, protobuf-encoded.
    pub fn encode(&mut self, batch: &[RequestSpans]) -> &[u8] {
        self.body = export_request(&self.origin, batch).encode_to_vec();
        &self.body
    }
}

/// One export request holding every span of `batch`.
pub fn export_request(origin: &Origin, batch: &[RequestSpans]) -> ExportTraceServiceRequest {
    let version = env!("CARGO_PKG_VERSION");
    let resource = Resource {
        attributes: vec![
            kv("service.name", text(&origin.service_name)),
            kv("service.version", text(version)),
            kv("telemetry.sdk.name", text("infergate")),
            kv("telemetry.sdk.language", text("rust")),
            kv("telemetry.sdk.version", text(version)),
        ],
    };
    let mut spans = Vec::with_capacity(batch.iter().map(|r| r.span_count() as usize).sum());
    for request in batch {
        spans.push(server_span(request));
        let last = request.attempts.len().saturating_sub(1);
        for (i, attempt) in request.attempts.iter().enumerate() {
            spans.push(client_span(request, attempt, i == last));
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "infergate".into(),
                    version: version.into(),
                }),
                spans,
                schema_url: sc::SCHEMA_URL.into(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The request as the gateway served it: `POST /v1/chat/completions`, kind SERVER, under
/// the client's span when it sent one.
fn server_span(r: &RequestSpans) -> Span {
    let (method, route) = sc::http_route(r.endpoint);
    let mut attrs = vec![
        kv(sc::HTTP_METHOD, text(method)),
        kv(sc::HTTP_ROUTE, text(route)),
        kv(sc::HTTP_STATUS, int(u64::from(r.status))),
        kv(sc::OPERATION, text(sc::operation_name(r.endpoint))),
        kv("infergate.request_id", text(&r.request_id)),
        kv("infergate.stream", Value::Bool(r.stream)),
        kv("infergate.attempts", int(r.attempts.len() as u64)),
    ];
    if let Some(m) = &r.model {
        attrs.push(kv(sc::REQUEST_MODEL, text(m)));
    }
    if let Some(p) = r.provider {
        attrs.push(kv(sc::PROVIDER, text(p)));
    }
    if let Some(c) = r.cache {
        attrs.push(kv("infergate.cache", text(c)));
    }
    usage(r, &mut attrs);
    let error = r
        .error
        .clone()
        .or_else(|| (r.status >= 400).then(|| r.status.to_string()));
    if let Some(e) = &error {
        attrs.push(kv(sc::ERROR_TYPE, text(e)));
    }
    let remote = match r.parent {
        Some(_) => proto::FLAG_IS_REMOTE,
        None => 0,
    };
    Span {
        trace_id: r.trace_id.to_bytes().to_vec(),
        span_id: r.span_id.to_be_bytes().to_vec(),
        parent_span_id: r
            .parent
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        flags: 1 | proto::FLAG_HAS_IS_REMOTE | remote,
        name: if route.is_empty() {
            method.to_string()
        } else {
            format!("{method} {route}")
        },
        kind: proto::SPAN_KIND_SERVER,
        start_time_unix_nano: r.start_ns,
        end_time_unix_nano: r.end_ns,
        attributes: attrs,
        // Server spans fail on 5xx; a 4xx is the client's error (HTTP conventions).
        status: (r.status >= 500).then(|| error_status(error.unwrap_or_default())),
    }
}

/// One provider attempt: `chat gpt-4o`, kind CLIENT, under the server span. The attempt
/// whose answer was taken carries the response's model, usage and finish reason.
fn client_span(r: &RequestSpans, a: &AttemptSpan, last: bool) -> Span {
    let operation = sc::operation_name(r.endpoint);
    let mut attrs = vec![
        kv(sc::OPERATION, text(operation)),
        kv(sc::PROVIDER, text(a.provider)),
        kv(sc::REQUEST_MODEL, text(&a.model)),
        kv("infergate.provider", text(&a.provider_name)),
    ];
    if let Some((host, port)) = &a.server {
        attrs.push(kv(sc::SERVER_ADDRESS, text(host)));
        attrs.push(kv(sc::SERVER_PORT, int(u64::from(*port))));
    }
    if let Some(s) = a.status {
        attrs.push(kv(sc::HTTP_STATUS, int(u64::from(s))));
    }
    let error = a
        .error
        .clone()
        .or_else(|| a.status.filter(|&s| s >= 400).map(|s| s.to_string()));
    let answered = last && error.is_none() && r.provider.is_some();
    if answered {
        if let Some(m) = &r.response_model {
            attrs.push(kv(sc::RESPONSE_MODEL, text(m)));
        }
        usage(r, &mut attrs);
    }
    if let Some(e) = &error {
        attrs.push(kv(sc::ERROR_TYPE, text(e)));
    }
    Span {
        trace_id: r.trace_id.to_bytes().to_vec(),
        span_id: a.span_id.to_be_bytes().to_vec(),
        parent_span_id: r.span_id.to_be_bytes().to_vec(),
        flags: 1 | proto::FLAG_HAS_IS_REMOTE,
        name: format!("{operation} {}", a.model),
        kind: proto::SPAN_KIND_CLIENT,
        start_time_unix_nano: a.start_ns,
        end_time_unix_nano: a.end_ns,
        attributes: attrs,
        status: error.map(error_status),
    }
}

/// Tokens and the finish reason, when known.
fn usage(r: &RequestSpans, attrs: &mut Vec<KeyValue>) {
    if let Some(n) = r.tokens_in {
        attrs.push(kv(sc::INPUT_TOKENS, int(n)));
    }
    if let Some(n) = r.tokens_out {
        attrs.push(kv(sc::OUTPUT_TOKENS, int(n)));
    }
    if let Some(f) = r.finish_reason {
        let reasons = ArrayValue {
            values: vec![AnyValue {
                value: Some(text(f.record_name())),
            }],
        };
        attrs.push(kv(sc::FINISH_REASONS, Value::Array(reasons)));
    }
}

fn error_status(message: String) -> Status {
    Status {
        message,
        code: proto::STATUS_ERROR,
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::trace::context::TraceId;
    use crate::wire::FinishReason;

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn request() -> RequestSpans {
        let attempt = |span_id, provider: &'static str, status, error: Option<&str>| AttemptSpan {
            span_id,
            start_ns: 10,
            end_ns: 20,
            provider,
            provider_name: format!("{provider}-1"),
            model: "gpt-4o-mini".into(),
            status,
            error: error.map(str::to_string),
            server: Some(("127.0.0.1".into(), 9000)),
        };
        RequestSpans {
            trace_id: TraceId(0x0102),
            span_id: 0xaa,
            parent: Some(0xbb),
            start_ns: 1,
            end_ns: 99,
            endpoint: "messages",
            request_id: "r1".into(),
            status: 200,
            error: None,
            model: Some("alias".into()),
            response_model: Some("gpt-4o-mini".into()),
            provider: Some("openai"),
            tokens_in: Some(12),
            tokens_out: Some(34),
            finish_reason: Some(FinishReason::EndTurn),
            stream: true,
            cache: None,
            attempts: vec![
                attempt(0xc1, "openai", Some(503), None),
                attempt(0xc2, "openai", Some(200), None),
            ],
        }
    }

    #[test]
    fn a_request_becomes_a_server_span_and_a_client_span_per_attempt() {
        let origin = Origin {
            service_name: "gw".into(),
        };
        let req = export_request(&origin, &[request()]);
        let rs = &req.resource_spans[0];
        let service = &rs.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        let spans = &rs.scope_spans[0].spans;
        assert_eq!(spans.len(), 3);
        let server = &spans[0];
        assert_eq!(server.name, "POST /v1/messages");
        assert_eq!(server.kind, proto::SPAN_KIND_SERVER);
        assert_eq!(server.parent_span_id, 0xbbu64.to_be_bytes());
        assert_eq!(server.flags, 0x301);
        assert_eq!(attr(server, sc::OPERATION), Some(&text("chat")));
        assert_eq!(attr(server, sc::REQUEST_MODEL), Some(&text("alias")));
        assert_eq!(attr(server, sc::INPUT_TOKENS), Some(&Value::Int(12)));
        assert!(server.status.is_none());
        let failed = &spans[1];
        assert_eq!(failed.name, "chat gpt-4o-mini");
        assert_eq!(failed.kind, proto::SPAN_KIND_CLIENT);
        assert_eq!(failed.parent_span_id, 0xaau64.to_be_bytes());
        assert_eq!(failed.span_id, 0xc1u64.to_be_bytes());
        assert_eq!(attr(failed, sc::ERROR_TYPE), Some(&text("503")));
        assert_eq!(failed.status.as_ref().unwrap().code, proto::STATUS_ERROR);
        assert_eq!(attr(failed, sc::OUTPUT_TOKENS), None);
        let ok = &spans[2];
        assert_eq!(attr(ok, sc::PROVIDER), Some(&text("openai")));
        assert_eq!(attr(ok, sc::OUTPUT_TOKENS), Some(&Value::Int(34)));
        assert_eq!(attr(ok, sc::SERVER_PORT), Some(&Value::Int(9000)));
        let Some(Value::Array(reasons)) = attr(ok, sc::FINISH_REASONS) else {
            panic!("finish reasons are an array");
        };
        assert_eq!(reasons.values.len(), 1);
        assert!(ok.status.is_none());
        assert_eq!(ok.trace_id, TraceId(0x0102).to_bytes());
    }

    #[test]
    fn a_failed_request_is_an_error_span() {
        let mut r = request();
        r.status = 502;
        r.error = Some("upstream_failed".into());
        r.provider = None;
        r.parent = None;
        let req = export_request(
            &Origin {
                service_name: "gw".into(),
            },
            &[r],
        );
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        let server = &spans[0];
        assert!(server.parent_span_id.is_empty());
        assert_eq!(server.flags, 0x101);
        assert_eq!(attr(server, sc::ERROR_TYPE), Some(&text("upstream_failed")));
        assert_eq!(server.status.as_ref().unwrap().code, proto::STATUS_ERROR);
        // No answer was taken: no attempt carries the usage.
        assert_eq!(attr(&spans[2], sc::OUTPUT_TOKENS), None);
    }
}
