//! Errors of the HTTP server, each with the status the client gets (if any).

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The peer closed the connection between requests (the normal end of keep-alive).
    #[error("connection closed")]
    Closed,
    /// The request head is larger than `max_header_bytes`.
    #[error("request header block too large")]
    HeadTooLarge,
    /// More headers than `max_headers`.
    #[error("too many request headers")]
    TooManyHeaders,
    /// The body is larger than `max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The bytes are not HTTP/1.x.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The client was too slow to send its head (or its body).
    #[error("timed out reading the request")]
    Timeout,
    /// The process-wide budget for request bodies in memory is spent: try again shortly.
    #[error("too many request bodies in flight; retry shortly")]
    Busy,
    /// A plain connection opened with the HTTP/2 preface (prior knowledge): it is handed
    /// to the HTTP/2 server.
    #[error("the client speaks HTTP/2")]
    Http2Preface,
    /// The socket failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

impl HttpError {
    /// The status to answer with before closing, or None when nothing should be written.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Closed | HttpError::Io(_) | HttpError::Http2Preface => None,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => Some(431),
            HttpError::BodyTooLarge => Some(413),
            HttpError::Malformed(_) => Some(400),
            HttpError::Timeout => Some(408),
            HttpError::Busy => Some(503),
        }
    }
}
