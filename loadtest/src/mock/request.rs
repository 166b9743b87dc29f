//! Reading one HTTP/1.1 request (head and body) from a keep-alive connection.

use monoio::net::TcpStream;

use super::config::{MockConfig, RequestKnobs};
use crate::http1::{read_more, ChunkedDecoder};

/// Largest request head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;

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
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, query) = (path.to_string(), query.to_string());
    let method_name = req.method.unwrap_or("").to_string();
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut keep_alive = req.version == Some(1);
    let mut framing = Framing::None;
    let mut knobs = Ok(RequestKnobs::from_config(config));
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
        } else if let Ok(k) = knobs.as_mut() {
            if let Err(e) = k.apply_header(h.name, h.value) {
                knobs = Err(e);
            }
        }
    }
    Ok(Some((
        Request {
            method,
            method_name,
            path,
            query,
            headers,
            keep_alive,
            knobs,
            body: Vec::new(),
        },
        framing,
        head_len,
    )))
}

impl Request {
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
