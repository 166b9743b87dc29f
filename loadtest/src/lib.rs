//! Load-testing tools for infergate: `mockllm` (an OpenAI-compatible provider simulator),
//! `loadgen` (an open-loop, coordinated-omission-safe load generator) and `scenario`
//! (direct vs. gateway vs. nginx, side by side), and `soak` (a mixed load for a long time,
//! watching the gateway's memory, descriptors and connections). The binaries in `src/bin/` are thin
//! wrappers around these modules so tests and other tools can reuse them.

pub mod affinity;
pub mod http1;
pub mod loadgen;
pub mod mock;
pub mod scenario;
pub mod soak;
