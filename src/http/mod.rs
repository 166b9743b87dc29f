//! HTTP on monoio: the HTTP/1.1 server side on owned-buffer IO (request heads, bodies, limits,
//! keep-alive), HTTP/2 streams served through the same request type ([`h2`]), TLS termination
//! ([`tls`]), and the pieces the upstream client shares (chunked decoding, head parsing).

mod budget;
mod chunked;
mod client_io;
mod error;
pub mod h2;
mod head;
mod poll_rent;
mod response;
mod server;
pub mod tls;

pub use budget::{BodyBudget, BodyPermit};
pub use chunked::{ChunkedDecoder, ChunkedError};
pub use client_io::{ClientIo, ClientWatch, TlsClientStream};
pub use error::HttpError;
pub(crate) use head::header_spans;
/// Tests elsewhere in the crate build request heads the way the server does.
#[cfg(test)]
pub(crate) use head::HeadSpans;
pub use head::{BodyLength, HeaderList, Method, RequestHead};
pub use poll_rent::PollRent;
pub use response::{status_reason, BodyFraming, ResponseHead};
pub(crate) use server::{parse_head, take_front};
pub use server::{write_head_and_body, ServerConn, ServerLimits};
