//! Small HTTP/1.1 pieces shared by the mock server and the load generator: an incremental
//! chunked-body decoder and reading into a growing buffer with monoio's owned-buffer IO.

mod chunked;
mod read;

pub use chunked::{ChunkedDecoder, ChunkedError};
pub use read::read_more;

/// The reason phrase for the status codes this crate sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
