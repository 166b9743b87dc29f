//! A parsed request head whose strings are slices of one frozen `Bytes` (no copies).

use bytes::Bytes;

/// The request methods the gateway serves (others are answered 405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// HEAD
    Head,
    /// PATCH (the admin API's updates)
    Patch,
    /// DELETE (the admin API's revocations)
    Delete,
    /// Anything else.
    Other,
}

impl Method {
    fn parse(s: &str) -> Self {
        match s {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }
}

/// Header names and values as ranges into the head's bytes.
#[derive(Debug, Clone, Default)]
pub struct HeaderList {
    raw: Bytes,
    spans: Vec<(u32, u32, u32, u32)>,
}

/// Spans of httparse's headers relative to `base`, the buffer they were parsed from.
pub(crate) fn header_spans(
    base: &[u8],
    headers: &[httparse::Header<'_>],
) -> Vec<(u32, u32, u32, u32)> {
    let base = base.as_ptr() as usize;
    headers
        .iter()
        .map(|h| {
            let n = h.name.as_ptr() as usize - base;
            let v = h.value.as_ptr() as usize - base;
            (
                n as u32,
                h.name.len() as u32,
                v as u32,
                h.value.len() as u32,
            )
        })
        .collect()
}

impl HeaderList {
    /// Builds a list over `raw` from spans captured by [`header_spans`] on the same bytes.
    pub(crate) fn from_spans(raw: Bytes, spans: Vec<(u32, u32, u32, u32)>) -> Self {
        Self { raw, spans }
    }

    /// The first value of a header (case-insensitive name).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.raw_pairs()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Whether any `name` header lists `token` among its comma-separated values
    /// (case-insensitive), as `Connection: keep-alive, close` does.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.raw_pairs()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .any(|(_, v)| {
                v.split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
    }

    /// The first value as text, when it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Names and values as bytes, for lookups: comparing bytes spares checking each name
    /// as UTF-8, and a request looks headers up dozens of times.
    fn raw_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(move |&(n, nl, v, vl)| {
            let name = self
                .raw
                .get(n as usize..(n + nl) as usize)
                .unwrap_or_default();
            let value = self
                .raw
                .get(v as usize..(v + vl) as usize)
                .unwrap_or_default();
            (name, value)
        })
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        // httparse validated header names as tokens (ASCII).
        self.raw_pairs()
            .map(|(name, value)| (std::str::from_utf8(name).unwrap_or(""), value))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// How a request body is delimited (see [`RequestHead::body_framing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// `Content-Length: n` (n > 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A `Content-Length` value: 1 to 19 ASCII digits (no sign, no space, no overflow).
fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A request head: method, path, version and headers.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    path: (u32, u32),
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The headers.
    pub headers: HeaderList,
}

/// Where a parsed head's parts are, as (offset, length) pairs into the head's bytes.
pub(crate) struct HeadSpans {
    pub method: (usize, usize),
    pub path: (usize, usize),
    pub version: u8,
    pub headers: Vec<(u32, u32, u32, u32)>,
}

impl HeadSpans {
    /// Records where httparse found each part of a head that lies in `buf`.
    pub fn capture(buf: &[u8], req: &httparse::Request<'_, '_>) -> Self {
        let base = buf.as_ptr() as usize;
        let span = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
        Self {
            method: req.method.map_or((0, 0), |m| span(m.as_bytes())),
            path: req.path.map_or((0, 0), |p| span(p.as_bytes())),
            version: req.version.unwrap_or(1),
            headers: header_spans(buf, req.headers),
        }
    }
}

impl RequestHead {
    /// Builds the head over `raw`, the frozen bytes the spans were captured in.
    pub(crate) fn from_spans(raw: Bytes, spans: HeadSpans) -> Self {
        let (mo, ml) = spans.method;
        let method = raw
            .get(mo..mo + ml)
            .and_then(|m| std::str::from_utf8(m).ok())
            .map_or(Method::Other, Method::parse);
        Self {
            method,
            path: (spans.path.0 as u32, spans.path.1 as u32),
            version: spans.version,
            headers: HeaderList {
                raw,
                spans: spans.headers,
            },
        }
    }

    /// Parses a whole request head (up to and including the blank line), as the server does;
    /// `None` when it is incomplete or invalid. For tools and tests that need a head without
    /// a socket.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let raw = Bytes::copy_from_slice(bytes);
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut storage);
        match req.parse(&raw) {
            Ok(httparse::Status::Complete(_)) => {
                let spans = HeadSpans::capture(&raw, &req);
                Some(Self::from_spans(raw.clone(), spans))
            }
            _ => None,
        }
    }

    /// The request target, query string included.
    pub fn target(&self) -> &str {
        let (p, l) = self.path;
        self.headers
            .raw
            .get(p as usize..(p + l) as usize)
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or("")
    }

    /// The path without the query string.
    pub fn path(&self) -> &str {
        let t = self.target();
        t.split_once('?').map_or(t, |(p, _)| p)
    }

    /// How the request's body is framed, checked as RFC 9112 §6 asks of a server that sits
    /// behind other proxies: at most one `Transfer-Encoding` header, whose only coding is
    /// `chunked`, and only on HTTP/1.1; `Content-Length` values of digits alone, all equal;
    /// never both. Anything else is refused, because two parsers that disagree on where a
    /// body ends let a second request hide inside the first.
    pub fn body_framing(&self) -> Result<BodyLength, &'static str> {
        let mut transfer_encoding = None;
        let mut length: Option<u64> = None;
        for (name, value) in self.headers.iter() {
            if name.eq_ignore_ascii_case("transfer-encoding") {
                if transfer_encoding.replace(value).is_some() {
                    return Err("more than one transfer-encoding header");
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                for part in value.split(|&b| b == b',') {
                    let n =
                        parse_content_length(part.trim_ascii()).ok_or("invalid content-length")?;
                    if length.is_some_and(|l| l != n) {
                        return Err("conflicting content-length values");
                    }
                    length = Some(n);
                }
            }
        }
        match (transfer_encoding, length) {
            (Some(_), Some(_)) => Err("both content-length and transfer-encoding"),
            (Some(_), None) if self.version == 0 => Err("transfer-encoding on HTTP/1.0"),
            (Some(te), None) if te.trim_ascii().eq_ignore_ascii_case(b"chunked") => {
                Ok(BodyLength::Chunked)
            }
            (Some(_), None) => Err("unsupported transfer-encoding (only chunked is accepted)"),
            (None, Some(0)) | (None, None) => Ok(BodyLength::Empty),
            (None, Some(n)) => Ok(BodyLength::Length(n)),
        }
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn wants_keep_alive(&self) -> bool {
        let has = |tok: &str| self.headers.has_token("connection", tok);
        if self.version == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}
