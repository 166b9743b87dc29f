//! Reading and (later) translating provider streams. Today: the incremental SSE scanner that
//! watches an OpenAI stream for what the record needs while the bytes pass through untouched.

mod openai_stream;
mod sse;

pub use openai_stream::{assemble_chat_completion, replay_chat_completion};
pub use sse::{FinishReason, SseScanner};
