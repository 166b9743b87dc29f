//! Upstream: the [`Upstream`] trait the forward phase calls, its HTTP implementation
//! (connections to providers over plain TCP or rustls, a per-shard pool, the HTTP/1.1
//! client, HTTP/2 over one shared connection per shard and provider, SigV4) and the
//! built-in mock, which answers from memory.

mod call;
mod client;
mod conn;
mod error;
mod h2call;
mod h2pool;
mod http;
pub mod mock;
mod pool;
mod registry;
pub mod sigv4;

pub use call::{
    ProviderUpstream, TraceHeaders, Upstream, UpstreamBody, UpstreamRequest, UpstreamResponse,
};
pub use client::{
    read_full_body, read_response_head, send_request, BodyKind, UpstreamResponseHead,
};
pub use conn::{
    blocking_client_config, connect, tls_connector, tls_connector_with_ca_file, UpstreamConn,
    UpstreamIo,
};
pub use error::{status_is_retryable, UpstreamError};
pub use h2call::H2Body;
pub use h2pool::H2Pool;
pub use http::HttpUpstream;
pub use pool::ConnPool;
pub use registry::{ApiKey, Credential, UpstreamLink, UpstreamRegistry};
