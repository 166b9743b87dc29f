//! Reading and translating provider streams and bodies.
//!
//! - `SseScanner`: watches an OpenAI stream for what the record needs while the bytes pass
//!   through untouched.
//! - Dialect translation between OpenAI Chat Completions and Anthropic Messages, both ways:
//!   requests ([`openai_to_anthropic_request`], [`anthropic_to_openai_request`]), whole
//!   responses and error bodies (`response`), and streams event by event (`stream`). All are
//!   pure functions or small state machines over bytes; nothing here does I/O.

pub mod anthropic_types;
mod error;
pub mod openai_types;
mod outcome;
mod request;
mod response;
mod sse;
mod stream;

pub use error::TranslateError;
pub use outcome::{StopReason, TokenUsage};
pub use request::{
    anthropic_to_openai_request, openai_include_usage, openai_to_anthropic_request,
    DEFAULT_MAX_TOKENS,
};
pub use response::{
    anthropic_error_to_openai, anthropic_to_openai_response, openai_error_to_anthropic,
    openai_to_anthropic_response,
};
pub use sse::{FinishReason, SseScanner};
pub use stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
