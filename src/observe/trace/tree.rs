//! The tree-building encoder that `encode.rs`'s direct writer replaced, kept for the tests
//! only: it builds the OTLP request from the prost structs in `proto.rs` (an allocation or
//! more per attribute) and states plainly what each span holds. The writer's bytes must
//! decode to exactly what this builds.

use super::proto::{
    self, AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue,
    Resource, ResourceSpans, ScopeSpans, Span, Status, Value,
};
use super::semconv as sc;
use super::span::{AttemptSpan, RequestSpans};

/// One export request holding every span of `batch`.
pub fn export_request(service_name: &str, batch: &[RequestSpans]) -> ExportTraceServiceRequest {
    let version = env!("CARGO_PKG_VERSION");
    let resource = Resource {
        attributes: vec![
            kv("service.name", text(service_name)),
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
