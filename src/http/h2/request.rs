//! An HTTP/2 request as the rest of the gateway sees requests: its head rendered as an
//! HTTP/1.1 head and parsed by the same parser under the same limits (so both protocols
//! refuse the same heads), and its body read from DATA frames under the body limits.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::RecvStream;

use crate::http::server::{parse_head, ServerLimits, LINGER, LINGER_BYTES};
use crate::http::{BodyPermit, HttpError, RequestHead};

/// Renders the request's head (method, target, `host` from `:authority`, headers) as
/// HTTP/1.1 and parses it under `limits`.
pub fn request_head(
    parts: &http::request::Parts,
    limits: &ServerLimits,
) -> Result<RequestHead, HttpError> {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut raw = BytesMut::with_capacity(256);
    raw.extend_from_slice(parts.method.as_str().as_bytes());
    raw.extend_from_slice(b" ");
    raw.extend_from_slice(target.as_bytes());
    raw.extend_from_slice(b" HTTP/1.1\r\n");
    if let (Some(authority), false) = (
        parts.uri.authority(),
        parts.headers.contains_key(http::header::HOST),
    ) {
        raw.extend_from_slice(b"host: ");
        raw.extend_from_slice(authority.as_str().as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        raw.extend_from_slice(name.as_str().as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.extend_from_slice(b"\r\n");
        if raw.len() > limits.max_header_bytes {
            return Err(HttpError::HeadTooLarge);
        }
    }
    raw.extend_from_slice(b"\r\n");
    match parse_head(&mut raw, limits)? {
        Some(head) => Ok(head),
        None => Err(HttpError::Malformed("incomplete request head")),
    }
}

/// Reads the request body from the stream's DATA frames, giving the flow-control window back
/// as it goes, within the body size limit, the body budget and `timeout`.
pub async fn read_body(
    body: &mut RecvStream,
    declared: Option<u64>,
    limits: &ServerLimits,
    permit: &mut BodyPermit,
    timeout: Duration,
) -> Result<Bytes, HttpError> {
    if let Some(n) = declared {
        let n = usize::try_from(n).map_err(|_| HttpError::BodyTooLarge)?;
        if n > limits.max_body_bytes {
            return Err(HttpError::BodyTooLarge);
        }
        if !permit.grow(n) {
            return Err(HttpError::Busy);
        }
    }
    let deadline = Instant::now() + timeout;
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or(HttpError::Timeout)?;
        let chunk = match monoio::time::timeout(left, body.data()).await {
            Err(_) => return Err(HttpError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(if e.is_io() || e.is_go_away() || e.is_reset() {
                    HttpError::Closed
                } else {
                    HttpError::Malformed("invalid HTTP/2 request body")
                })
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        let have = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if have + chunk.len() > limits.max_body_bytes {
            return Err(HttpError::BodyTooLarge);
        }
        if have + chunk.len() > permit.held() && !permit.grow(have + chunk.len() - permit.held()) {
            return Err(HttpError::Busy);
        }
        match &first {
            // The usual case, a body in one frame, is kept without a copy.
            None if rest.is_empty() => first = Some(chunk),
            _ => {
                if let Some(f) = first.take() {
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(match first {
        Some(f) => f,
        None => rest.freeze(),
    })
}

/// Reads and drops what is left of a request body the answer didn't need, within the bounds
/// an HTTP/1.1 connection lingers by ([`LINGER`], [`LINGER_BYTES`]); then the stream is dropped (and reset with NO_ERROR if still open).
pub async fn drain_body(body: &mut RecvStream) {
    if body.is_end_stream() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut drained = 0usize;
    while drained < LINGER_BYTES {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        match monoio::time::timeout(left, body.data()).await {
            Ok(Some(Ok(chunk))) => {
                drained += chunk.len();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits::from_config(&crate::config::ServerConfig::default())
    }

    fn parts(req: http::Request<()>) -> http::request::Parts {
        req.into_parts().0
    }

    #[test]
    fn renders_the_head_with_host_from_the_authority() {
        let req = http::Request::post("https://gw.example:8443/v1/chat/completions?x=1")
            .header("content-type", "application/json")
            .header("authorization", "Bearer k")
            .body(())
            .unwrap();
        let head = request_head(&parts(req), &limits()).unwrap();
        assert_eq!(head.target(), "/v1/chat/completions?x=1");
        assert_eq!(head.path(), "/v1/chat/completions");
        assert_eq!(head.headers.get("host"), Some(&b"gw.example:8443"[..]));
        assert_eq!(head.headers.get("authorization"), Some(&b"Bearer k"[..]));
    }

    #[test]
    fn refuses_heads_over_the_limits() {
        let mut l = limits();
        l.max_headers = 3;
        let mut req = http::Request::get("http://h/x");
        for i in 0..5 {
            req = req.header(format!("x-h{i}"), "v");
        }
        let err = request_head(&parts(req.body(()).unwrap()), &l).unwrap_err();
        assert!(matches!(err, HttpError::TooManyHeaders), "{err:?}");
        let mut l = limits();
        l.max_header_bytes = 100;
        let req = http::Request::get("http://h/x")
            .header("x-big", "v".repeat(200))
            .body(())
            .unwrap();
        let err = request_head(&parts(req), &l).unwrap_err();
        assert!(matches!(err, HttpError::HeadTooLarge), "{err:?}");
    }
}
