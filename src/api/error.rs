//! Errors as the client's dialect expects them: OpenAI's `{"error":{...}}` shape.

use bytes::Bytes;

/// The kind of an error, which fixes its HTTP status and OpenAI `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is malformed or has wrong types.
    InvalidRequest,
    /// 401: missing or unknown gateway key.
    Authentication,
    /// 403: the caller may not do this (a foreign web origin, an admin action without token).
    PermissionDenied,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 404: unknown model or path.
    NotFound,
    /// 405: wrong method for the path.
    MethodNotAllowed,
    /// 408: the client was too slow.
    RequestTimeout,
    /// 413: body too large.
    PayloadTooLarge,
    /// 431: head too large.
    HeadersTooLarge,
    /// 502: every target failed.
    UpstreamFailed,
    /// 503: no target is available.
    Unavailable,
    /// 504: the upstream did not answer in time.
    UpstreamTimeout,
    /// 429: a request or token limit of the key or its tenant.
    RateLimited,
    /// 429: a budget of the key, its tenant or its run is spent (OpenAI's `insufficient_quota`).
    QuotaExceeded,
    /// 500: a bug in the gateway.
    Internal,
}

impl ErrorKind {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Authentication => 401,
            Self::PermissionDenied => 403,
            Self::UnsupportedMediaType => 415,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::HeadersTooLarge => 431,
            Self::UpstreamFailed => 502,
            Self::Unavailable => 503,
            Self::UpstreamTimeout => 504,
            Self::RateLimited | Self::QuotaExceeded => 429,
            Self::Internal => 500,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::NotFound
            | Self::MethodNotAllowed
            | Self::RequestTimeout
            | Self::PayloadTooLarge
            | Self::HeadersTooLarge
            | Self::UnsupportedMediaType => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::PermissionDenied => "permission_error",
            Self::UpstreamFailed | Self::Unavailable | Self::UpstreamTimeout => "upstream_error",
            Self::RateLimited => "rate_limit_exceeded",
            Self::QuotaExceeded => "insufficient_quota",
            Self::Internal => "server_error",
        }
    }
}

/// An error the gateway answers itself.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What kind (status and type).
    pub kind: ErrorKind,
    /// Human-readable message; never contains a provider key.
    pub message: String,
    /// Machine-readable code, e.g. `model_not_found`.
    pub code: &'static str,
    /// The request field at fault, if any.
    pub param: Option<&'static str>,
    /// Seconds after which the same request may succeed (the `retry-after` header).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code,
            param: None,
            retry_after_s: None,
        }
    }

    /// Names the offending request field.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// Tells the client when to try again.
    pub fn with_retry_after(mut self, seconds: Option<u64>) -> Self {
        self.retry_after_s = seconds;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The body in the shape clients of `wire` expect (Anthropic's for Messages, OpenAI's
    /// for the others).
    pub fn to_json(&self, wire: crate::wire::WireApi) -> Bytes {
        if wire.anthropic_errors() {
            self.to_anthropic_json()
        } else {
            self.to_openai_json()
        }
    }

    /// The body in Anthropic's error shape (`{"type":"error","error":{"type","message"}}`).
    pub fn to_anthropic_json(&self) -> Bytes {
        let kind = match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::MethodNotAllowed
            | ErrorKind::RequestTimeout
            | ErrorKind::HeadersTooLarge
            | ErrorKind::UnsupportedMediaType => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded => "rate_limit_error",
            ErrorKind::UpstreamFailed | ErrorKind::UpstreamTimeout | ErrorKind::Internal => {
                "api_error"
            }
        };
        let v = serde_json::json!({
            "type": "error",
            "error": {"type": kind, "message": self.message},
        });
        Bytes::from(v.to_string())
    }

    /// The body in OpenAI's error shape.
    pub fn to_openai_json(&self) -> Bytes {
        let v = serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind.openai_type(),
                "param": self.param,
                "code": self.code,
            }
        });
        Bytes::from(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape() {
        let e = ApiError::new(ErrorKind::NotFound, "model_not_found", "no such model: x")
            .with_param("model");
        let v: serde_json::Value = serde_json::from_slice(&e.to_openai_json()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(e.status(), 404);
    }
}
