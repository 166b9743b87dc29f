//! Writing answers: response heads, JSON bodies, SSE events in HTTP chunks, resets and stalls.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::peer::Peer;
use crate::http1::reason_phrase;

/// Whether the connection may serve another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read the next request on this connection.
    KeepAlive,
    /// Close the connection.
    Close,
}

impl Next {
    /// `KeepAlive` when the request allowed it.
    pub fn after(keep_alive: bool) -> Self {
        if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// The status line and headers of a response (`None` length: chunked).
pub fn response_head(
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    keep_alive: bool,
    extra: &str,
) -> String {
    let framing = match content_length {
        Some(len) => format!("content-length: {len}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_string(),
    };
    let connection = if keep_alive {
        ""
    } else {
        "connection: close\r\n"
    };
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n{framing}{connection}{extra}\r\n",
        reason_phrase(status)
    )
}

/// Writes a complete JSON response.
pub async fn write_json(
    stream: &mut Peer<'_>,
    status: u16,
    body: &[u8],
    keep_alive: bool,
    extra: &str,
) -> std::io::Result<Next> {
    let mut out = response_head(
        status,
        "application/json",
        Some(body.len()),
        keep_alive,
        extra,
    )
    .into_bytes();
    out.extend_from_slice(body);
    write(stream, out).await?;
    Ok(Next::after(keep_alive))
}

/// Writes all of `out`.
pub async fn write(stream: &mut Peer<'_>, out: Vec<u8>) -> std::io::Result<()> {
    stream.write_all(out).await
}

/// Appends one HTTP chunk holding `event` (an already framed SSE event).
pub fn push_chunk(out: &mut Vec<u8>, event: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
    out.extend_from_slice(event);
    out.extend_from_slice(b"\r\n");
}

/// The SSE event `data: JSON\n\n`, with an `event: NAME` line first when named.
pub fn sse_event(name: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out
}

/// The last chunk of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Arms a reset: with SO_LINGER at zero, the close that follows (the caller drops the
/// connection) sends RST instead of FIN; an HTTP/2 stream is reset at once.
pub fn reset(stream: &mut Peer<'_>) {
    stream.reset();
}

/// Waits until the client goes away (a stalled upstream).
pub async fn wait_for_client_to_leave(stream: &mut Peer<'_>) {
    stream.wait_for_client_to_leave().await;
}

/// Sleeps for `d` unless it is zero.
pub async fn sleep_if_any(d: Duration) {
    if !d.is_zero() {
        monoio::time::sleep(d).await;
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `prefix` followed by `len` random alphanumeric characters (`chatcmpl-…`, `msg_…`).
pub fn random_id(prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(len));
    id
}
