//! `relay_stream`: passes a provider's streamed body to the client as it arrives, in three
//! stages, each testable alone:
//!
//! - [`upstream`]: reads the provider's body and removes its HTTP framing in place;
//! - [`events`]: finds where the last complete event ends (SSE or AWS event-stream), so only
//!   whole events go on;
//! - [`sink`]: writes them to the client as HTTP chunks, as they are or translated, keeps
//!   the optional capture, and ends the stream (terminal chunk, or an error event).
//!
//! One buffer per stream, no allocation per event: upstream bytes are read straight into it
//! behind a small reserved prefix, where the chunk size line is written when the payload
//! before a partial event goes out. Forwarding only whole events is what lets a failure
//! mid-way end the stream with a well-formed error event instead of half an event.

mod events;
mod sink;
mod upstream;

use std::time::{Duration, Instant};

use crate::translate::StreamTranslator;
use crate::upstream::{BodyKind, UpstreamConn};
use crate::wire::{FinishReason, Usage, WireApi};
use events::EventFraming;
use sink::Sink;
use upstream::{read_more, UpstreamFraming};

/// Room before the payload for the chunk size line (`ffffffff\r\n`).
const PREFIX: usize = 16;
/// Most bytes one read asks for. A stream starts with [`FIRST_READ`] and the buffer doubles
/// each time a read leaves less than [`MIN_SPARE`] free, up to this: a model's stream trickles
/// small events, and each open stream's buffer is most of what it costs in memory.
const READ_SIZE: usize = 32 * 1024;
/// The read size a stream starts with.
const FIRST_READ: usize = 4 * 1024;
/// Spare room below which the buffer grows before the next read.
const MIN_SPARE: usize = 1024;
/// A single event larger than this ends the stream (a provider bug or an attack).
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// A stream's buffer grown past this (a large event) hands its memory back to the OS when
/// the stream ends, as a large request body does: mimalloc would otherwise keep the freed
/// pages of several such streams resident.
const KEEP_BYTES: usize = 1024 * 1024;

/// The relay's buffer, purged from the shard's heap on drop when it grew large.
struct StreamBuf(Vec<u8>);

impl std::ops::Deref for StreamBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for StreamBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for StreamBuf {
    fn drop(&mut self) {
        if self.0.capacity() > KEEP_BYTES {
            self.0 = Vec::new();
            crate::shard::release_freed_memory();
        }
    }
}

/// How the provider frames its stream's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFrames {
    /// Server-sent events (OpenAI, Anthropic, Gemini).
    Sse,
    /// AWS event-stream binary messages (Bedrock ConverseStream); always translated.
    AwsEventStream,
}

/// How a relayed stream ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// The upstream body ended properly and the client has all of it.
    Complete {
        /// The upstream connection's framing ended cleanly: it can go back to the pool.
        upstream_reusable: bool,
    },
    /// Writing to the client failed: it went away. The upstream connection is dropped,
    /// which cancels the provider's work.
    ClientGone,
    /// The provider failed mid-stream; the client got an error event and a proper end.
    UpstreamFailed(&'static str),
}

/// What the relay saw.
#[derive(Debug)]
pub struct RelayResult {
    /// How it ended.
    pub end: RelayEnd,
    /// Payload bytes sent to the client.
    pub bytes_out: u64,
    /// Usage, if the stream reported it.
    pub usage: Option<Usage>,
    /// The finish reason, if seen.
    pub finish_reason: Option<FinishReason>,
    /// When the response head was written.
    pub head_sent_at: Option<Instant>,
}

impl RelayResult {
    /// Time to first byte in ms relative to `start`.
    pub fn ttfb_ms(&self, start: Instant) -> f64 {
        self.head_sent_at
            .map_or(0.0, |t| t.duration_since(start).as_secs_f64() * 1000.0)
    }
}

/// How one stream is relayed: its bounds, and what to do besides forwarding.
pub struct RelayPlan<'a> {
    /// The whole call must end by then.
    pub deadline: Instant,
    /// Longest wait for the next upstream bytes.
    pub idle: Duration,
    /// Keeps a copy of what the client got (only when the answer will be cached).
    pub capture: Option<&'a mut Vec<u8>>,
    /// Translates events when the provider's format differs from the client's.
    pub translator: Option<Box<dyn StreamTranslator>>,
    /// The client's format (for the error event that ends a failed stream).
    pub client: WireApi,
    /// How the provider frames events.
    pub upstream_frames: UpstreamFrames,
    /// Resolves when the request's agent run is killed: the stream ends there with an
    /// error event.
    pub kill: Option<event_listener::EventListener>,
}

/// Relays the stream. `head` is the client response head (chunked framing).
pub async fn relay_stream(
    client: &mut crate::http::ClientIo,
    head: Vec<u8>,
    upstream: &mut UpstreamConn,
    body: BodyKind,
    plan: RelayPlan<'_>,
) -> RelayResult {
    let mut sink = Sink::new(client, plan.translator, plan.capture, plan.client);
    let mut events = EventFraming::new(plan.upstream_frames);
    if let Err(stop) = sink.head(head).await {
        return sink.stop(stop, &events).await;
    }
    let mut framing = UpstreamFraming::new(body);
    // The prefix, then the payload not yet forwarded, then raw bytes not yet unframed; the
    // bytes read along with the response head are the first raw bytes.
    let mut buf = StreamBuf(Vec::with_capacity(PREFIX + FIRST_READ + upstream.buf.len()));
    buf.resize(PREFIX, 0);
    buf.extend_from_slice(&upstream.buf);
    upstream.buf.clear();
    let mut raw_start = PREFIX;
    let mut kill = plan.kill;
    loop {
        if let Err(kind) = framing.unframe(&mut buf, raw_start) {
            return sink.fail(kind, &events).await;
        }
        if let Err(stop) = sink.forward(&mut buf, &mut events, framing.is_done()).await {
            return sink.stop(stop, &events).await;
        }
        if framing.is_done() {
            return sink.end(framing.is_reusable(), &events).await;
        }
        raw_start = buf.len();
        let read = read_more(&mut upstream.io, &mut buf, plan.deadline, plan.idle);
        let read = match kill.as_mut() {
            None => read.await,
            Some(killed) => {
                match futures_util::future::select(std::pin::pin!(read), killed).await {
                    futures_util::future::Either::Left((read, _)) => read,
                    futures_util::future::Either::Right(((), _)) => Err("run_killed"),
                }
            }
        };
        let read = read.and_then(|closed| if closed { framing.closed() } else { Ok(()) });
        if let Err(kind) = read {
            return sink.fail(kind, &events).await;
        }
    }
}
