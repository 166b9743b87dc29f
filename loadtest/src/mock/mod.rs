//! mockllm: an OpenAI-compatible provider simulator with token pacing and fault injection.
//!
//! Thread-per-core: each thread runs its own monoio runtime and its own SO_REUSEPORT
//! listener on the same port, so the mock is never the bottleneck of a measurement.

mod config;
mod fault;
mod handler;
mod request;
mod server;
mod stats;
mod text;
mod wire;

pub use config::{MockConfig, RequestKnobs};
pub use fault::{Fault, FaultParseError};
pub use server::{MockServer, MockServerError};
pub use stats::{MockStats, MockStatsSnapshot};
