//! Turns the span descriptions shards sent into one OTLP `ExportTraceServiceRequest`: span
//! names, kinds, parents, flags, status and the GenAI and HTTP attributes. Runs on the
//! exporter thread.
//!
//! The protobuf is written straight into one buffer the encoder keeps from batch to batch:
//! keys and values are copied from the spans' `&str`s, nothing is allocated per span or
//! attribute (a tree of prost structs, then encoded, cost 2.3–3.9 µs per request; this
//! writer 0.45–0.7 µs: BENCHMARKS.md, Issue 13). Fields go in field-number order and proto3
//! defaults are left out, as prost writes them, so the bytes are the ones the prost structs
//! in `proto.rs` encode; the tests check that against the tree builder in `tree.rs`.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use super::proto;
use super::semconv as sc;
use super::span::{AttemptSpan, RequestSpans};

/// Field numbers of the opentelemetry-proto messages (the same as `proto.rs` declares).
mod field {
    /// `ExportTraceServiceRequest.resource_spans`.
    pub const RESOURCE_SPANS: u32 = 1;
    /// `ResourceSpans.resource`.
    pub const RESOURCE: u32 = 1;
    /// `ResourceSpans.scope_spans`.
    pub const SCOPE_SPANS: u32 = 2;
    /// `Resource.attributes`.
    pub const RESOURCE_ATTRIBUTES: u32 = 1;
    /// `ScopeSpans.scope`.
    pub const SCOPE: u32 = 1;
    /// `ScopeSpans.spans`.
    pub const SPANS: u32 = 2;
    /// `ScopeSpans.schema_url`.
    pub const SCHEMA_URL: u32 = 3;
    /// `InstrumentationScope.name`.
    pub const SCOPE_NAME: u32 = 1;
    /// `InstrumentationScope.version`.
    pub const SCOPE_VERSION: u32 = 2;
    /// `Span.trace_id`.
    pub const TRACE_ID: u32 = 1;
    /// `Span.span_id`.
    pub const SPAN_ID: u32 = 2;
    /// `Span.parent_span_id`.
    pub const PARENT_SPAN_ID: u32 = 4;
    /// `Span.name`.
    pub const NAME: u32 = 5;
    /// `Span.kind`.
    pub const KIND: u32 = 6;
    /// `Span.start_time_unix_nano`.
    pub const START: u32 = 7;
    /// `Span.end_time_unix_nano`.
    pub const END: u32 = 8;
    /// `Span.attributes`.
    pub const ATTRIBUTES: u32 = 9;
    /// `Span.status`.
    pub const STATUS: u32 = 15;
    /// `Span.flags`.
    pub const FLAGS: u32 = 16;
    /// `Status.message`.
    pub const STATUS_MESSAGE: u32 = 2;
    /// `Status.code`.
    pub const STATUS_CODE: u32 = 3;
    /// `KeyValue.key`.
    pub const KEY: u32 = 1;
    /// `KeyValue.value`.
    pub const VALUE: u32 = 2;
    /// `AnyValue.string_value`.
    pub const STRING_VALUE: u32 = 1;
    /// `AnyValue.bool_value`.
    pub const BOOL_VALUE: u32 = 2;
    /// `AnyValue.int_value`.
    pub const INT_VALUE: u32 = 3;
    /// `AnyValue.array_value`.
    pub const ARRAY_VALUE: u32 = 5;
    /// `ArrayValue.values`.
    pub const ARRAY_VALUES: u32 = 1;
}

/// Turns batches into the bodies the exporter posts, into a buffer kept across batches (it
/// grows to the largest batch, about 1 KB per request). Public for `bench/tracing.rs`.
pub struct BatchEncoder {
    /// `ResourceSpans.resource`, encoded once: the same in every batch.
    resource: Vec<u8>,
    /// `ScopeSpans.scope`, likewise.
    scope: Vec<u8>,
    /// The last body.
    body: Vec<u8>,
}

impl BatchEncoder {
    /// An encoder for the spans of service `service_name`.
    pub fn new(service_name: &str) -> Self {
        let version = env!("CARGO_PKG_VERSION");
        let mut resource = Vec::new();
        nested(&mut resource, field::RESOURCE, 1, |o| {
            for (key, value) in [
                ("service.name", service_name),
                ("service.version", version),
                ("telemetry.sdk.name", "infergate"),
                ("telemetry.sdk.language", "rust"),
                ("telemetry.sdk.version", version),
            ] {
                attr(o, field::RESOURCE_ATTRIBUTES, key, Val::Str(value));
            }
        });
        let mut scope = Vec::new();
        nested(&mut scope, field::SCOPE, 1, |o| {
            string(o, field::SCOPE_NAME, "infergate");
            string(o, field::SCOPE_VERSION, version);
        });
        Self {
            resource,
            scope,
            body: Vec::new(),
        }
    }

    /// The `ExportTraceServiceRequest` holding every span of `batch`, protobuf-encoded: one
    /// resource, one scope, a server span per request and a client span per attempt.
    pub fn encode(&mut self, batch: &[RequestSpans]) -> &[u8] {
        let Self {
            resource,
            scope,
            body,
        } = self;
        body.clear();
        // A batch of up to 512 spans is 16 KiB to 2 MiB: a 3-byte length.
        nested(body, field::RESOURCE_SPANS, 3, |o| {
            o.extend_from_slice(resource);
            nested(o, field::SCOPE_SPANS, 3, |o| {
                o.extend_from_slice(scope);
                for request in batch {
                    server_span(o, request);
                    let last = request.attempts.len().saturating_sub(1);
                    for (i, attempt) in request.attempts.iter().enumerate() {
                        client_span(o, request, attempt, i == last);
                    }
                }
                string(o, field::SCHEMA_URL, sc::SCHEMA_URL);
            });
            // `ResourceSpans.schema_url` is empty: left out.
        });
        body
    }
}

/// The request as the gateway served it: `POST /v1/chat/completions`, kind SERVER, under
/// the client's span when it sent one.
fn server_span(out: &mut Vec<u8>, r: &RequestSpans) {
    let (method, route) = sc::http_route(r.endpoint);
    let mut digits = [0; 5];
    let error = match r.error.as_deref() {
        Some(e) => Some(e),
        None if r.status >= 400 => Some(decimal(r.status, &mut digits)),
        None => None,
    };
    let remote = match r.parent {
        Some(_) => proto::FLAG_IS_REMOTE,
        None => 0,
    };
    // Spans are 128 bytes to 16 KiB: a 2-byte length.
    nested(out, field::SPANS, 2, |o| {
        bytes(o, field::TRACE_ID, &r.trace_id.to_bytes());
        bytes(o, field::SPAN_ID, &r.span_id.to_be_bytes());
        if let Some(p) = r.parent {
            bytes(o, field::PARENT_SPAN_ID, &p.to_be_bytes());
        }
        if route.is_empty() {
            string(o, field::NAME, method);
        } else {
            words(o, field::NAME, method, route);
        }
        varint(
            o,
            field::KIND,
            proto::SPAN_KIND_SERVER.unsigned_abs().into(),
        );
        fixed64(o, field::START, r.start_ns);
        fixed64(o, field::END, r.end_ns);
        let a = field::ATTRIBUTES;
        attr(o, a, sc::HTTP_METHOD, Val::Str(method));
        attr(o, a, sc::HTTP_ROUTE, Val::Str(route));
        attr(o, a, sc::HTTP_STATUS, Val::Int(r.status.into()));
        attr(
            o,
            a,
            sc::OPERATION,
            Val::Str(sc::operation_name(r.endpoint)),
        );
        attr(o, a, "infergate.request_id", Val::Str(&r.request_id));
        attr(o, a, "infergate.stream", Val::Bool(r.stream));
        attr(
            o,
            a,
            "infergate.attempts",
            Val::Int(r.attempts.len() as u64),
        );
        if let Some(m) = &r.model {
            attr(o, a, sc::REQUEST_MODEL, Val::Str(m));
        }
        if let Some(p) = r.provider {
            attr(o, a, sc::PROVIDER, Val::Str(p));
        }
        if let Some(c) = r.cache {
            attr(o, a, "infergate.cache", Val::Str(c));
        }
        usage(o, r);
        if let Some(e) = error {
            attr(o, a, sc::ERROR_TYPE, Val::Str(e));
        }
        // Server spans fail on 5xx; a 4xx is the client's error (HTTP conventions).
        if r.status >= 500 {
            error_status(o, error.unwrap_or_default());
        }
        fixed32(o, field::FLAGS, 1 | proto::FLAG_HAS_IS_REMOTE | remote);
    });
}

/// One provider attempt: `chat gpt-4o`, kind CLIENT, under the server span. The attempt
/// whose answer was taken carries the response's model, usage and finish reason.
fn client_span(out: &mut Vec<u8>, r: &RequestSpans, at: &AttemptSpan, last: bool) {
    let operation = sc::operation_name(r.endpoint);
    let mut digits = [0; 5];
    let error = match (at.error.as_deref(), at.status) {
        (Some(e), _) => Some(e),
        (None, Some(s)) if s >= 400 => Some(decimal(s, &mut digits)),
        _ => None,
    };
    let answered = last && error.is_none() && r.provider.is_some();
    nested(out, field::SPANS, 2, |o| {
        bytes(o, field::TRACE_ID, &r.trace_id.to_bytes());
        bytes(o, field::SPAN_ID, &at.span_id.to_be_bytes());
        bytes(o, field::PARENT_SPAN_ID, &r.span_id.to_be_bytes());
        words(o, field::NAME, operation, &at.model);
        varint(
            o,
            field::KIND,
            proto::SPAN_KIND_CLIENT.unsigned_abs().into(),
        );
        fixed64(o, field::START, at.start_ns);
        fixed64(o, field::END, at.end_ns);
        let a = field::ATTRIBUTES;
        attr(o, a, sc::OPERATION, Val::Str(operation));
        attr(o, a, sc::PROVIDER, Val::Str(at.provider));
        attr(o, a, sc::REQUEST_MODEL, Val::Str(&at.model));
        attr(o, a, "infergate.provider", Val::Str(&at.provider_name));
        if let Some((host, port)) = &at.server {
            attr(o, a, sc::SERVER_ADDRESS, Val::Str(host));
            attr(o, a, sc::SERVER_PORT, Val::Int((*port).into()));
        }
        if let Some(s) = at.status {
            attr(o, a, sc::HTTP_STATUS, Val::Int(s.into()));
        }
        if answered {
            if let Some(m) = &r.response_model {
                attr(o, a, sc::RESPONSE_MODEL, Val::Str(m));
            }
            usage(o, r);
        }
        if let Some(e) = error {
            attr(o, a, sc::ERROR_TYPE, Val::Str(e));
            error_status(o, e);
        }
        fixed32(o, field::FLAGS, 1 | proto::FLAG_HAS_IS_REMOTE);
    });
}

/// Tokens and the finish reason, when known.
fn usage(out: &mut Vec<u8>, r: &RequestSpans) {
    let a = field::ATTRIBUTES;
    if let Some(n) = r.tokens_in {
        attr(out, a, sc::INPUT_TOKENS, Val::Int(n));
    }
    if let Some(n) = r.tokens_out {
        attr(out, a, sc::OUTPUT_TOKENS, Val::Int(n));
    }
    if let Some(f) = r.finish_reason {
        attr(out, a, sc::FINISH_REASONS, Val::OneStr(f.record_name()));
    }
}

/// `Span.status`: an error, with `message`.
fn error_status(out: &mut Vec<u8>, message: &str) {
    nested(out, field::STATUS, 1, |o| {
        string(o, field::STATUS_MESSAGE, message);
        varint(
            o,
            field::STATUS_CODE,
            proto::STATUS_ERROR.unsigned_abs().into(),
        );
    });
}

/// An attribute's value.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Bool(bool),
    /// An `int_value` (past `i64::MAX`, `i64::MAX`).
    Int(u64),
    /// A one-string array.
    OneStr(&'a str),
}

/// One `KeyValue` as field `field` of the message being written.
fn attr(out: &mut Vec<u8>, field: u32, key: &str, value: Val<'_>) {
    // Most attributes are under 128 bytes: a 1-byte length.
    nested(out, field, 1, |o| {
        string(o, field::KEY, key);
        nested(o, field::VALUE, 1, |o| match value {
            // A oneof member is written even when it is the default.
            Val::Str(s) => str_value(o, s),
            Val::Bool(b) => {
                encode_key(field::BOOL_VALUE, WireType::Varint, o);
                encode_varint(b.into(), o);
            }
            Val::Int(n) => {
                encode_key(field::INT_VALUE, WireType::Varint, o);
                encode_varint(n.min(i64::MAX.unsigned_abs()), o);
            }
            Val::OneStr(s) => nested(o, field::ARRAY_VALUE, 1, |o| {
                nested(o, field::ARRAY_VALUES, 1, |o| str_value(o, s));
            }),
        });
    });
}

/// `AnyValue.string_value` (a oneof member: written even when empty).
fn str_value(out: &mut Vec<u8>, s: &str) {
    encode_key(field::STRING_VALUE, WireType::LengthDelimited, out);
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Field `field` as a nested message whose bytes `write` appends, written in place: `guess`
/// bytes are kept for the length before them, and the bytes moved only when the length
/// needs more or fewer.
fn nested(out: &mut Vec<u8>, field: u32, guess: usize, write: impl FnOnce(&mut Vec<u8>)) {
    encode_key(field, WireType::LengthDelimited, out);
    let at = out.len();
    out.resize(at + guess, 0);
    write(out);
    let end = out.len();
    let len = end - at - guess;
    let need = encoded_len_varint(len as u64);
    if need != guess {
        if need > guess {
            out.resize(end + need - guess, 0);
        }
        out.copy_within(at + guess..end, at + need);
        out.truncate(at + need + len);
    }
    if let Some(mut slot) = out.get_mut(at..at + need) {
        encode_varint(len as u64, &mut slot);
    }
}

/// A `string` field; left out when empty (proto3).
fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

/// A `string` field holding `first second`.
fn words(out: &mut Vec<u8>, field: u32, first: &str, second: &str) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint((first.len() + 1 + second.len()) as u64, out);
    out.extend_from_slice(first.as_bytes());
    out.push(b' ');
    out.extend_from_slice(second.as_bytes());
}

/// A `bytes` field; left out when empty (proto3).
fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        encode_key(field, WireType::LengthDelimited, out);
        encode_varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
}

/// A varint field (`int32` of a non-negative value); left out when 0.
fn varint(out: &mut Vec<u8>, field: u32, n: u64) {
    if n != 0 {
        encode_key(field, WireType::Varint, out);
        encode_varint(n, out);
    }
}

/// A `fixed64` field; left out when 0.
fn fixed64(out: &mut Vec<u8>, field: u32, n: u64) {
    if n != 0 {
        encode_key(field, WireType::SixtyFourBit, out);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// A `fixed32` field; left out when 0.
fn fixed32(out: &mut Vec<u8>, field: u32, n: u32) {
    if n != 0 {
        encode_key(field, WireType::ThirtyTwoBit, out);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

/// `n` in decimal (a status code as `error.type`), in `buf`.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut start = buf.len();
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    buf.get(start..)
        .and_then(|d| std::str::from_utf8(d).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::trace::context::TraceId;
    use crate::observe::trace::proto::{ExportTraceServiceRequest, Span, Value};
    use crate::observe::trace::tree;
    use crate::wire::FinishReason;
    use prost::Message;

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn text(s: &str) -> Value {
        Value::String(s.into())
    }

    /// What the writer encodes, decoded with the prost structs.
    fn decoded(batch: &[RequestSpans]) -> ExportTraceServiceRequest {
        let mut encoder = BatchEncoder::new("gw");
        ExportTraceServiceRequest::decode(encoder.encode(batch)).unwrap()
    }

    fn attempt(
        span_id: u64,
        provider: &'static str,
        status: Option<u16>,
        error: Option<&str>,
    ) -> AttemptSpan {
        AttemptSpan {
            span_id,
            start_ns: 10,
            end_ns: 20,
            provider,
            provider_name: format!("{provider}-1"),
            model: "gpt-4o-mini".into(),
            status,
            error: error.map(str::to_string),
            server: Some(("127.0.0.1".into(), 9000)),
        }
    }

    fn request() -> RequestSpans {
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
        let req = decoded(&[request()]);
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
        let req = decoded(&[r]);
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        let server = &spans[0];
        assert!(server.parent_span_id.is_empty());
        assert_eq!(server.flags, 0x101);
        assert_eq!(attr(server, sc::ERROR_TYPE), Some(&text("upstream_failed")));
        assert_eq!(server.status.as_ref().unwrap().code, proto::STATUS_ERROR);
        // No answer was taken: no attempt carries the usage.
        assert_eq!(attr(&spans[2], sc::OUTPUT_TOKENS), None);
    }

    /// Requests that between them take every branch of the encoder.
    fn variants() -> Vec<RequestSpans> {
        let mut out = vec![request()];
        // A root span, one attempt, a cache hit, no finish reason, another endpoint.
        let mut r = request();
        r.parent = None;
        r.attempts.truncate(1);
        r.attempts[0].status = Some(200);
        r.cache = Some("miss");
        r.finish_reason = None;
        r.endpoint = "chat.completions";
        r.stream = false;
        out.push(r);
        // Answered from the cache: no attempt, no provider, no usage.
        let mut r = request();
        r.attempts.clear();
        r.provider = None;
        r.cache = Some("hit");
        r.tokens_in = None;
        r.tokens_out = None;
        r.response_model = None;
        r.finish_reason = Some(FinishReason::Other);
        out.push(r);
        // Refused before routing: 4xx, no model, an endpoint without a route, zero times.
        let mut r = request();
        r.status = 404;
        r.model = None;
        r.attempts.clear();
        r.provider = None;
        r.endpoint = "nope";
        r.start_ns = 0;
        r.end_ns = 0;
        out.push(r);
        // Failed: 5xx without the gateway's code; attempts failed by error and by status.
        let mut r = request();
        r.status = 503;
        r.provider = None;
        r.attempts = vec![
            attempt(1, "openai", None, Some("connect_timeout")),
            attempt(2, "anthropic", Some(429), None),
            attempt(3, "gcp.gemini", Some(500), Some("")),
        ];
        r.attempts[1].server = None;
        out.push(r);
        // 5xx with the gateway's code; the last attempt answered but the answer was refused.
        let mut r = request();
        r.status = 500;
        r.error = Some("guardrail".into());
        r.finish_reason = Some(FinishReason::ToolUse);
        r.response_model = None;
        out.push(r);
        // Large and odd values: u64 past i64::MAX, long strings (lengths past one byte),
        // empty strings, the largest ids.
        let mut r = request();
        r.trace_id = TraceId(u128::MAX);
        r.span_id = u64::MAX;
        r.parent = Some(u64::MAX);
        r.tokens_in = Some(u64::MAX);
        r.tokens_out = Some(0);
        r.request_id = "x".repeat(300);
        r.model = Some(String::new());
        r.attempts[0].model = "m".repeat(20_000);
        r.attempts[1].provider_name = String::new();
        r.attempts[1].server = Some(("h".repeat(130), u16::MAX));
        r.start_ns = u64::MAX;
        out.push(r);
        out
    }

    #[test]
    fn the_writer_encodes_what_the_tree_builder_did() {
        let all = variants();
        let mut encoder = BatchEncoder::new("gw");
        // Each variant alone, then all of them in one batch, then an empty batch; the same
        // encoder throughout, as the exporter keeps it.
        let batches: Vec<&[RequestSpans]> = all
            .chunks(1)
            .chain([&all[..], &all[..0], &all[2..4]])
            .collect();
        for batch in batches {
            let want = tree::export_request("gw", batch);
            let got = encoder.encode(batch);
            assert_eq!(ExportTraceServiceRequest::decode(got).unwrap(), want);
            // The same bytes, not only the same message: prost's field order and defaults.
            assert_eq!(got, want.encode_to_vec());
        }
    }

    #[test]
    fn status_codes_in_decimal() {
        let mut buf = [0; 5];
        for n in [0, 7, 10, 99, 404, 503, 9999, 10000, 65535] {
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
    }
}
