//! HTTP/1.1 on monoio's owned-buffer IO: the server side (request heads, bodies, limits,
//! keep-alive) and the pieces the upstream client shares (chunked decoding, head parsing).

mod budget;
mod chunked;
mod error;
mod head;
mod response;
mod server;

pub use budget::{BodyBudget, BodyPermit};
pub use chunked::{ChunkedDecoder, ChunkedError};
pub use error::HttpError;
pub(crate) use head::header_spans;
/// Tests elsewhere in the crate build request heads the way the server does.
#[cfg(test)]
pub(crate) use head::HeadSpans;
pub use head::{BodyLength, HeaderList, Method, RequestHead};
pub use response::{status_reason, BodyFraming, ResponseHead};
pub(crate) use server::take_front;
pub use server::{write_head_and_body, ServerConn, ServerLimits};
