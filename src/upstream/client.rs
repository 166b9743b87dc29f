//! The HTTP/1.1 client half: write a request to a provider, read its response head and,
//! for non-streamed calls, its whole body.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monoio::io::AsyncWriteRentExt;

use super::conn::UpstreamConn;
use super::error::UpstreamError;
use crate::http::{header_spans, take_front, ChunkedDecoder, HeaderList};

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes.
    UntilClose,
    /// No body (204, 304, HEAD).
    Empty,
}

/// A provider's response head.
#[derive(Debug)]
pub struct UpstreamResponseHead {
    /// The status code.
    pub status: u16,
    /// The headers, as sent.
    pub headers: HeaderList,
    /// How the body is framed.
    pub body: BodyKind,
    /// Whether the connection may be reused after the body.
    pub keep_alive: bool,
}

impl UpstreamResponseHead {
    /// True for `text/event-stream` responses.
    pub fn is_event_stream(&self) -> bool {
        self.content_type_is(b"text/event-stream")
    }

    /// Whether the content type starts with `media_type` (parameters such as charset aside).
    pub fn content_type_is(&self, media_type: &[u8]) -> bool {
        self.headers.get("content-type").is_some_and(|v| {
            v.get(..media_type.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(media_type))
        })
    }
}

/// Bodies up to this size are copied behind the head and sent in one write; larger ones
/// follow the head in writes of their own.
pub const COPY_LIMIT: usize = 16 * 1024;

/// Writes a request: `head` (already complete, ending in CRLFCRLF) and the body parts.
/// The buffer is lent to the write and put back as it was (the body copied behind it is
/// cut off again), whether the write succeeds or not, so a retry can send it again.
pub async fn send_request(
    conn: &mut UpstreamConn,
    head: &mut Vec<u8>,
    body: &[Bytes],
) -> Result<(), UpstreamError> {
    let total: usize = body.iter().map(Bytes::len).sum();
    let head_len = head.len();
    let mut buf = std::mem::take(head);
    if total <= COPY_LIMIT {
        for part in body {
            buf.extend_from_slice(part);
        }
        let (res, mut buf) = conn.io.write_all(buf).await;
        buf.truncate(head_len);
        *head = buf;
        res.map_err(UpstreamError::Write)?;
    } else {
        let (res, buf) = conn.io.write_all(buf).await;
        *head = buf;
        res.map_err(UpstreamError::Write)?;
        for part in body {
            let (res, _) = conn.io.write_all(part.clone()).await;
            res.map_err(UpstreamError::Write)?;
        }
    }
    Ok(())
}

/// Reads the response head within `timeout`. Interim 1xx responses are skipped.
pub async fn read_response_head(
    conn: &mut UpstreamConn,
    timeout: Duration,
    head_request: bool,
) -> Result<UpstreamResponseHead, UpstreamError> {
    let deadline = Instant::now() + timeout;
    loop {
        if !conn.buf.is_empty() {
            if let Some(head) = try_parse_response(&mut conn.buf, head_request)? {
                if (100..200).contains(&head.status) {
                    continue;
                }
                return Ok(head);
            }
            if conn.buf.len() > 64 * 1024 {
                return Err(UpstreamError::Malformed("response head too large"));
            }
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or(UpstreamError::FirstByteTimeout)?;
        let had_bytes = !conn.buf.is_empty();
        let n = monoio::time::timeout(left, conn.read_more())
            .await
            .map_err(|_| UpstreamError::FirstByteTimeout)?
            .map_err(|e| {
                if had_bytes {
                    UpstreamError::Read(e)
                } else {
                    // A reset before any byte is what a stale keep-alive connection looks like.
                    UpstreamError::ClosedBeforeResponse
                }
            })?;
        if n == 0 {
            return Err(if had_bytes {
                UpstreamError::Malformed("connection closed inside the response head")
            } else {
                UpstreamError::ClosedBeforeResponse
            });
        }
    }
}

fn try_parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<UpstreamResponseHead>, UpstreamError> {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut storage);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(UpstreamError::Malformed("invalid response head")),
    };
    let status = resp.code.unwrap_or(0);
    let version = resp.version.unwrap_or(1);
    let spans = header_spans(buf, resp.headers);
    let raw = buf.split_to(n).freeze();
    let headers = HeaderList::from_spans(raw, spans);
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
    let length = headers
        .get_str("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        BodyKind::Empty
    } else if chunked {
        BodyKind::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            BodyKind::Empty
        } else {
            BodyKind::Length(n)
        }
    } else {
        BodyKind::UntilClose
    };
    let conn_hdr = headers.get("connection");
    let says = |tok: &[u8]| {
        conn_hdr.is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(tok))
        })
    };
    let keep_alive = body != BodyKind::UntilClose
        && if version == 0 {
            says(b"keep-alive")
        } else {
            !says(b"close")
        };
    Ok(Some(UpstreamResponseHead {
        status,
        headers,
        body,
        keep_alive,
    }))
}

/// Reads a whole (non-streamed) body, at most `max` bytes, before `deadline`.
pub async fn read_full_body(
    conn: &mut UpstreamConn,
    kind: BodyKind,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, UpstreamError> {
    match kind {
        BodyKind::Empty => Ok(Bytes::new()),
        BodyKind::Length(n) => read_length(conn, n, max, deadline).await,
        BodyKind::Chunked => read_chunked(conn, max, deadline).await,
        BodyKind::UntilClose => read_until_close(conn, max, deadline).await,
    }
}

/// Reads more into the connection's buffer before `deadline`; `Ok(0)` is the end.
async fn read_before(conn: &mut UpstreamConn, deadline: Instant) -> Result<usize, UpstreamError> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .ok_or(UpstreamError::BodyTimeout)?;
    monoio::time::timeout(left, conn.read_more())
        .await
        .map_err(|_| UpstreamError::BodyTimeout)?
        .map_err(UpstreamError::Read)
}

/// A `Content-Length` body.
async fn read_length(
    conn: &mut UpstreamConn,
    n: u64,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, UpstreamError> {
    let n = usize::try_from(n).map_err(|_| UpstreamError::BodyTooLarge)?;
    if n > max {
        return Err(UpstreamError::BodyTooLarge);
    }
    while conn.buf.len() < n {
        let missing = n - conn.buf.len();
        if conn.buf.capacity() - conn.buf.len() < missing {
            conn.buf.reserve(missing);
        }
        if read_before(conn, deadline).await? == 0 {
            return Err(UpstreamError::Malformed(
                "connection closed inside the body",
            ));
        }
    }
    Ok(take_front(&mut conn.buf, n))
}

/// A chunked body, decoded.
async fn read_chunked(
    conn: &mut UpstreamConn,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, UpstreamError> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = BytesMut::new();
    loop {
        let mut too_large = false;
        let used = decoder
            .feed(&conn.buf, |d| {
                if body.len() + d.len() > max {
                    too_large = true;
                } else {
                    body.extend_from_slice(d);
                }
            })
            .map_err(|_| UpstreamError::Malformed("invalid chunked body"))?;
        let _ = conn.buf.split_to(used);
        if too_large {
            return Err(UpstreamError::BodyTooLarge);
        }
        if decoder.is_done() {
            return Ok(body.freeze());
        }
        if read_before(conn, deadline).await? == 0 {
            return Err(UpstreamError::Malformed(
                "connection closed inside the body",
            ));
        }
    }
}

/// A body that ends when the connection closes.
async fn read_until_close(
    conn: &mut UpstreamConn,
    max: usize,
    deadline: Instant,
) -> Result<Bytes, UpstreamError> {
    loop {
        if conn.buf.len() > max {
            return Err(UpstreamError::BodyTooLarge);
        }
        if read_before(conn, deadline).await? == 0 {
            let n = conn.buf.len();
            return Ok(take_front(&mut conn.buf, n));
        }
    }
}
