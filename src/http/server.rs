//! The server side of one HTTP/1.1 connection: reads requests (head, then body) under limits
//! and timeouts, and writes responses. Keep-alive and pipelined bytes are handled here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::chunked::ChunkedDecoder;
use super::error::HttpError;
use super::head::{HeadSpans, RequestHead};

/// The limits a connection enforces (from `[server]`; read from the current table per request).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Largest head in bytes.
    pub max_header_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
    /// Largest body in bytes.
    pub max_body_bytes: usize,
    /// Time to receive a whole head (and body) once its first byte arrived.
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection may wait for its next request.
    pub keepalive_timeout: Duration,
}

impl ServerLimits {
    /// Limits from the `[server]` section.
    pub fn from_config(s: &crate::config::ServerConfig) -> Self {
        Self {
            max_header_bytes: s.max_header_bytes,
            max_headers: s.max_headers.clamp(1, MAX_HEADERS_CAP),
            max_body_bytes: s.max_body_bytes,
            header_timeout: Duration::from_millis(s.header_timeout_ms),
            keepalive_timeout: Duration::from_millis(s.keepalive_timeout_ms),
        }
    }
}

const READ_CHUNK: usize = 16 * 1024;

/// One accepted client connection.
pub struct ServerConn {
    io: TcpStream,
    buf: BytesMut,
}

/// The most headers a request may have, whatever the config says (the parse array is on the stack).
pub const MAX_HEADERS_CAP: usize = 256;

impl ServerConn {
    /// Wraps an accepted socket (TCP_NODELAY is set here).
    pub fn new(io: TcpStream) -> Self {
        let _ = io.set_nodelay(true);
        Self {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The socket, for writing responses.
    pub fn io(&mut self) -> &mut TcpStream {
        &mut self.io
    }

    /// Reads once into the buffer's spare capacity. `Ok(0)` is EOF.
    async fn read_more(&mut self, limit: Duration) -> Result<usize, HttpError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(READ_CHUNK);
        }
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let read = self.io.read(buf.slice_mut(len..cap));
        match monoio::time::timeout(limit, read).await {
            Ok((res, slice)) => {
                self.buf = slice.into_inner();
                Ok(res?)
            }
            // The buffer went with the cancelled read; the connection is closed after this.
            Err(_) => Err(HttpError::Timeout),
        }
    }

    /// Reads the next request head. `Err(Closed)` when the client closed between requests.
    pub async fn read_head(&mut self, limits: &ServerLimits) -> Result<RequestHead, HttpError> {
        let mut started: Option<std::time::Instant> = None;
        loop {
            if !self.buf.is_empty() {
                if let Some(head) = self.try_parse_head(limits)? {
                    return Ok(head);
                }
                if self.buf.len() >= limits.max_header_bytes {
                    return Err(HttpError::HeadTooLarge);
                }
            }
            let wait = match started {
                None if self.buf.is_empty() => limits.keepalive_timeout,
                _ => {
                    let s = *started.get_or_insert_with(std::time::Instant::now);
                    limits
                        .header_timeout
                        .checked_sub(s.elapsed())
                        .ok_or(HttpError::Timeout)?
                }
            };
            let n = match self.read_more(wait).await {
                // Idle between requests: the keep-alive timeout closes quietly.
                Err(HttpError::Timeout) if started.is_none() => return Err(HttpError::Closed),
                other => other?,
            };
            if n == 0 {
                return if self.buf.is_empty() {
                    Err(HttpError::Closed)
                } else {
                    Err(HttpError::Malformed(
                        "connection closed inside the request head",
                    ))
                };
            }
            started.get_or_insert_with(std::time::Instant::now);
        }
    }

    fn try_parse_head(&mut self, limits: &ServerLimits) -> Result<Option<RequestHead>, HttpError> {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
        let max = limits.max_headers.min(MAX_HEADERS_CAP);
        let mut req = httparse::Request::new(&mut storage[..max]);
        let (n, spans) = match req.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) if n > limits.max_header_bytes => {
                return Err(HttpError::HeadTooLarge)
            }
            Ok(httparse::Status::Complete(n)) => (n, HeadSpans::capture(&self.buf, &req)),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
            Err(_) => return Err(HttpError::Malformed("invalid request head")),
        };
        // The spans are relative to the buffer start, which is where the frozen head starts.
        let raw = self.buf.split_to(n).freeze();
        Ok(Some(RequestHead::from_spans(raw, spans)))
    }

    /// Reads the body that `head` announces (Content-Length or chunked) into one `Bytes`.
    /// Answers `Expect: 100-continue` first when the body has not arrived yet.
    pub async fn read_body(
        &mut self,
        head: &RequestHead,
        limits: &ServerLimits,
    ) -> Result<Bytes, HttpError> {
        let te = head.headers.get("transfer-encoding");
        let chunked = match te {
            Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"chunked") => true,
            Some(_) => return Err(HttpError::Malformed("unsupported transfer-encoding")),
            None => false,
        };
        let length = match (chunked, head.headers.get("content-length")) {
            (true, Some(_)) => {
                return Err(HttpError::Malformed(
                    "both content-length and transfer-encoding",
                ))
            }
            (false, Some(v)) => Some(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.trim().parse::<usize>().ok())
                    .ok_or(HttpError::Malformed("invalid content-length"))?,
            ),
            _ => None,
        };
        if let Some(n) = length {
            if n > limits.max_body_bytes {
                return Err(HttpError::BodyTooLarge);
            }
        }
        let expects_continue = head
            .headers
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        let body_pending = match length {
            Some(n) => self.buf.len() < n,
            None => chunked,
        };
        if expects_continue && body_pending && head.version == 1 {
            let (res, _) = self
                .io
                .write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
                .await;
            res?;
        }
        let deadline =
            std::time::Instant::now() + limits.header_timeout.max(Duration::from_secs(30));
        match (chunked, length) {
            (false, None) | (false, Some(0)) => Ok(Bytes::new()),
            (false, Some(n)) => {
                while self.buf.len() < n {
                    if self.buf.capacity() - self.buf.len() < n - self.buf.len() {
                        self.buf.reserve(n - self.buf.len());
                    }
                    let left = remaining(deadline)?;
                    if self.read_more(left).await? == 0 {
                        return Err(HttpError::Malformed("connection closed inside the body"));
                    }
                }
                Ok(self.buf.split_to(n).freeze())
            }
            (true, _) => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = BytesMut::new();
                loop {
                    let mut too_large = false;
                    let used = decoder
                        .feed(&self.buf, |data| {
                            if body.len() + data.len() > limits.max_body_bytes {
                                too_large = true;
                            } else {
                                body.extend_from_slice(data);
                            }
                        })
                        .map_err(|_| HttpError::Malformed("invalid chunked body"))?;
                    let _ = self.buf.split_to(used);
                    if too_large {
                        return Err(HttpError::BodyTooLarge);
                    }
                    if decoder.is_done() {
                        return Ok(body.freeze());
                    }
                    let left = remaining(deadline)?;
                    if self.read_more(left).await? == 0 {
                        return Err(HttpError::Malformed("connection closed inside the body"));
                    }
                }
            }
        }
    }

    /// Writes a whole response (head and body) with one vectored write.
    pub async fn write_response(&mut self, head: Vec<u8>, body: Bytes) -> std::io::Result<Vec<u8>> {
        write_head_and_body(&mut self.io, head, body).await
    }
}

fn remaining(deadline: std::time::Instant) -> Result<Duration, HttpError> {
    deadline
        .checked_duration_since(std::time::Instant::now())
        .ok_or(HttpError::Timeout)
}

/// Writes a head and a body; small bodies are copied behind the head (one syscall), large ones
/// are written as they are. Returns the head buffer for reuse.
pub async fn write_head_and_body<W: AsyncWriteRent>(
    io: &mut W,
    mut head: Vec<u8>,
    body: Bytes,
) -> std::io::Result<Vec<u8>> {
    const COPY_LIMIT: usize = 8 * 1024;
    if body.len() <= COPY_LIMIT {
        let head_len = head.len();
        head.extend_from_slice(&body);
        let (res, mut head) = io.write_all(head).await;
        res?;
        head.truncate(head_len);
        Ok(head)
    } else {
        let (res, head) = io.write_all(head).await;
        res?;
        let (res, _) = io.write_all(body).await;
        res?;
        Ok(head)
    }
}
