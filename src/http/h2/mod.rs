//! HTTP/2 from clients (h2 over monoio's poll-io bridge): each stream is served as one
//! request through the same phases as HTTP/1.1. [`request`] turns a stream's request into a
//! `RequestHead` and a body, [`respond`] turns the HTTP/1.1 response the proxy writes into
//! HEADERS and DATA frames, [`rewind`] replays a prior-knowledge preface.

mod request;
mod respond;
mod rewind;

pub use request::{drain_body, read_body, request_head};
pub use respond::H2Responder;
pub use rewind::Rewind;

/// Headers of an HTTP/1.1 message that HTTP/2 does not carry (RFC 9113 §8.2.2): they
/// describe the connection, or (`host`) become the `:authority` pseudo-header.
const CONNECTION_SPECIFIC: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Whether the HTTP/1.1 header `name: value` is left out when the message goes on in
/// HTTP/2: a connection-specific header, or `te` other than `trailers`. Used both ways:
/// responses to HTTP/2 clients and requests to HTTP/2 providers.
pub fn is_connection_specific(name: &str, value: &[u8]) -> bool {
    CONNECTION_SPECIFIC
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
        || (name.eq_ignore_ascii_case("te") && !value.eq_ignore_ascii_case(b"trailers"))
}

/// The connection preface an HTTP/2 client with prior knowledge starts with (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The server settings for a connection: `max_streams` open streams, heads up to
/// `max_header_bytes`, and windows large enough that a request body of a few hundred KB
/// arrives without a round trip per 64 KB.
pub fn builder(max_streams: u32, max_header_bytes: usize) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(max_streams.max(1))
        .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .max_send_buffer_size(256 * 1024);
    b
}
