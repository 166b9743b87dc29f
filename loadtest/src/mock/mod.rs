//! mockllm: a provider simulator (OpenAI Chat Completions and Responses, Azure OpenAI,
//! Anthropic, Gemini and Bedrock Converse dialects) with token pacing and fault injection.
//!
//! Thread-per-core: each thread runs its own monoio runtime and its own SO_REUSEPORT
//! listener on the same port, so the mock is never the bottleneck of a measurement.

mod anthropic;
mod azure;
mod bedrock;
mod config;
mod deliver;
mod dialect;
mod fault;
mod gemini;
mod handler;
mod http2;
mod last_request;
mod malformed;
mod openai;
mod peer;
mod request;
mod respond;
mod responses;
mod server;
mod stats;
mod text;
mod tools;
mod wire;

pub use config::{MockConfig, RequestKnobs};
pub use fault::{Fault, FaultParseError};
pub use last_request::LastRequest;
pub use server::{MockServer, MockServerError, MockTls};
pub use stats::{MockStats, MockStatsSnapshot};
