//! The three provider dialects mockllm speaks, and how each one shapes its errors.

use serde_json::json;

use super::respond::{random_id, sse_event};
use super::wire;

/// A provider wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions / Embeddings: `{"error":{"message","type","param","code"}}`.
    OpenAi,
    /// Anthropic Messages: `{"type":"error","error":{"type","message"},"request_id"}`.
    Anthropic,
    /// Google Gemini: `{"error":{"code","message","status"}}`.
    Gemini,
    /// AWS Bedrock Converse: `{"message"}`, the type in the `x-amzn-errortype` header; streams
    /// are event-stream frames and a mid-stream error is an exception frame.
    Bedrock,
}

/// Anthropic's error `type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// Google's canonical error `status` for an HTTP status.
pub fn google_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

impl Dialect {
    /// The error body this dialect sends with an error status.
    pub fn error_body(self, status: u16, message: &str) -> Vec<u8> {
        let value = match self {
            Dialect::OpenAi => return wire::error_json(status, message),
            Dialect::Anthropic => json!({
                "type": "error",
                "error": {"type": anthropic_error_type(status), "message": message},
                "request_id": random_id("req_", 24),
            }),
            Dialect::Gemini => json!({
                "error": {"code": status, "message": message, "status": google_status(status)},
            }),
            Dialect::Bedrock => json!({ "message": message }),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// The SSE event that reports an error after a 200 stream has begun: `data: {"error"…}`
    /// for OpenAI and Gemini, `event: error` with the error body for Anthropic.
    pub fn error_event(self, status: u16, message: &str) -> Vec<u8> {
        match self {
            // The streaming reference shows the event without `request_id`.
            Dialect::Anthropic => {
                let body = json!({
                    "type": "error",
                    "error": {"type": anthropic_error_type(status), "message": message},
                });
                sse_event(Some("error"), body.to_string().as_bytes())
            }
            Dialect::OpenAi | Dialect::Gemini => sse_event(None, &self.error_body(status, message)),
            Dialect::Bedrock => super::bedrock::exception_frame(status, message),
        }
    }

    /// Headers (each ending `\r\n`) that go with an error response: Bedrock's
    /// `x-amzn-errortype`, nothing for the others.
    pub fn error_headers(self, status: u16) -> String {
        match self {
            Dialect::Bedrock => {
                super::bedrock::error_type_header(super::bedrock::exception_name(status))
            }
            _ => String::new(),
        }
    }

    /// The content type of a streamed answer.
    pub fn stream_content_type(self) -> &'static str {
        match self {
            Dialect::Bedrock => "application/vnd.amazon.eventstream",
            _ => "text/event-stream; charset=utf-8",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_shapes() {
        let mut a: serde_json::Value =
            serde_json::from_slice(&Dialect::Anthropic.error_body(529, "Overloaded")).unwrap();
        let id = a["request_id"].take();
        assert!(id.as_str().unwrap().starts_with("req_"));
        assert_eq!(
            a,
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},
                   "request_id": null})
        );
        let g: serde_json::Value =
            serde_json::from_slice(&Dialect::Gemini.error_body(429, "quota")).unwrap();
        assert_eq!(
            g,
            json!({"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}})
        );
        let e = Dialect::Anthropic.error_event(500, "boom");
        assert_eq!(
            e,
            b"event: error\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\"},\"type\":\"error\"}\n\n"
        );
    }
}
