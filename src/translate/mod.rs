//! Reading and (later) translating provider streams. Today: the incremental SSE scanner that
//! watches an OpenAI stream for what the record needs while the bytes pass through untouched.

mod sse;

pub use sse::{FinishReason, SseScanner};
