//! One call over HTTP/2, on a connection of the shard's [`super::H2Pool`].
//!
//! The rest of the proxy reads a provider's answer as an HTTP/1.1 response: a
//! [`UpstreamResponseHead`] and an [`UpstreamConn`] whose reads yield the body, unframed by
//! its [`BodyKind`]. An HTTP/2 answer takes the same shape without being re-encoded:
//!
//! - the request is the HTTP/1.1 head the client half builds (credentials, SigV4, allowed
//!   client headers: one place decides what a provider is sent), parsed back into an h2
//!   request: the request line and `host` become the pseudo-headers, connection-specific
//!   headers are dropped, the body's slices go out as DATA frames without a copy;
//! - the response head comes from the h2 response headers directly (no HTTP/1.1 text is
//!   rendered and parsed), bounded as the HTTP/1.1 client bounds a head;
//! - the body is [`UpstreamIo::H2`]: a read copies the next DATA payload (h2 hands it over
//!   as `Bytes`, sliced from its read buffer) into the reader's buffer, the one copy the
//!   HTTP/1.1 path makes too, and releases that much flow-control window, so the provider
//!   sends no further ahead than the client reads. The body is framed `Content-Length`
//!   when the provider said so and by the end of the stream otherwise (the reads end at
//!   `END_STREAM`; a reset is an error, never an end), so the relay and the whole-body reader
//!   work unchanged and an SSE stream passes DATA frame by DATA frame. The head says the
//!   connection is not reusable: nothing pools an HTTP/2 exchange.
//!
//! Timeouts: the connect timeout bounds opening a connection (or waiting for the one being
//! opened), the first-byte timeout bounds waiting for a stream and the response head (and,
//! when it fires, retires the connection for later calls), and the idle and total timeouts
//! bound the body reads where the HTTP/1.1 body's are.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use monoio::buf::IoBufMut;
use monoio::BufResult;

use super::call::{UpstreamBody, UpstreamResponse};
use super::client::{BodyKind, UpstreamResponseHead};
use super::conn::{UpstreamConn, UpstreamIo};
use super::error::UpstreamError;
use super::h2pool::{Checkout, ConnState, H2Pool, SharedConn};
use super::registry::UpstreamLink;
use crate::http::h2::is_connection_specific;
use crate::http::HeaderList;
use crate::route::{Provider, Scheme};

/// Most headers in a provider's response (as the HTTP/1.1 client parses).
const MAX_RESPONSE_HEADERS: usize = 128;

/// Calls `provider` over HTTP/2 with the request `head` (HTTP/1.1 text, as
/// [`super::http`] builds it) and `body`. `Ok(None)`: the provider chose HTTP/1.1 in ALPN,
/// use that path. A call whose connection, already used by earlier calls, turns out dead
/// before the response is tried once more on a new connection (as a stale keep-alive
/// connection is); otherwise such a failure is the connect-class error the attempt fails
/// over on.
pub(super) async fn call(
    pool: &H2Pool,
    provider: &Provider,
    link: &UpstreamLink,
    head: &[u8],
    body: &UpstreamBody,
) -> Result<Option<UpstreamResponse>, UpstreamError> {
    let template = RequestTemplate::parse(provider, head)?;
    let mut retried = false;
    loop {
        let (conn, reused) = match pool.checkout(provider, link).await? {
            Checkout::Http1 => return Ok(None),
            Checkout::Conn { conn, reused } => (conn, reused),
        };
        let exchange = exchange(&conn, template.request(), body);
        let result = monoio::time::timeout(provider.first_byte_timeout, exchange)
            .await
            .unwrap_or(Err(Failed::Stream(UpstreamError::FirstByteTimeout)));
        match result {
            Ok(response) => return response_for(response, conn.state).map(Some),
            Err(Failed::Connection) => {
                conn.state.close();
                if reused && !retried {
                    tracing::debug!(provider = %provider.name, "shared HTTP/2 connection lost; reconnecting");
                    retried = true;
                    continue;
                }
                return Err(UpstreamError::ClosedBeforeResponse);
            }
            Err(Failed::Stream(e)) => {
                if matches!(e, UpstreamError::FirstByteTimeout) {
                    // A connection gone silent (no FIN, no RST) would stall every later
                    // call as well: later calls get a new one, as a timed-out HTTP/1.1
                    // connection is dropped; streams already on this one go on.
                    conn.state.close();
                }
                return Err(e);
            }
        }
    }
}

/// How an exchange failed.
enum Failed {
    /// The connection died or is going away (GOAWAY, I/O error): the request was not
    /// answered and the connection can't take more.
    Connection,
    /// This call failed (stream reset, timeout, invalid answer); the connection may live.
    Stream(UpstreamError),
}

/// Sorts an h2 error into a dead connection or a failed stream.
fn classify(e: h2::Error) -> Failed {
    if e.is_io() || e.is_go_away() {
        tracing::debug!(error = %e, "HTTP/2 connection failed under a call");
        Failed::Connection
    } else {
        Failed::Stream(UpstreamError::Http2(e))
    }
}

/// Opens a stream, sends the request and its body, and waits for the response head.
async fn exchange(
    conn: &SharedConn,
    request: http::Request<()>,
    body: &UpstreamBody,
) -> Result<http::Response<h2::RecvStream>, Failed> {
    let mut send = conn.send.clone().ready().await.map_err(classify)?;
    let parts: Vec<&Bytes> = body.parts().iter().filter(|p| !p.is_empty()).collect();
    let (response, mut stream) = send
        .send_request(request, parts.is_empty())
        .map_err(classify)?;
    let last = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        // Buffered by h2 and sent as the provider's window allows; `Bytes` clones share
        // the client's body.
        stream
            .send_data(part.clone(), i + 1 == last)
            .map_err(classify)?;
    }
    response.await.map_err(classify)
}

/// The parts of the h2 request, kept to build it again for a retry.
struct RequestTemplate {
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl RequestTemplate {
    /// Parses the HTTP/1.1 request `head` built for `provider`.
    fn parse(provider: &Provider, head: &[u8]) -> Result<Self, UpstreamError> {
        let lines = head.windows(2).filter(|w| *w == b"\r\n").count();
        let mut storage = vec![httparse::EMPTY_HEADER; lines];
        let mut req = httparse::Request::new(&mut storage);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(UpstreamError::Http2Request("request head not parsable")),
        }
        let addr = provider.addr.as_ref().ok_or(UpstreamError::NoAddress)?;
        let scheme = match addr.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(addr.authority.as_str())
            .path_and_query(req.path.unwrap_or("/"))
            .build()
            .map_err(|_| UpstreamError::Http2Request("invalid request target"))?;
        let mut headers = http::HeaderMap::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            if is_connection_specific(h.name, h.value) {
                continue;
            }
            // A client header HTTP/2 can't carry is left out, as one the provider's
            // allow-list refuses would be.
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(h.name.as_bytes()),
                HeaderValue::from_bytes(h.value),
            ) else {
                tracing::debug!(header = h.name, "header not valid in HTTP/2; not sent");
                continue;
            };
            headers.append(name, value);
        }
        Ok(Self { uri, headers })
    }

    /// The request, ready to send.
    fn request(&self) -> http::Request<()> {
        let mut req = http::Request::new(());
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = http::Version::HTTP_2;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// The proxy's view of an h2 response: its head, and a connection that reads its body.
fn response_for(
    response: http::Response<h2::RecvStream>,
    state: Rc<ConnState>,
) -> Result<UpstreamResponse, UpstreamError> {
    let (parts, recv) = response.into_parts();
    let head = response_head(parts.status.as_u16(), &parts.headers)?;
    Ok(UpstreamResponse {
        head,
        conn: UpstreamConn {
            io: UpstreamIo::H2(Box::new(H2Body {
                recv,
                pending: Bytes::new(),
                state,
            })),
            buf: BytesMut::new(),
            reused: false,
        },
    })
}

/// The response head from the h2 status and headers: the headers are laid out in one
/// buffer (`name: value` lines) that the head's [`HeaderList`] slices, as it slices an
/// HTTP/1.1 head.
fn response_head(
    status: u16,
    headers: &http::HeaderMap,
) -> Result<UpstreamResponseHead, UpstreamError> {
    if headers.len() > MAX_RESPONSE_HEADERS {
        return Err(UpstreamError::Malformed("too many response headers"));
    }
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let mut raw = BytesMut::with_capacity(size);
    let mut spans = Vec::with_capacity(headers.len());
    let pos = |raw: &BytesMut| u32::try_from(raw.len()).unwrap_or(u32::MAX);
    for (name, value) in headers {
        let n = pos(&raw);
        raw.extend_from_slice(name.as_str().as_bytes());
        raw.extend_from_slice(b": ");
        let v = pos(&raw);
        raw.extend_from_slice(value.as_bytes());
        raw.extend_from_slice(b"\r\n");
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(0);
        spans.push((n, len(name.as_str().as_bytes()), v, len(value.as_bytes())));
    }
    let headers = HeaderList::from_spans(raw.freeze(), spans);
    // h2 checks DATA against a content-length; without one the stream's end ends the body.
    let length = headers
        .get_str("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        BodyKind::Empty
    } else {
        match length {
            Some(0) => BodyKind::Empty,
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        }
    };
    Ok(UpstreamResponseHead {
        status,
        headers,
        body,
        keep_alive: false,
    })
}

/// The body of an HTTP/2 response, read through [`UpstreamIo::H2`].
pub struct H2Body {
    recv: h2::RecvStream,
    /// The rest of the last DATA payload, when the reader's buffer had less room.
    pending: Bytes,
    state: Rc<ConnState>,
}

impl H2Body {
    /// Copies the next body bytes into `buf`'s spare room and releases their flow-control
    /// window. `Ok(0)` is the end of the stream; a reset or a dead connection is an error.
    pub(super) async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let room = buf.bytes_total();
        if room == 0 {
            return (Err(std::io::ErrorKind::InvalidInput.into()), buf);
        }
        while self.pending.is_empty() {
            match self.recv.data().await {
                None => return (Ok(0), buf),
                Some(Err(e)) => {
                    let msg = e.to_string();
                    let io = e.into_io().unwrap_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::ConnectionReset, msg)
                    });
                    return (Err(io), buf);
                }
                // An empty DATA frame is not the end: only END_STREAM is.
                Some(Ok(data)) => self.pending = data,
            }
        }
        let n = room.min(self.pending.len());
        let chunk = self.pending.split_to(n);
        // SAFETY: `write_ptr` points at `bytes_total()` writable bytes and `n` is at most
        // that; `chunk` is another allocation; the `n` bytes are initialized before
        // `set_init` says so.
        unsafe {
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
        let _ = self.recv.flow_control().release_capacity(n);
        (Ok(n), buf)
    }
}

impl Drop for H2Body {
    /// The connection was in use until now: its idle time starts here.
    fn drop(&mut self) {
        self.state.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderConfig;
    use crate::upstream::read_full_body;
    use monoio::io::IntoPollIo;
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    /// An h2c server that answers every stream `hello` and, after its first answer on a
    /// connection, says GOAWAY (graceful shutdown); counts the connections it accepted.
    fn goaway_server() -> (std::net::SocketAddr, Rc<Cell<usize>>) {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Rc::new(Cell::new(0));
        let count = Rc::clone(&accepted);
        monoio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.set(count.get() + 1);
                let io = s.into_poll_io().unwrap();
                monoio::spawn(async move {
                    let mut conn = h2::server::handshake(io).await.unwrap();
                    let mut first = true;
                    while let Some(Ok((_req, mut respond))) = conn.accept().await {
                        let mut send = respond
                            .send_response(http::Response::new(()), false)
                            .unwrap();
                        send.send_data(Bytes::from_static(b"hello"), true).unwrap();
                        if std::mem::take(&mut first) {
                            conn.graceful_shutdown();
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[test]
    fn a_call_reads_its_answer_and_the_next_reconnects_after_goaway() {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .unwrap()
            .block_on(async {
                let (addr, accepted) = goaway_server();
                let cfg = ProviderConfig {
                    http2: true,
                    connect_timeout_ms: 2000,
                    first_byte_timeout_ms: 2000,
                    ..ProviderConfig::openai_for_tests(&format!("http://{addr}/v1"))
                };
                let p = Provider::compile("p", &cfg).unwrap();
                let link = UpstreamLink::build(&p).unwrap();
                let pool = H2Pool::default();
                let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 2\r\n\r\n");
                let body = UpstreamBody::whole(Bytes::from_static(b"{}"));
                for _ in 0..2 {
                    let mut r = call(&pool, &p, &link, head.as_bytes(), &body)
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(r.head.status, 200);
                    assert_eq!(r.head.body, BodyKind::UntilClose);
                    let deadline = Instant::now() + Duration::from_secs(2);
                    let got = read_full_body(&mut r.conn, r.head.body, 1024, deadline)
                        .await
                        .unwrap();
                    assert_eq!(&got[..], b"hello");
                    // The GOAWAY arrives and the connection closes.
                    monoio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(accepted.get(), 2);
            });
    }

    fn provider(url: &str) -> Provider {
        Provider::compile("p", &ProviderConfig::openai_for_tests(url)).unwrap()
    }

    #[test]
    fn the_http1_head_becomes_pseudo_headers_and_loses_connection_headers() {
        let p = provider("https://api.example.com:8443/v1");
        let head = b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: api.example.com:8443\r\ncontent-type: application/json\r\ncontent-length: 2\r\nConnection: keep-alive\r\nTE: gzip\r\nkeep-alive: 5\r\nX-Custom: a\r\nx-custom: b\r\nauthorization: Bearer k\r\n\r\n";
        let t = RequestTemplate::parse(&p, head).unwrap();
        let req = t.request();
        assert_eq!(
            req.uri().to_string(),
            "https://api.example.com:8443/v1/chat/completions?x=1"
        );
        assert_eq!(req.method(), http::Method::POST);
        let h = req.headers();
        for gone in ["host", "connection", "te", "keep-alive"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_eq!(h.get_all("x-custom").iter().count(), 2);
        assert_eq!(h["authorization"], "Bearer k");
        assert_eq!(h["content-length"], "2");
    }

    #[test]
    fn te_trailers_is_the_one_te_kept() {
        let p = provider("http://127.0.0.1:9/v1");
        let head = b"POST /v1/x HTTP/1.1\r\nhost: 127.0.0.1:9\r\nte: trailers\r\n\r\n";
        let t = RequestTemplate::parse(&p, head).unwrap();
        assert_eq!(t.request().headers()["te"], "trailers");
        assert_eq!(t.request().uri().scheme_str(), Some("http"));
    }

    #[test]
    fn a_response_head_is_framed_by_its_length_or_its_end() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("7"),
        );
        let head = response_head(200, &h).unwrap();
        assert_eq!(head.body, BodyKind::UntilClose);
        assert!(!head.keep_alive);
        assert!(head.is_event_stream());
        assert_eq!(
            head.headers.get("x-ratelimit-remaining-requests"),
            Some(&b"7"[..])
        );
        h.insert("content-length", HeaderValue::from_static("12"));
        assert_eq!(response_head(200, &h).unwrap().body, BodyKind::Length(12));
        assert_eq!(response_head(204, &h).unwrap().body, BodyKind::Empty);
        h.insert("content-length", HeaderValue::from_static("0"));
        assert_eq!(response_head(200, &h).unwrap().body, BodyKind::Empty);
    }

    #[test]
    fn too_many_response_headers_are_refused() {
        let mut h = http::HeaderMap::new();
        for i in 0..=MAX_RESPONSE_HEADERS {
            h.append(
                HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert!(matches!(
            response_head(200, &h),
            Err(UpstreamError::Malformed(_))
        ));
    }
}
