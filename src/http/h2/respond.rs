//! [`H2Responder`]: the response of one HTTP/2 stream, written as the HTTP/1.1 bytes every
//! other response is written as, and sent as HTTP/2 frames.
//!
//! The proxy has one way of writing a response (a head from `ResponseHead`, then a body with
//! Content-Length or as chunks). Rather than a second writer for HTTP/2, the responder reads
//! that output back: the head becomes a HEADERS frame (without the headers HTTP/2 forbids),
//! the body's framing is removed, and the payload goes out in DATA frames within the
//! client's flow-control window. Parsing our own head costs well under a microsecond; the
//! payload is copied once into the frame's `Bytes`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::SendStream;
use monoio::buf::{IoBuf, IoVecBuf};
use monoio::BufResult;

use crate::http::ChunkedDecoder;

/// The largest response head the responder accepts (the gateway writes its own heads).
const MAX_HEAD: usize = 64 * 1024;
/// Headers a response may carry.
const MAX_HEADERS: usize = 128;

/// Where the stream's sending side is.
enum Sending {
    /// Nothing sent: the head is due.
    Head(SendResponse<Bytes>),
    /// The head went out; the body is being sent.
    Body(SendStream<Bytes>),
    /// The stream ended (or failed).
    Done,
}

/// How the rest of the body is framed in the bytes still to come.
enum Framing {
    /// The head is not complete yet.
    Head,
    /// This many payload bytes are left.
    Length(usize),
    /// Chunked: decoded as it comes.
    Chunked(ChunkedDecoder),
    /// The body ended; anything more is dropped.
    Ended,
}

/// The response side of one HTTP/2 stream. Written like a socket (`AsyncWriteRent`).
pub struct H2Responder {
    sending: RefCell<Sending>,
    framing: Framing,
    /// Head bytes gathered until the blank line.
    head: Vec<u8>,
}

impl H2Responder {
    /// The responder for a stream whose request arrived with `respond`.
    pub fn new(respond: SendResponse<Bytes>) -> Self {
        Self {
            sending: RefCell::new(Sending::Head(respond)),
            framing: Framing::Head,
            head: Vec::new(),
        }
    }

    /// Resolves when the client resets the stream or the connection fails; never while the
    /// stream is open and well.
    pub async fn reset(&self) {
        poll_fn(|cx| {
            let Ok(mut sending) = self.sending.try_borrow_mut() else {
                return std::task::Poll::Pending;
            };
            match &mut *sending {
                Sending::Head(r) => r.poll_reset(cx).map(|_| ()),
                Sending::Body(s) => s.poll_reset(cx).map(|_| ()),
                Sending::Done => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// Whether the whole response went out.
    pub fn is_complete(&self) -> bool {
        matches!(self.framing, Framing::Ended)
    }

    /// Takes `bytes` of the HTTP/1.1 response; all of them are consumed.
    async fn take(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if matches!(self.framing, Framing::Head) {
            let start = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(bytes);
            let Some(end) =
                memchr::memmem::find(self.head.get(start..).unwrap_or_default(), b"\r\n\r\n")
                    .map(|i| start + i + 4)
            else {
                if self.head.len() > MAX_HEAD {
                    return Err(invalid("response head too large"));
                }
                return Ok(());
            };
            let head = std::mem::take(&mut self.head);
            let body_start = bytes.len() - (head.len() - end);
            bytes = bytes.get(body_start..).unwrap_or_default();
            self.send_head(head.get(..end).unwrap_or_default())?;
        }
        self.take_body(bytes).await
    }

    /// Sends the head as HEADERS; an empty body ends the stream with it.
    fn send_head(&mut self, head: &[u8]) -> io::Result<()> {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut storage);
        match parsed.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(invalid("unparsable response head")),
        }
        let status = parsed
            .code
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .ok_or_else(|| invalid("bad status"))?;
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        let mut framing = Framing::Length(0);
        for h in parsed.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("transfer-encoding") {
                framing = Framing::Chunked(ChunkedDecoder::new());
            } else if name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| invalid("bad content-length"))?;
                framing = Framing::Length(n);
            }
            if super::is_connection_specific(name, h.value) {
                continue;
            }
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(h.value),
            ) else {
                continue;
            };
            response.headers_mut().append(name, value);
        }
        let ends_now = matches!(framing, Framing::Length(0));
        let sending = std::mem::replace(self.sending.get_mut(), Sending::Done);
        let Sending::Head(mut respond) = sending else {
            return Err(invalid("a second response head"));
        };
        let stream = respond.send_response(response, ends_now).map_err(h2_io)?;
        if ends_now {
            self.framing = Framing::Ended;
        } else {
            *self.sending.get_mut() = Sending::Body(stream);
            self.framing = framing;
        }
        Ok(())
    }

    /// Removes the body's framing from `bytes` and sends the payload.
    async fn take_body(&mut self, bytes: &[u8]) -> io::Result<()> {
        let (payload, ends) = match &mut self.framing {
            Framing::Head | Framing::Ended => return Ok(()),
            Framing::Length(left) => {
                let n = bytes.len().min(*left);
                *left -= n;
                (
                    Bytes::copy_from_slice(bytes.get(..n).unwrap_or_default()),
                    *left == 0,
                )
            }
            Framing::Chunked(decoder) => {
                let mut payload = BytesMut::with_capacity(bytes.len());
                decoder
                    .feed(bytes, |data| payload.extend_from_slice(data))
                    .map_err(|_| invalid("bad chunked framing in the response"))?;
                (payload.freeze(), decoder.is_done())
            }
        };
        if ends {
            self.framing = Framing::Ended;
        }
        let Sending::Body(stream) = self.sending.get_mut() else {
            return Ok(());
        };
        send_data(stream, payload, ends).await?;
        if ends {
            *self.sending.get_mut() = Sending::Done;
        }
        Ok(())
    }

    pub(crate) async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: an `IoBuf` is readable for `bytes_init` bytes from `read_ptr`, and the
        // buffer is held across the call.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = bytes.len();
        let res = self.take(bytes).await.map(|()| n);
        (res, buf)
    }

    pub(crate) async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let (ptr, count) = (buf.read_iovec_ptr(), buf.read_iovec_len());
        // SAFETY: an `IoVecBuf` points at `count` valid iovecs, each readable for its length.
        let iovecs = unsafe { std::slice::from_raw_parts(ptr, count) };
        let mut total = 0;
        for v in iovecs {
            // SAFETY: as above.
            let bytes = unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), v.iov_len) };
            if let Err(e) = self.take(bytes).await {
                return (Err(e), buf);
            }
            total += v.iov_len;
        }
        (Ok(total), buf)
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Ends the stream: a response cut short is reset, so the client can't take it for whole.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match std::mem::replace(self.sending.get_mut(), Sending::Done) {
            Sending::Body(mut s) => s.send_reset(h2::Reason::CANCEL),
            Sending::Head(mut r) => r.send_reset(h2::Reason::CANCEL),
            Sending::Done => {}
        }
        Ok(())
    }
}

impl Drop for H2Responder {
    fn drop(&mut self) {
        // A stream dropped before its end is cancelled rather than left open.
        match std::mem::replace(self.sending.get_mut(), Sending::Done) {
            Sending::Body(mut s) => s.send_reset(h2::Reason::CANCEL),
            Sending::Head(mut r) => r.send_reset(h2::Reason::INTERNAL_ERROR),
            Sending::Done => {}
        }
    }
}

/// Sends `data` as the client's flow-control window allows; `end` ends the stream with it.
async fn send_data(stream: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> io::Result<()> {
    let mut ended = false;
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(h2_io(e)),
            None => return Err(io::ErrorKind::BrokenPipe.into()),
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        ended = end && data.is_empty();
        stream.send_data(piece, ended).map_err(h2_io)?;
    }
    if end && !ended {
        // An empty payload still has to carry the end of the stream.
        stream.send_data(Bytes::new(), true).map_err(h2_io)?;
    }
    Ok(())
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn h2_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io()
            .unwrap_or_else(|| io::ErrorKind::BrokenPipe.into())
    } else {
        io::Error::new(io::ErrorKind::BrokenPipe, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on_local as run;
    use monoio::io::IntoPollIo;

    /// Answers one request with `writes` (HTTP/1.1 bytes, in those pieces) through an
    /// `H2Responder`, and returns what an HTTP/2 client got: status, headers, body.
    fn exchange(writes: Vec<Vec<u8>>) -> (u16, http::HeaderMap, Vec<u8>) {
        run(async move {
            let (a, b) = monoio::net::UnixStream::pair().unwrap();
            let (a, b) = (a.into_poll_io().unwrap(), b.into_poll_io().unwrap());
            let done = std::rc::Rc::new(std::cell::Cell::new(false));
            let answered = done.clone();
            monoio::spawn(async move {
                let mut conn = h2::server::handshake(a).await.unwrap();
                let (_request, respond) = conn.accept().await.unwrap().unwrap();
                monoio::spawn(async move {
                    let mut r = H2Responder::new(respond);
                    for w in writes {
                        let (res, _) = r.write(w).await;
                        res.unwrap();
                    }
                    answered.set(r.is_complete());
                });
                // Drive the connection for as long as the client keeps it.
                while let Some(Ok(_)) = conn.accept().await {}
            });
            let (mut client, conn) = h2::client::handshake(b).await.unwrap();
            monoio::spawn(async move {
                let _ = conn.await;
            });
            let request = http::Request::get("http://x/").body(()).unwrap();
            let (response, _) = client.send_request(request, true).unwrap();
            let response = response.await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let mut body = response.into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            assert!(body.is_end_stream());
            // The responder's last write has returned by now, or does at its next turn.
            monoio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(
                done.get(),
                "the responder did not see its response complete"
            );
            (status, headers, got)
        })
    }

    #[test]
    fn a_whole_response_in_pieces_becomes_headers_and_data() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-infergate-request-id: 7\r\ncontent-length: 11\r\nconnection: close\r\n\r\n";
        // The head split inside its blank line, the body across writes.
        let (a, b) = head.split_at(head.len() - 2);
        let (status, headers, body) = exchange(vec![
            a.to_vec(),
            [b, &b"{\"ok\""[..]].concat(),
            b":true}".to_vec(),
        ]);
        assert_eq!(status, 200);
        assert_eq!(body, b"{\"ok\":true}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-infergate-request-id"], "7");
        assert!(headers.get("connection").is_none());
    }

    #[test]
    fn a_chunked_stream_loses_its_framing() {
        let (status, headers, body) = exchange(vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
            b"9\r\ndata: 1\n\n\r\n".to_vec(),
            b"9\r\ndata: 2\n\n\r\n0\r\n".to_vec(),
            b"\r\n".to_vec(),
        ]);
        assert_eq!(status, 200);
        assert_eq!(body, b"data: 1\n\ndata: 2\n\n");
        assert!(headers.get("transfer-encoding").is_none());
    }

    #[test]
    fn an_empty_body_ends_with_the_headers() {
        let (status, _, body) = exchange(vec![
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n"
                .to_vec(),
        ]);
        assert_eq!(status, 429);
        assert!(body.is_empty());
    }
}
