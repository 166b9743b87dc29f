//! Reading one HTTP/1.1 request (head and body) from a keep-alive connection.

use monoio::net::TcpStream;

use super::config::{MockConfig, RequestKnobs};
use crate::http1::{read_more, ChunkedDecoder};

/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body accepted (both protocols).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most headers in one request (both protocols).
pub const MAX_HEADERS: usize = 64;
/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The request methods the mock distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

/// A request read off the wire.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The method as sent (`POST`), for `GET /mock/last-request`.
    pub method_name: String,
    /// Path without the query string.
    pub path: String,
    /// The query string without `?` (empty when none).
    pub query: String,
    /// Every header, in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// False for `Connection: close` or HTTP/1.0 without keep-alive.
    pub keep_alive: bool,
    /// Knobs in effect, or why an `x-mock-*` header was rejected.
    pub knobs: Result<RequestKnobs, String>,
    pub body: Vec<u8>,
}

/// Why no request could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    #[error("connection closed")]
    Closed,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The request could not be parsed: answer 400 and close.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// Head or body over the limits: answer 413/431 and close.
    #[error("request too large")]
    TooLarge(u16),
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// A client connection with its read buffer (bytes past the current request are kept
/// for the next one, so pipelined requests work).
pub struct Connection {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Whether the client opened with the HTTP/2 connection preface (h2c with prior
    /// knowledge); reads only as far as it takes to tell, keeping what it read.
    pub async fn starts_with_h2_preface(&mut self) -> Result<bool, ReadError> {
        loop {
            let n = self.buf.len().min(H2_PREFACE.len());
            if self.buf.get(..n) != H2_PREFACE.get(..n) {
                return Ok(false);
            }
            if n == H2_PREFACE.len() {
                return Ok(true);
            }
            if self.fill().await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }

    /// The stream and the bytes read from it but not consumed.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf)
    }

    async fn fill(&mut self) -> Result<usize, ReadError> {
        let (res, buf) = read_more(&mut self.stream, std::mem::take(&mut self.buf)).await;
        self.buf = buf;
        Ok(res?)
    }

    /// Reads the next request.
    pub async fn read_request(&mut self, config: &MockConfig) -> Result<Request, ReadError> {
        let (mut request, framing, head_len) = loop {
            if !self.buf.is_empty() {
                if let Some(parsed) = parse_head(&self.buf, config)? {
                    break parsed;
                }
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(ReadError::TooLarge(431));
            }
            let n = self.fill().await?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Malformed("connection closed inside the request head")
                });
            }
        };
        let consumed = match framing {
            Framing::None => head_len,
            Framing::Length(len) => {
                if len > MAX_BODY_BYTES {
                    return Err(ReadError::TooLarge(413));
                }
                while self.buf.len() < head_len + len {
                    if self.fill().await? == 0 {
                        return Err(ReadError::Malformed("connection closed inside the body"));
                    }
                }
                request.body = self.buf[head_len..head_len + len].to_vec();
                head_len + len
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut pos = head_len;
                loop {
                    pos += decoder
                        .feed(&self.buf[pos..], &mut request.body)
                        .map_err(|_| ReadError::Malformed("bad chunked body"))?;
                    if decoder.is_done() {
                        break pos;
                    }
                    if request.body.len() > MAX_BODY_BYTES {
                        return Err(ReadError::TooLarge(413));
                    }
                    if self.fill().await? == 0 {
                        return Err(ReadError::Malformed("connection closed inside the body"));
                    }
                }
            }
        };
        self.buf.drain(..consumed);
        Ok(request)
    }
}

fn parse_head(
    buf: &[u8],
    config: &MockConfig,
) -> Result<Option<(Request, Framing, usize)>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::TooLarge(431)),
        Err(_) => return Err(ReadError::Malformed("invalid request head")),
    };
    let target = req.path.unwrap_or("/");
    let headers: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    let mut request = Request::new(req.method.unwrap_or(""), target, &headers, config);
    let mut keep_alive = req.version == Some(1);
    let mut framing = Framing::None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(ReadError::Malformed("invalid content-length"))?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(len);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if contains_token(h.value, b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_token(h.value, b"close") {
                keep_alive = false;
            } else if contains_token(h.value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    request.keep_alive = keep_alive;
    Ok(Some((request, framing, head_len)))
}

impl Request {
    /// A request from its method, target (path and query) and headers, with the knobs its
    /// `x-mock-*` headers set; HTTP/1.1 and HTTP/2 requests alike. Kept alive, body empty:
    /// the caller fills in both.
    pub fn new(
        method_name: &str,
        target: &str,
        headers: &[(&str, &[u8])],
        config: &MockConfig,
    ) -> Self {
        let method = match method_name {
            "GET" => Method::Get,
            "POST" => Method::Post,
            _ => Method::Other,
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut knobs = Ok(RequestKnobs::from_config(config));
        for (name, value) in headers {
            if let Ok(k) = knobs.as_mut() {
                if let Err(e) = k.apply_header(name, value) {
                    knobs = Err(e);
                }
            }
        }
        Request {
            method,
            method_name: method_name.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_ascii_lowercase(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            keep_alive: true,
            knobs,
            body: Vec::new(),
        }
    }

    /// The value of the first header called `name` (lowercase), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }

    /// The value of query parameter `name` (not percent-decoded: keys and model ids do
    /// not need it).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}
