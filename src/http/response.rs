//! Response heads written into a reusable buffer.

use std::io::Write;

/// The reason phrase for the statuses the gateway writes.
pub fn status_reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Builds an HTTP/1.1 response head in a `Vec` (which the caller may reuse).
pub struct ResponseHead {
    buf: Vec<u8>,
}

/// How the body that follows the head is framed.
#[derive(Debug, Clone, Copy)]
pub enum BodyFraming {
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl ResponseHead {
    /// Starts a head with the status line, reusing `buf`'s allocation.
    pub fn new(mut buf: Vec<u8>, status: u16) -> Self {
        buf.clear();
        let _ = write!(buf, "HTTP/1.1 {} {}\r\n", status, status_reason(status));
        Self { buf }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &[u8]) -> Self {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Adds a header with a value that implements Display (numbers).
    pub fn header_display(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        let _ = write!(self.buf, "{name}: {value}\r\n");
        self
    }

    /// Adds the body framing and the connection header, ends the head and returns the bytes.
    pub fn finish(mut self, framing: BodyFraming, keep_alive: bool) -> Vec<u8> {
        match framing {
            BodyFraming::Length(n) => {
                let _ = write!(self.buf, "content-length: {n}\r\n");
            }
            BodyFraming::Chunked => self
                .buf
                .extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        if !keep_alive {
            self.buf.extend_from_slice(b"connection: close\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_head() {
        let h = ResponseHead::new(Vec::new(), 404)
            .header("content-type", b"application/json")
            .header_display("x-n", 3)
            .finish(BodyFraming::Length(10), false);
        assert_eq!(
            std::str::from_utf8(&h).unwrap(),
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\nx-n: 3\r\ncontent-length: 10\r\nconnection: close\r\n\r\n"
        );
    }
}
