//! What a phase decides: go on to the next phase, or end the request with an [`Outcome`]
//! that [`super::finish`] carries out.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::relay::UpstreamFrames;
use crate::api::ApiError;
use crate::http::{HttpError, ResponseHead};
use crate::route::InFlightPermit;
use crate::translate::StreamTranslator;
use crate::upstream::{BodyKind, UpstreamConn};
use crate::wire::Usage;

/// `Ok` goes on to the next phase; `Err(outcome)` ends the request with that outcome.
pub type Next<T = ()> = Result<T, Outcome>;

/// How a request ends.
pub enum Outcome {
    /// A response for the client: the gateway's, the cache's or a provider's.
    Respond(Box<Response>),
    /// An error the gateway answers in the client's dialect.
    Fail(ApiError),
    /// The request could not be read (framing, size, time); answered when the error has a
    /// status, and the connection closes.
    Refuse(HttpError),
    /// The client hung up while its answer was being prepared (the upstream call was
    /// dropped with it).
    ClientGone,
}

/// A response, with its head built once.
pub struct Response {
    /// The status sent.
    pub status: u16,
    /// The status line and headers, without framing (`finish` adds it).
    pub head: ResponseHead,
    /// The body.
    pub body: Body,
    /// The tokens the answer reports, for the record.
    pub usage: Option<Usage>,
    /// The record's error code when the response passes on a failure (`all_targets_failed`).
    pub error: Option<&'static str>,
}

impl Response {
    /// A whole-body response.
    pub fn full(status: u16, head: ResponseHead, body: Bytes) -> Self {
        Self {
            status,
            head,
            body: Body::Full(body),
            usage: None,
            error: None,
        }
    }
}

/// A response body.
pub enum Body {
    /// Bytes in memory, sent with a content length.
    Full(Bytes),
    /// A whole event stream in memory (a cached answer replayed), sent chunked as a live
    /// stream is.
    Events(Bytes),
    /// A provider's stream, relayed as it arrives.
    Stream(Box<StreamBody>),
}

/// A provider's streamed body, with what the relay needs and what happens afterwards.
pub struct StreamBody {
    /// The connection the body comes from.
    pub upstream: UpstreamConn,
    /// How the provider frames the body.
    pub framing: BodyKind,
    /// How the provider frames events.
    pub frames: UpstreamFrames,
    /// Translates events when the provider's format differs from the client's.
    pub translator: Option<Box<dyn StreamTranslator>>,
    /// The whole call must end by then.
    pub deadline: Instant,
    /// Longest wait for the next upstream bytes.
    pub idle: Duration,
    /// Where the connection goes back once the body ended cleanly.
    pub reuse: Option<PoolReturn>,
    /// The attempt's place in its provider's `max_concurrency`, held as long as the stream
    /// (dropped with it however the relay ends, or if the stream is never relayed).
    pub permit: InFlightPermit,
    /// The attempt this stream belongs to, recorded once the stream ends.
    pub attempt: PendingAttempt,
}

/// Where an upstream connection is pooled after use.
pub struct PoolReturn {
    /// The pool key.
    pub key: std::sync::Arc<str>,
    /// Most idle connections kept for it.
    pub max_idle: usize,
}

/// An attempt whose result is known only when its stream ends.
pub struct PendingAttempt {
    /// Provider name.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// The provider's status.
    pub status: u16,
    /// When the attempt began.
    pub started: Instant,
    /// When it began, in milliseconds after the request started.
    pub start_ms: f64,
}
