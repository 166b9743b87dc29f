//! Per-process counters, served at `GET /mock/stats` so tests can assert what reached the mock.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters shared by all server threads (relaxed atomics: counts, not ordering).
#[derive(Debug, Default)]
pub struct MockStats {
    chat: AtomicU64,
    chat_stream: AtomicU64,
    embeddings: AtomicU64,
    models: AtomicU64,
    bad_request: AtomicU64,
    not_found: AtomicU64,
    fault_status: AtomicU64,
    fault_reset: AtomicU64,
    fault_reset_mid_stream: AtomicU64,
    fault_stall: AtomicU64,
    fault_stall_mid_stream: AtomicU64,
}

/// The endpoint a request was routed to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Endpoint {
    Chat,
    ChatStream,
    Embeddings,
    Models,
    BadRequest,
    NotFound,
}

/// A point-in-time copy of [`MockStats`], as served in JSON.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MockStatsSnapshot {
    /// Requests by endpoint (`total` is their sum).
    pub requests: RequestCounts,
    /// Faults injected by kind.
    pub faults: FaultCounts,
}

/// Requests by endpoint.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RequestCounts {
    /// Non-streaming chat completions.
    pub chat: u64,
    /// Streaming chat completions.
    pub chat_stream: u64,
    /// Embeddings.
    pub embeddings: u64,
    /// Model listings.
    pub models: u64,
    /// Requests answered 400 (malformed JSON, bad knob, bad framing).
    pub bad_request: u64,
    /// Unknown paths.
    pub not_found: u64,
    /// All of the above.
    pub total: u64,
}

/// Faults injected by kind.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FaultCounts {
    /// `status:CODE`.
    pub status: u64,
    /// `reset`.
    pub reset: u64,
    /// `reset-mid-stream`.
    pub reset_mid_stream: u64,
    /// `stall`.
    pub stall: u64,
    /// `stall-mid-stream`.
    pub stall_mid_stream: u64,
}

impl MockStats {
    pub(crate) fn count_request(&self, endpoint: Endpoint) {
        let counter = match endpoint {
            Endpoint::Chat => &self.chat,
            Endpoint::ChatStream => &self.chat_stream,
            Endpoint::Embeddings => &self.embeddings,
            Endpoint::Models => &self.models,
            Endpoint::BadRequest => &self.bad_request,
            Endpoint::NotFound => &self.not_found,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_fault(&self, fault: super::Fault) {
        let counter = match fault {
            super::Fault::Status(_) => &self.fault_status,
            super::Fault::Reset => &self.fault_reset,
            super::Fault::ResetMidStream => &self.fault_reset_mid_stream,
            super::Fault::Stall => &self.fault_stall,
            super::Fault::StallMidStream => &self.fault_stall_mid_stream,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> MockStatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let requests = RequestCounts {
            chat: r(&self.chat),
            chat_stream: r(&self.chat_stream),
            embeddings: r(&self.embeddings),
            models: r(&self.models),
            bad_request: r(&self.bad_request),
            not_found: r(&self.not_found),
            total: 0,
        };
        let total = requests.chat
            + requests.chat_stream
            + requests.embeddings
            + requests.models
            + requests.bad_request
            + requests.not_found;
        MockStatsSnapshot {
            requests: RequestCounts { total, ..requests },
            faults: FaultCounts {
                status: r(&self.fault_status),
                reset: r(&self.fault_reset),
                reset_mid_stream: r(&self.fault_reset_mid_stream),
                stall: r(&self.fault_stall),
                stall_mid_stream: r(&self.fault_stall_mid_stream),
            },
        }
    }
}
