//! infergate: a shard-per-core inference gateway for AI agent fleets.
//!
//! The parts follow DESIGN.md: `http` (server side of HTTP/1.1), `api` (endpoints, request
//! views, errors), `route` (the route table), `policy` (gateway keys), `upstream` (pools and
//! the provider client), `translate` (stream scanning), `observe` (request records), `proxy`
//! (the phases of one proxied request), `shard` (runtimes and listeners), `admin`, `config`,
//! `cache` (exact and semantic response caches), `embed` (the MiniLM embedder), `guardrails` (secret and PII detection and redaction),
//! `service` (liveness/readiness probes, systemd notifications), `doctor` (node checks), `upgrade` (zero-downtime binary upgrade: socket handoff).

// A client- or provider-supplied index must never panic a shard: no unchecked indexing or
// string slicing outside tests (clippy.toml allows it in tests).
#![deny(clippy::indexing_slicing, clippy::string_slice)]

pub mod admin;
pub mod api;
pub mod cache;
pub mod config;
pub mod doctor;
pub mod embed;
pub mod guardrails;
pub mod http;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod route;
pub mod service;
pub mod shard;
pub mod translate;
pub mod upgrade;
pub mod upstream;
pub mod wire;

/// A hash map for the shard's per-request lookups keyed by names from the config (providers,
/// models, pool keys): foldhash instead of SipHash, which cost more than the lookups
/// themselves. Keys a client chooses stay in `std`'s DoS-resistant maps.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Entry points for the fuzz targets in `fuzz/` (a crate of its own) into code that is not
/// public otherwise; nothing else uses them.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::BytesMut;

    use crate::http::{HttpError, RequestHead, ServerLimits};

    /// The server's HTTP/1.1 head parser, as `ServerConn::read_head` calls it on every read:
    /// `Ok(None)` while the head is incomplete, else the head split off the front of `buf`.
    pub fn parse_head(
        buf: &mut BytesMut,
        limits: &ServerLimits,
    ) -> Result<Option<RequestHead>, HttpError> {
        crate::http::parse_head(buf, limits)
    }
}

/// A single-threaded monoio runtime (epoll, with timers) for unit tests of async code.
#[cfg(test)]
pub(crate) fn block_on_local<F: std::future::Future>(f: F) -> F::Output {
    #[allow(clippy::expect_used)]
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("a test runtime")
        .block_on(f)
}
