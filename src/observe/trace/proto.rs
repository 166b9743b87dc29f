//! The OTLP trace messages the exporter sends (opentelemetry-proto `trace/v1`,
//! `common/v1`, `resource/v1`, `collector/trace/v1`), declared with prost's derive: only the
//! messages and fields the gateway fills, with the proto files' field numbers. A collector
//! skips the fields it is not sent; the integration test decodes them with the official
//! Python package.
//!
//! `encode.rs` writes the request's bytes itself; the request messages here are for the
//! tests, which decode what it writes (the collector's response is decoded for real).

/// `ExportTraceServiceRequest`: the body of `POST /v1/traces`.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    /// One entry per resource (the gateway is one).
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `ExportTraceServiceResponse`: what a collector answers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceResponse {
    /// Set when some spans were refused.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

/// `ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTracePartialSuccess {
    /// How many spans the collector refused.
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    /// Why.
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `ResourceSpans`: the spans of one resource.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    /// The process (`service.name`, ...).
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// Spans by instrumentation scope.
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
    /// Schema of the resource attributes.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `Resource`.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Its attributes.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `ScopeSpans`: the spans one instrumentation scope made.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    /// The scope (the gateway).
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// The spans.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    /// The semantic-conventions schema the span attributes follow.
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

/// `InstrumentationScope`.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// Its name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `Span`.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    /// 16 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// 8 bytes, or empty for a root span.
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    /// W3C trace flags in bits 0-7; bits 8 and 9 say whether the parent is remote.
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
    /// The span's name.
    #[prost(string, tag = "5")]
    pub name: String,
    /// `SpanKind` (see [`SPAN_KIND_SERVER`], [`SPAN_KIND_CLIENT`]).
    #[prost(int32, tag = "6")]
    pub kind: i32,
    /// Start, Unix nanoseconds.
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    /// End, Unix nanoseconds.
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    /// Attributes.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// Whether the operation failed.
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Span.SpanKind.SPAN_KIND_SERVER`.
pub const SPAN_KIND_SERVER: i32 = 2;
/// `Span.SpanKind.SPAN_KIND_CLIENT`.
pub const SPAN_KIND_CLIENT: i32 = 3;
/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`: the next bit is meaningful.
pub const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`: the parent span is in another process.
pub const FLAG_IS_REMOTE: u32 = 0x200;

/// `Status`.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A description for errors.
    #[prost(string, tag = "2")]
    pub message: String,
    /// `StatusCode` ([`STATUS_ERROR`] for failures).
    #[prost(int32, tag = "3")]
    pub code: i32,
}

/// `Status.StatusCode.STATUS_CODE_ERROR`.
pub const STATUS_ERROR: i32 = 2;

/// `KeyValue`: one attribute.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The attribute's name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Its value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`: a string, bool, integer, double or array.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// The value.
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5")]
    pub value: Option<Value>,
}

/// `AnyValue.value`.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// `string_value`.
    #[prost(string, tag = "1")]
    String(String),
    /// `bool_value`.
    #[prost(bool, tag = "2")]
    Bool(bool),
    /// `int_value`.
    #[prost(int64, tag = "3")]
    Int(i64),
    /// `double_value`.
    #[prost(double, tag = "4")]
    Double(f64),
    /// `array_value`.
    #[prost(message, tag = "5")]
    Array(ArrayValue),
}

/// `ArrayValue`.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    /// The elements.
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes worked out by hand from the proto definitions: a change of field number or
    /// wire type shows here before a collector sees it.
    #[test]
    fn field_numbers_and_wire_types_match_the_proto_files() {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: Vec::new(),
            flags: 0x101,
            name: "n".into(),
            kind: SPAN_KIND_CLIENT,
            start_time_unix_nano: 5,
            end_time_unix_nano: 6,
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(Value::Int(7)),
                }),
            }],
            status: Some(Status {
                message: String::new(),
                code: STATUS_ERROR,
            }),
        };
        let bytes = span.encode_to_vec();
        let mut want = vec![0x0a, 16];
        want.extend([1; 16]);
        want.extend([0x12, 8]);
        want.extend([2; 8]);
        want.extend([0x2a, 1, b'n']); // name: field 5, length-delimited
        want.extend([0x30, 3]); // kind: field 6, varint
        want.extend([0x39, 5, 0, 0, 0, 0, 0, 0, 0]); // start: field 7, fixed64
        want.extend([0x41, 6, 0, 0, 0, 0, 0, 0, 0]); // end: field 8, fixed64
        want.extend([0x4a, 7, 0x0a, 1, b'k', 0x12, 2, 0x18, 7]); // attribute: field 9
        want.extend([0x7a, 2, 0x18, 2]); // status: field 15, code field 3
        want.extend([0x85, 0x01, 0x01, 0x01, 0, 0]); // flags: field 16, fixed32
        assert_eq!(bytes, want);
        assert_eq!(Span::decode(&bytes[..]).unwrap(), span);
    }
}
