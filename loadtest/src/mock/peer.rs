//! Where a handler's answer goes: an HTTP/1.1 connection, or one HTTP/2 stream.
//!
//! Handlers write HTTP/1.1 responses (a head, then a `content-length` or chunked body), the
//! same for both protocols, so every dialect, knob and fault works over HTTP/2 unchanged.
//! For an HTTP/2 stream, [`H2Peer`] turns those bytes into the h2 response as they are
//! written: the head into HEADERS (connection headers dropped), each chunk's payload into a
//! DATA frame at once (token pacing is kept), the end of the body into END_STREAM. A reset
//! resets the stream (RST_STREAM), not the connection the other streams share.

use std::os::fd::AsRawFd;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http1::ChunkedDecoder;

/// How long a mid-stream reset waits for the stream's queued DATA to be written.
const RESET_AFTER_FLUSH: std::time::Duration = std::time::Duration::from_millis(20);

/// The client end a handler answers.
pub enum Peer<'a> {
    /// An HTTP/1.1 connection: bytes go out as they are.
    Tcp(&'a mut TcpStream),
    /// One HTTP/2 stream.
    H2(H2Peer),
}

impl Peer<'_> {
    /// Writes all of `out` (HTTP/1.1 response bytes).
    pub async fn write_all(&mut self, out: Vec<u8>) -> std::io::Result<()> {
        match self {
            Peer::Tcp(stream) => {
                let (res, _) = stream.write_all(out).await;
                res.map(|_| ())
            }
            Peer::H2(peer) => peer.write(out),
        }
    }

    /// Arms a reset: over HTTP/1.1, a TCP reset when the connection is dropped (SO_LINGER
    /// zero); over HTTP/2, RST_STREAM at once.
    pub fn reset(&mut self) {
        match self {
            Peer::Tcp(stream) => {
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: valid fd owned by `stream`; `linger` outlives the call.
                unsafe {
                    libc::setsockopt(
                        stream.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        std::ptr::addr_of!(linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
            }
            Peer::H2(peer) => peer.reset(),
        }
    }

    /// Waits until the client goes away: closes the connection (HTTP/1.1) or cancels the
    /// stream (HTTP/2). A stalled provider.
    pub async fn wait_for_client_to_leave(&mut self) {
        match self {
            Peer::Tcp(stream) => {
                let mut buf = vec![0u8; 4096];
                loop {
                    let (res, b) = stream.read(buf).await;
                    buf = b;
                    match res {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            }
            Peer::H2(peer) => peer.wait_for_reset().await,
        }
    }
}

/// How much of the HTTP/1.1 response an [`H2Peer`] has seen.
enum Body {
    /// The head is not complete yet.
    Head,
    /// `content-length` bytes still to come.
    Length(usize),
    /// A chunked body, being decoded.
    Chunked(ChunkedDecoder),
    /// The stream has ended (or was reset): later bytes are dropped.
    Done,
}

/// One HTTP/2 stream answered from HTTP/1.1 response bytes.
pub struct H2Peer {
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    head: Vec<u8>,
    body: Body,
}

impl H2Peer {
    /// The answer to the stream `respond` belongs to.
    pub fn new(respond: SendResponse<Bytes>) -> Self {
        Self {
            respond,
            send: None,
            head: Vec::new(),
            body: Body::Head,
        }
    }

    /// Whether the handler ended the stream (a body written to its end, or a reset).
    pub fn is_done(&self) -> bool {
        matches!(self.body, Body::Done)
    }

    fn write(&mut self, out: Vec<u8>) -> std::io::Result<()> {
        let rest = if matches!(self.body, Body::Head) {
            self.head.extend_from_slice(&out);
            let Some((response, framing, used)) = parse_head(&self.head)? else {
                return Ok(());
            };
            let rest = self.head.split_off(used);
            self.head = Vec::new();
            let end = matches!(framing, Body::Length(0));
            let send = self
                .respond
                .send_response(response, end)
                .map_err(std::io::Error::other)?;
            self.send = Some(send);
            self.body = if end { Body::Done } else { framing };
            rest
        } else {
            out
        };
        self.body_bytes(rest)
    }

    /// Sends the payload `data` carries (in the body's framing) as DATA, ending the stream
    /// with the body.
    fn body_bytes(&mut self, data: Vec<u8>) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let (payload, end) = match &mut self.body {
            Body::Head | Body::Done => return Ok(()),
            Body::Length(left) => {
                let mut data = Bytes::from(data);
                data.truncate(*left);
                *left -= data.len();
                (data, *left == 0)
            }
            Body::Chunked(decoder) => {
                let mut payload = Vec::with_capacity(data.len());
                decoder
                    .feed(&data, &mut payload)
                    .map_err(|_| std::io::Error::other("bad chunked answer"))?;
                (Bytes::from(payload), decoder.is_done())
            }
        };
        if end {
            self.body = Body::Done;
        }
        if payload.is_empty() && !end {
            return Ok(());
        }
        let send = self
            .send
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no response sent"))?;
        send.send_data(payload, end).map_err(std::io::Error::other)
    }

    fn reset(&mut self) {
        match self.send.take() {
            // DATA already queued goes out first (h2 drops a reset stream's queue, where
            // HTTP/1.1 had written those bytes): the reset follows once the connection task
            // has had its turn to write.
            Some(mut send) => {
                monoio::spawn(async move {
                    monoio::time::sleep(RESET_AFTER_FLUSH).await;
                    send.send_reset(Reason::INTERNAL_ERROR);
                });
            }
            None => self.respond.send_reset(Reason::INTERNAL_ERROR),
        }
        self.body = Body::Done;
    }

    async fn wait_for_reset(&mut self) {
        let _ = std::future::poll_fn(|cx| match &mut self.send {
            Some(send) => send.poll_reset(cx),
            None => self.respond.poll_reset(cx),
        })
        .await;
    }

    /// Called when the handler is done: a stream it did not end (a failed write, a fault
    /// that dropped the connection) is reset, as HTTP/1.1 would drop the connection.
    pub fn finish(&mut self) {
        if !self.is_done() {
            self.reset();
        }
    }
}

/// The h2 response for a complete HTTP/1.1 head at the start of `buf`, its body framing
/// and the head's length; `None` while the head is incomplete.
fn parse_head(buf: &[u8]) -> std::io::Result<Option<(http::Response<()>, Body, usize)>> {
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut storage);
    let used = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let mut response = http::Response::new(());
    *response.status_mut() =
        http::StatusCode::from_u16(resp.code.unwrap_or(500)).map_err(std::io::Error::other)?;
    let mut framing = Body::Length(0);
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            framing = Body::Chunked(ChunkedDecoder::new());
            continue;
        }
        if name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other("bad content-length"))?;
            framing = Body::Length(n);
        }
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(std::io::Error::other)?;
        let value = http::HeaderValue::from_bytes(h.value).map_err(std::io::Error::other)?;
        response.headers_mut().append(name, value);
    }
    Ok(Some((response, framing, used)))
}
