//! Upstream failures, each saying whether another target may be tried.

/// Why a call to a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider has no resolved address (DNS failed or pending).
    #[error("no address for the provider's host")]
    NoAddress,
    /// The provider's link is not installed (a reload dropped it mid-request).
    #[error("the provider's connection settings are not installed")]
    NoLink,
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    /// TCP or TLS connect took longer than `connect_timeout_ms`.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// Sending the request failed.
    #[error("sending the request failed: {0}")]
    Write(std::io::Error),
    /// The connection closed before any response byte: on a reused connection, it was stale.
    #[error("connection closed before the response")]
    ClosedBeforeResponse,
    /// No response head within `first_byte_timeout_ms`.
    #[error("no response within the first-byte timeout")]
    FirstByteTimeout,
    /// Reading the response failed.
    #[error("reading the response failed: {0}")]
    Read(std::io::Error),
    /// The response took longer than `total_timeout_ms` or stalled.
    #[error("the response did not complete in time")]
    BodyTimeout,
    /// The response is not valid HTTP/1.1.
    #[error("malformed response from the provider: {0}")]
    Malformed(&'static str),
    /// The response body is larger than the gateway buffers.
    #[error("response body too large")]
    BodyTooLarge,
    /// The call's HTTP/2 stream failed before its response (the provider reset it, or
    /// broke the protocol); the shared connection itself may be fine.
    #[error("HTTP/2 stream failed: {0}")]
    Http2(h2::Error),
    /// The request can't be sent as HTTP/2 (its target is not a valid URI).
    #[error("request not expressible in HTTP/2: {0}")]
    Http2Request(&'static str),
}

impl UpstreamError {
    /// True when nothing reached the client yet and another target may be tried.
    pub fn retryable(&self) -> bool {
        !matches!(self, UpstreamError::BodyTooLarge)
    }

    /// True when the failure is the signature of a stale pooled connection: retry the same
    /// target on a fresh connection without counting an attempt.
    pub fn stale_connection(&self) -> bool {
        matches!(
            self,
            UpstreamError::Write(_) | UpstreamError::ClosedBeforeResponse
        )
    }

    /// True when the client should hear a timeout (504) rather than a failure (502).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::FirstByteTimeout
                | UpstreamError::ConnectTimeout
                | UpstreamError::BodyTimeout
        )
    }

    /// A short machine-readable kind for records.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::NoAddress => "no_address",
            UpstreamError::NoLink => "no_link",
            UpstreamError::Connect(_) => "connect",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::Tls(_) => "tls",
            UpstreamError::Write(_) => "write",
            UpstreamError::ClosedBeforeResponse => "closed",
            UpstreamError::FirstByteTimeout => "first_byte_timeout",
            UpstreamError::Read(_) => "read",
            UpstreamError::BodyTimeout => "body_timeout",
            UpstreamError::Malformed(_) => "malformed",
            UpstreamError::BodyTooLarge => "body_too_large",
            UpstreamError::Http2(_) => "http2",
            UpstreamError::Http2Request(_) => "http2_request",
        }
    }
}

/// Whether a provider's answer with this status is a failure another target may fix
/// (overload, rate limit, server error) rather than an answer for the client.
pub fn status_is_retryable(status: u16) -> bool {
    status >= 500 || status == 429
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_whether_to_try_elsewhere() {
        assert!(UpstreamError::ConnectTimeout.retryable());
        assert!(UpstreamError::ConnectTimeout.is_timeout());
        assert!(!UpstreamError::BodyTooLarge.retryable());
        assert!(UpstreamError::ClosedBeforeResponse.stale_connection());
        assert!(!UpstreamError::FirstByteTimeout.stale_connection());
        assert!(status_is_retryable(503) && status_is_retryable(429));
        assert!(!status_is_retryable(400) && !status_is_retryable(200));
    }
}
