//! The server side of one HTTP/1.1 connection: reads requests (head, then body) under limits
//! and timeouts, and writes responses. Keep-alive and pipelined bytes are handled here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::budget::BodyPermit;
use super::chunked::{ChunkedDecoder, ChunkedError};
use super::client_io::{ClientIo, ClientWatch};
use super::error::HttpError;
use super::h2::H2Responder;
use super::h2::PREFACE;
use super::head::{BodyLength, HeadSpans, RequestHead};

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
    /// Time a new connection may wait before its first request starts.
    pub first_request_timeout: Duration,
    /// Whether a plain connection may switch to HTTP/2 with prior knowledge.
    pub http2: bool,
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
            first_request_timeout: Duration::from_millis(s.first_request_timeout_ms),
            http2: s.http2,
        }
    }
}

const READ_CHUNK: usize = 16 * 1024;

/// One accepted client connection.
pub struct ServerConn {
    io: ClientIo,
    /// An HTTP/2 stream's request body, not read yet, and the length it declared.
    h2_body: Option<(h2::RecvStream, Option<u64>)>,
    buf: BytesMut,
    /// Whether the current request's response may have started (the socket was handed out
    /// for writing): a request that fails after this can't be answered with a fresh status.
    response_started: bool,
    /// The current request's body was larger than [`KEEP_BUFFER_BYTES`].
    large_body: bool,
    /// The current request announced a body that has not been read (it was refused first).
    body_unread: bool,
}

/// How long, and for how many bytes, the unread rest of a refused request's body is read
/// and dropped before the connection (or HTTP/2 stream) ends.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// See [`LINGER`].
pub(crate) const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// A read buffer that grew past this (a large body) is replaced by a small one after the
/// request, so one big request does not pin its memory for the connection's life.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

/// The most headers a request may have, whatever the config says (the parse array is on the stack).
pub const MAX_HEADERS_CAP: usize = 256;

impl ServerConn {
    /// Wraps an accepted socket (TCP_NODELAY is set here).
    pub fn new(io: TcpStream) -> Self {
        let _ = io.set_nodelay(true);
        Self::with_io(ClientIo::Plain(io))
    }

    /// Serves HTTP/1.1 over `io` (plain or TLS).
    pub fn with_io(io: ClientIo) -> Self {
        Self {
            io,
            h2_body: None,
            buf: BytesMut::with_capacity(READ_CHUNK),
            response_started: false,
            large_body: false,
            body_unread: false,
        }
    }

    /// One HTTP/2 stream: its head was read by the connection, its body is `body` (of the
    /// `declared` length, if the client said), and its response goes to `respond`.
    pub fn for_h2(respond: H2Responder, body: h2::RecvStream, declared: Option<u64>) -> Self {
        Self {
            io: ClientIo::H2(Box::new(respond)),
            h2_body: Some((body, declared)),
            buf: BytesMut::new(),
            response_started: false,
            large_body: false,
            body_unread: false,
        }
    }

    /// The connection's transport and the bytes read past the last request: what an
    /// HTTP/2 server takes over after a prior-knowledge preface.
    pub fn into_parts(self) -> (ClientIo, BytesMut) {
        (self.io, self.buf)
    }

    /// The client side, for writing responses (from here on the response counts as started).
    pub fn io(&mut self) -> &mut ClientIo {
        self.response_started = true;
        &mut self.io
    }

    /// What to watch for the client going away while an answer is prepared.
    pub fn watch(&self) -> ClientWatch<'_> {
        self.io.watch()
    }

    /// Closes after a request that was refused before its body was read, the way RFC 9112
    /// §9.6 asks: stop writing, then read and discard what the client still sends (up to a
    /// bound and a second) before closing. Closing at once with unread bytes makes the kernel
    /// reset the connection, and the client may lose the error response it was sent.
    pub async fn linger_if_body_unread(&mut self) {
        if let Some((mut body, _)) = self.h2_body.take() {
            // HTTP/2 allows a reset (NO_ERROR) here, but some clients (curl 7.88) then
            // report an error instead of the answer they got: read the rest, within bounds.
            super::h2::drain_body(&mut body).await;
            return;
        }
        if !std::mem::take(&mut self.body_unread) || self.io.is_h2() {
            return;
        }
        let _ = self.io.shutdown().await;
        let deadline = std::time::Instant::now() + LINGER;
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            self.buf.clear();
            let Ok(left) = remaining(deadline) else {
                return;
            };
            match self.read_more(left).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }

    /// Whether any part of the current request's response may have been written.
    pub fn response_started(&self) -> bool {
        self.response_started
    }

    /// Ends a request: the next response has not started, and a read buffer that grew
    /// large is swapped for a small one (keeping any pipelined bytes). Returns whether the
    /// request carried a large body (its memory is free now).
    pub fn end_request(&mut self) -> bool {
        self.response_started = false;
        if self.buf.capacity() > KEEP_BUFFER_BYTES {
            self.buf = small_copy(&self.buf);
        }
        std::mem::take(&mut self.large_body)
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

    /// Reads the next request head. `Err(Closed)` when the client closed between requests,
    /// or sent nothing in time (`first` request: the short first-request timeout; later ones:
    /// the keep-alive timeout).
    pub async fn read_head(
        &mut self,
        limits: &ServerLimits,
        first: bool,
    ) -> Result<RequestHead, HttpError> {
        let mut started: Option<std::time::Instant> = None;
        let idle = if first {
            limits.first_request_timeout
        } else {
            limits.keepalive_timeout
        };
        loop {
            if first && limits.http2 {
                let n = self.buf.len().min(PREFACE.len());
                if n > 0 && self.buf.get(..n) == PREFACE.get(..n) {
                    if n == PREFACE.len() {
                        return Err(HttpError::Http2Preface);
                    }
                    // Part of the preface: wait for the rest before parsing anything.
                    let wait = limits.header_timeout;
                    if self.read_more(wait).await? == 0 {
                        return Err(HttpError::Closed);
                    }
                    continue;
                }
            }
            if !self.buf.is_empty() {
                if let Some(head) = self.try_parse_head(limits)? {
                    return Ok(head);
                }
                if self.buf.len() >= limits.max_header_bytes {
                    return Err(HttpError::HeadTooLarge);
                }
            }
            let wait = match started {
                None if self.buf.is_empty() => idle,
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
        let Some(head) = parse_head(&mut self.buf, limits)? else {
            return Ok(None);
        };
        self.body_unread = head.headers.get("transfer-encoding").is_some()
            || head
                .headers
                .get("content-length")
                .is_some_and(|v| v.trim_ascii() != b"0");
        Ok(Some(head))
    }

    /// Reads the body that `head` announces (Content-Length or chunked) into one `Bytes`,
    /// reserving its size in `permit` first. Answers `Expect: 100-continue` when the body has
    /// not arrived yet. Framing that RFC 9112 forbids is refused before any byte is read.
    pub async fn read_body(
        &mut self,
        head: &RequestHead,
        limits: &ServerLimits,
        permit: &mut BodyPermit,
    ) -> Result<Bytes, HttpError> {
        if let Some((mut body, declared)) = self.h2_body.take() {
            let timeout = limits.header_timeout.max(Duration::from_secs(30));
            let read = super::h2::read_body(&mut body, declared, limits, permit, timeout).await;
            if read.is_err() {
                // What the client still sends is drained after the answer (see linger).
                self.h2_body = Some((body, None));
            }
            return read;
        }
        let framing = head.body_framing().map_err(HttpError::Malformed)?;
        let length = match framing {
            BodyLength::Empty => {
                self.body_unread = false;
                return Ok(Bytes::new());
            }
            BodyLength::Length(n) => {
                let n = usize::try_from(n).map_err(|_| HttpError::BodyTooLarge)?;
                if n > limits.max_body_bytes {
                    return Err(HttpError::BodyTooLarge);
                }
                if !permit.grow(n) {
                    return Err(HttpError::Busy);
                }
                Some(n)
            }
            BodyLength::Chunked => None,
        };
        let expects_continue = head
            .headers
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
        let body_pending = length.is_none_or(|n| self.buf.len() < n);
        if expects_continue && body_pending && head.version == 1 {
            let (res, _) = self
                .io
                .write_all(&b"HTTP/1.1 100 Continue\r\n\r\n"[..])
                .await;
            res?;
        }
        let deadline =
            std::time::Instant::now() + limits.header_timeout.max(Duration::from_secs(30));
        match length {
            Some(n) => {
                while self.buf.len() < n {
                    if self.buf.capacity() - self.buf.len() < n - self.buf.len() {
                        self.buf.reserve(n - self.buf.len());
                    }
                    let left = remaining(deadline)?;
                    if self.read_more(left).await? == 0 {
                        return Err(HttpError::Malformed("connection closed inside the body"));
                    }
                }
                self.large_body = n > KEEP_BUFFER_BYTES;
                self.body_unread = false;
                Ok(take_front(&mut self.buf, n))
            }
            None => self.read_chunked(limits, permit, deadline).await,
        }
    }

    /// Reads a chunked body. Framing bytes (sizes, extensions, trailers) count towards the body
    /// limit too, so a client can't send endless framing around a small payload.
    async fn read_chunked(
        &mut self,
        limits: &ServerLimits,
        permit: &mut BodyPermit,
        deadline: std::time::Instant,
    ) -> Result<Bytes, HttpError> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = BytesMut::new();
        let mut consumed = 0usize;
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
                .map_err(|e| match e {
                    ChunkedError::BadSize | ChunkedError::SizeTooLarge => {
                        HttpError::Malformed("invalid chunk size line")
                    }
                    ChunkedError::BadDelimiter => {
                        HttpError::Malformed("chunked framing must use CRLF line endings")
                    }
                    ChunkedError::BadExtension => {
                        HttpError::Malformed("chunk extension too long or invalid")
                    }
                    ChunkedError::TrailersTooLarge => HttpError::HeadTooLarge,
                })?;
            let _ = self.buf.split_to(used);
            consumed += used;
            if too_large || consumed > limits.max_body_bytes.saturating_add(READ_CHUNK) {
                return Err(HttpError::BodyTooLarge);
            }
            if body.len() > permit.held() && !permit.grow(body.len() - permit.held()) {
                return Err(HttpError::Busy);
            }
            if decoder.is_done() {
                self.large_body = body.len() > KEEP_BUFFER_BYTES;
                self.body_unread = false;
                return Ok(body.freeze());
            }
            let left = remaining(deadline)?;
            if self.read_more(left).await? == 0 {
                return Err(HttpError::Malformed("connection closed inside the body"));
            }
        }
    }

    /// Writes a whole response (head and body) with one vectored write.
    pub async fn write_response(&mut self, head: Vec<u8>, body: Bytes) -> std::io::Result<Vec<u8>> {
        write_head_and_body(&mut self.io, head, body).await
    }
}

/// Parses a complete head at the start of `buf` under `limits` and splits it off; `None`
/// while it is incomplete. Shared by HTTP/1.1 and the heads HTTP/2 requests are rendered as.
pub(crate) fn parse_head(
    buf: &mut BytesMut,
    limits: &ServerLimits,
) -> Result<Option<RequestHead>, HttpError> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let max = limits.max_headers.min(MAX_HEADERS_CAP);
    // `max` is capped at the array's length; were it not, no header would fit (refused).
    let mut req = httparse::Request::new(storage.get_mut(..max).unwrap_or_default());
    let (n, spans) = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_header_bytes => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Complete(n)) => (n, HeadSpans::capture(buf, &req)),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(_) => return Err(HttpError::Malformed("invalid request head")),
    };
    if has_bare_line_ending(buf.get(..n).unwrap_or_default()) {
        return Err(HttpError::Malformed(
            "request head lines must end in CRLF (bare LF or CR)",
        ));
    }
    // The spans are relative to the buffer start, which is where the frozen head starts.
    let raw = buf.split_to(n).freeze();
    Ok(Some(RequestHead::from_spans(raw, spans)))
}

/// Splits the first `n` bytes off `buf` as a frozen body. A large body takes the buffer's
/// allocation with it, and the rest of the buffer moves to a small one of its own: otherwise
/// the bytes after the body would share (and keep alive) the large allocation for as long
/// as the connection lives.
pub(crate) fn take_front(buf: &mut BytesMut, n: usize) -> Bytes {
    let body = buf.split_to(n).freeze();
    if n > KEEP_BUFFER_BYTES {
        *buf = small_copy(buf);
    }
    body
}

/// A fresh buffer of the usual size holding a copy of `bytes`.
fn small_copy(bytes: &[u8]) -> BytesMut {
    let mut fresh = BytesMut::with_capacity(READ_CHUNK.max(bytes.len()));
    fresh.extend_from_slice(bytes);
    fresh
}

/// True when a line of the head ends in a bare LF or a CR stands alone: RFC 9112 lets a
/// server accept bare LF, but a front proxy that doesn't would see other headers than we do.
fn has_bare_line_ending(head: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        let next = head.get(i + 1).copied();
        if (b == b'\n' && prev != b'\r') || (b == b'\r' && next != Some(b'\n')) {
            return true;
        }
        prev = b;
    }
    false
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
