//! Upstream: connections to providers (plain TCP or rustls), a per-shard pool, the HTTP/1.1
//! client that sends a request and reads the response, and the built-in mock provider.

mod client;
mod conn;
mod error;
pub mod mock;
mod pool;
pub mod sigv4;

pub use client::{
    read_full_body, read_response_head, send_request, BodyKind, UpstreamResponseHead,
};
pub use conn::{connect, tls_connector, tls_connector_with_ca_file, UpstreamConn, UpstreamIo};
pub use error::UpstreamError;
pub use pool::ConnPool;
