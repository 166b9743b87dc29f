//! One keep-alive client connection and one request/response exchange over it, SSE-aware.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use super::recorder::ErrorKind;
use crate::http1::{read_more, ChunkedDecoder};

/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Timings and outcome of a completed exchange.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// Response status code.
    pub status: u16,
    /// When the first response byte arrived.
    pub first_byte: Instant,
    /// When the first SSE `data:` event arrived (streaming responses only).
    pub first_event: Option<Instant>,
    /// When the response was complete.
    pub done: Instant,
    /// For a streamed 2xx response: whether `data: [DONE]` was seen.
    pub saw_done_event: bool,
}

/// A connection that is opened on first use and reopened after any failure.
pub struct ClientConnection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened so far (for the report).
    pub opened: u64,
}

enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

enum Failure {
    /// The server closed an idle kept-alive connection before answering: safe to retry.
    StaleConnection,
    Error(ErrorKind),
}

impl ClientConnection {
    /// A not-yet-connected connection to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::new(),
            opened: 0,
        }
    }

    /// Drops the socket (after a timeout or error); the next exchange reconnects.
    pub fn discard(&mut self) {
        self.stream = None;
    }

    /// Sends `request` and reads the whole response. A kept-alive connection that turns
    /// out to be closed by the server is reopened once, transparently.
    pub async fn exchange(&mut self, request: &Bytes) -> Result<Exchange, ErrorKind> {
        for _ in 0..2 {
            let reused = self.stream.is_some();
            if !reused {
                let stream = TcpStream::connect_addr(self.addr)
                    .await
                    .map_err(|_| ErrorKind::Connect)?;
                let _ = stream.set_nodelay(true);
                self.opened += 1;
                self.stream = Some(stream);
            }
            match self.exchange_once(request, reused).await {
                Ok((exchange, keep_alive)) => {
                    if !keep_alive {
                        self.stream = None;
                    }
                    return Ok(exchange);
                }
                Err(Failure::StaleConnection) => self.stream = None,
                Err(Failure::Error(kind)) => {
                    self.stream = None;
                    return Err(kind);
                }
            }
        }
        Err(ErrorKind::Reset)
    }

    async fn exchange_once(
        &mut self,
        request: &Bytes,
        reused: bool,
    ) -> Result<(Exchange, bool), Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Error(ErrorKind::Connect));
        };
        let stale_or = |kind| {
            if reused {
                Failure::StaleConnection
            } else {
                Failure::Error(kind)
            }
        };
        let (res, _) = stream.write_all(request.clone()).await;
        res.map_err(|_| stale_or(ErrorKind::Reset))?;

        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut first_byte = None;
        let (status, head_len, framing, keep_alive) = loop {
            let (res, b) = read_more(stream, buf).await;
            buf = b;
            match res {
                Ok(0) if buf.is_empty() => return Err(stale_or(ErrorKind::Reset)),
                Ok(0) => return Err(Failure::Error(ErrorKind::Reset)),
                Ok(_) => {}
                Err(e) if buf.is_empty() && is_reset(&e) => return Err(stale_or(ErrorKind::Reset)),
                Err(e) => return Err(Failure::Error(io_kind(&e))),
            }
            first_byte.get_or_insert_with(Instant::now);
            if let Some(head) = parse_head(&buf).map_err(Failure::Error)? {
                break head;
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(Failure::Error(ErrorKind::Protocol));
            }
        };
        let first_byte = first_byte.unwrap_or_else(Instant::now);
        let mut scanner = SseScanner::default();
        let mut keep_alive = keep_alive;
        match framing {
            Framing::Empty => {}
            Framing::Length(len) => loop {
                scanner.scan(&buf[head_len..buf.len().min(head_len + len)]);
                if buf.len() >= head_len + len {
                    break;
                }
                let (res, b) = read_more(stream, buf).await;
                buf = b;
                match res {
                    Ok(0) => return Err(Failure::Error(ErrorKind::Reset)),
                    Ok(_) => {}
                    Err(e) => return Err(Failure::Error(io_kind(&e))),
                }
            },
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut payload = Vec::new();
                let mut pos = head_len;
                loop {
                    pos += decoder
                        .feed(&buf[pos..], &mut payload)
                        .map_err(|_| Failure::Error(ErrorKind::Protocol))?;
                    scanner.scan(&payload);
                    if decoder.is_done() {
                        break;
                    }
                    // Keep the buffer small on long streams: drop what was decoded.
                    buf.drain(..pos);
                    pos = 0;
                    let (res, b) = read_more(stream, buf).await;
                    buf = b;
                    match res {
                        Ok(0) => return Err(Failure::Error(ErrorKind::Reset)),
                        Ok(_) => {}
                        Err(e) => return Err(Failure::Error(io_kind(&e))),
                    }
                }
            }
            Framing::UntilClose => {
                keep_alive = false;
                loop {
                    scanner.scan(&buf[head_len..]);
                    let (res, b) = read_more(stream, buf).await;
                    buf = b;
                    match res {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => return Err(Failure::Error(io_kind(&e))),
                    }
                }
            }
        }
        buf.clear();
        self.buf = buf;
        Ok((
            Exchange {
                status,
                first_byte,
                first_event: scanner.first_event,
                done: Instant::now(),
                saw_done_event: scanner.saw_done,
            },
            keep_alive,
        ))
    }
}

/// Watches a growing SSE payload for the first `data:` event and the `[DONE]` marker.
/// `scan` is given the whole payload so far each time; it remembers how far it looked.
#[derive(Default)]
struct SseScanner {
    scanned: usize,
    first_event: Option<Instant>,
    saw_done: bool,
}

impl SseScanner {
    fn scan(&mut self, payload: &[u8]) {
        if payload.len() <= self.scanned {
            self.scanned = self.scanned.min(payload.len());
            return;
        }
        // Re-look at a few bytes before the new data, in case a marker was split.
        let from = self.scanned.saturating_sub(16);
        let window = &payload[from..];
        if self.first_event.is_none() && contains(window, b"data:") {
            self.first_event = Some(Instant::now());
        }
        if !self.saw_done && contains(window, b"data: [DONE]") {
            self.saw_done = true;
        }
        self.scanned = payload.len();
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn parse_head(buf: &[u8]) -> Result<Option<(u16, usize, Framing, bool)>, ErrorKind> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ErrorKind::Protocol),
    };
    let status = resp.code.unwrap_or(0);
    let mut keep_alive = resp.version == Some(1);
    let mut framing = Framing::UntilClose;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(ErrorKind::Protocol)?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(len);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.eq_ignore_ascii_case(b"chunked") || h.value.ends_with(b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        framing = Framing::Empty;
    }
    Ok(Some((status, head_len, framing, keep_alive)))
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionAborted
    )
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    if is_reset(e) {
        ErrorKind::Reset
    } else {
        ErrorKind::Io
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn scanner_finds_markers_split_across_reads() {
        let mut s = SseScanner::default();
        let mut payload = b"da".to_vec();
        s.scan(&payload);
        assert!(s.first_event.is_none());
        payload.extend_from_slice(b"ta: {}\n\ndata: [DO");
        s.scan(&payload);
        assert!(s.first_event.is_some());
        assert!(!s.saw_done);
        payload.extend_from_slice(b"NE]\n\n");
        s.scan(&payload);
        assert!(s.saw_done);
    }

    #[test]
    fn head_parsing_picks_framing_and_keep_alive() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n";
        let Some((status, len, Framing::Length(12), true)) = parse_head(head).unwrap() else {
            panic!("expected a kept-alive 12-byte body");
        };
        assert_eq!((status, len), (200, head.len()));
        let head = b"HTTP/1.1 503 x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
        assert!(matches!(
            parse_head(head).unwrap(),
            Some((503, _, Framing::Chunked, false))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap(),
            Some((200, _, Framing::UntilClose, false))
        ));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
            .unwrap()
            .is_none());
        assert_eq!(
            parse_head(b"NOT HTTP\r\n\r\n").err(),
            Some(ErrorKind::Protocol)
        );
    }
}
