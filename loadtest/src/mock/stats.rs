//! Per-process counters, served at `GET /mock/stats` so tests can assert what reached the mock.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counters shared by all server threads (relaxed atomics: counts, not ordering).
#[derive(Debug, Default)]
pub struct MockStats {
    requests: [AtomicU64; Endpoint::COUNT],
    fault_status: AtomicU64,
    fault_reset: AtomicU64,
    fault_reset_mid_stream: AtomicU64,
    fault_stall: AtomicU64,
    fault_stall_mid_stream: AtomicU64,
    fault_error_mid_stream: AtomicU64,
    fault_reset_after_head: AtomicU64,
    fault_drip: AtomicU64,
    fault_truncated_json: AtomicU64,
    fault_not_json: AtomicU64,
    fault_bad_sse_framing: AtomicU64,
    fault_invalid_utf8_event: AtomicU64,
    fault_oversized_event: AtomicU64,
    fault_idle_close: AtomicU64,
    fault_stream_answer: AtomicU64,
    fault_whole_answer: AtomicU64,
    fault_storm: AtomicU64,
    streams_cancelled: AtomicU64,
    connections: AtomicU64,
    http2_connections: AtomicU64,
    http2_requests: AtomicU64,
}

/// The endpoint (and dialect) a request was routed to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Endpoint {
    Chat,
    ChatStream,
    Embeddings,
    Models,
    AnthropicMessages,
    AnthropicMessagesStream,
    AnthropicCountTokens,
    GeminiGenerate,
    GeminiStream,
    BedrockConverse,
    BedrockConverseStream,
    Responses,
    ResponsesStream,
    BadRequest,
    NotFound,
}

impl Endpoint {
    /// One counter per variant (the last variant's index + 1: a new variant is counted).
    const COUNT: usize = Endpoint::NotFound as usize + 1;
}

/// A point-in-time copy of [`MockStats`], as served in JSON.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MockStatsSnapshot {
    /// Requests by endpoint (`total` is their sum).
    pub requests: RequestCounts,
    /// Faults injected by kind.
    pub faults: FaultCounts,
    /// Streamed answers (any dialect) whose client went away before the end: a write
    /// failed, or the client left a `stall-mid-stream`.
    pub streams_cancelled: u64,
    /// Connections accepted (either protocol, with or without TLS).
    #[serde(default)]
    pub connections: u64,
    /// Connections that spoke HTTP/2 (h2c with prior knowledge, or ALPN `h2`).
    #[serde(default)]
    pub http2_connections: u64,
    /// Requests received over HTTP/2 (streams), counted in `requests` too: with
    /// `http2_connections`, what shows a client multiplexing.
    #[serde(default)]
    pub http2_requests: u64,
}

/// Requests by endpoint.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RequestCounts {
    /// Non-streaming OpenAI chat completions.
    pub chat: u64,
    /// Streaming OpenAI chat completions.
    pub chat_stream: u64,
    /// OpenAI embeddings.
    pub embeddings: u64,
    /// Model listings.
    pub models: u64,
    /// Non-streaming Anthropic `POST /v1/messages`.
    pub anthropic_messages: u64,
    /// Streaming Anthropic `POST /v1/messages`.
    pub anthropic_messages_stream: u64,
    /// Anthropic `POST /v1/messages/count_tokens`.
    pub anthropic_count_tokens: u64,
    /// Gemini `:generateContent`.
    pub gemini_generate: u64,
    /// Gemini `:streamGenerateContent`.
    pub gemini_stream: u64,
    /// Bedrock `POST /model/{id}/converse`.
    #[serde(default)]
    pub bedrock_converse: u64,
    /// Bedrock `POST /model/{id}/converse-stream`.
    #[serde(default)]
    pub bedrock_converse_stream: u64,
    /// Non-streaming OpenAI `POST /v1/responses`.
    #[serde(default)]
    pub responses: u64,
    /// Streaming OpenAI `POST /v1/responses`.
    #[serde(default)]
    pub responses_stream: u64,
    /// Requests refused before any answer: 400s (malformed JSON, bad knob, bad framing,
    /// missing `anthropic-version` or `max_tokens`, an unknown `previous_response_id`) and
    /// 401/403 for missing credentials.
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
    /// `error-mid-stream[:CODE]`.
    pub error_mid_stream: u64,
    /// `reset-after-head`.
    #[serde(default)]
    pub reset_after_head: u64,
    /// `drip[:MS]`.
    #[serde(default)]
    pub drip: u64,
    /// `truncated-json`.
    #[serde(default)]
    pub truncated_json: u64,
    /// `not-json`.
    #[serde(default)]
    pub not_json: u64,
    /// `bad-sse-framing`.
    #[serde(default)]
    pub bad_sse_framing: u64,
    /// `invalid-utf8-event`.
    #[serde(default)]
    pub invalid_utf8_event: u64,
    /// `oversized-event[:BYTES]`.
    #[serde(default)]
    pub oversized_event: u64,
    /// `idle-close:MS`: connections closed for being idle that long.
    #[serde(default)]
    pub idle_close: u64,
    /// `stream-answer`.
    #[serde(default)]
    pub stream_answer: u64,
    /// `whole-answer`.
    #[serde(default)]
    pub whole_answer: u64,
    /// `storm:MS[:CODE]`: requests failed during the storm.
    #[serde(default)]
    pub storm: u64,
}

impl MockStats {
    pub(crate) fn count_request(&self, endpoint: Endpoint) {
        if let Some(counter) = self.requests.get(endpoint as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_fault(&self, fault: super::Fault) {
        let counter = match fault {
            super::Fault::Status(_) => &self.fault_status,
            super::Fault::Reset => &self.fault_reset,
            super::Fault::ResetMidStream => &self.fault_reset_mid_stream,
            super::Fault::Stall => &self.fault_stall,
            super::Fault::StallMidStream => &self.fault_stall_mid_stream,
            super::Fault::ErrorMidStream(_) => &self.fault_error_mid_stream,
            super::Fault::ResetAfterHead => &self.fault_reset_after_head,
            super::Fault::Drip(_) => &self.fault_drip,
            super::Fault::TruncatedJson => &self.fault_truncated_json,
            super::Fault::NotJson => &self.fault_not_json,
            super::Fault::BadSseFraming => &self.fault_bad_sse_framing,
            super::Fault::InvalidUtf8Event => &self.fault_invalid_utf8_event,
            super::Fault::OversizedEvent(_) => &self.fault_oversized_event,
            super::Fault::IdleClose(_) => &self.fault_idle_close,
            super::Fault::StreamAnswer => &self.fault_stream_answer,
            super::Fault::WholeAnswer => &self.fault_whole_answer,
            super::Fault::Storm { .. } => &self.fault_storm,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_http2_connection(&self) {
        self.http2_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_http2_request(&self) {
        self.http2_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_stream_cancelled(&self) {
        self.streams_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> MockStatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let req = |e: Endpoint| self.requests.get(e as usize).map(r).unwrap_or(0);
        let total = self.requests.iter().map(r).sum();
        MockStatsSnapshot {
            requests: RequestCounts {
                chat: req(Endpoint::Chat),
                chat_stream: req(Endpoint::ChatStream),
                embeddings: req(Endpoint::Embeddings),
                models: req(Endpoint::Models),
                anthropic_messages: req(Endpoint::AnthropicMessages),
                anthropic_messages_stream: req(Endpoint::AnthropicMessagesStream),
                anthropic_count_tokens: req(Endpoint::AnthropicCountTokens),
                gemini_generate: req(Endpoint::GeminiGenerate),
                gemini_stream: req(Endpoint::GeminiStream),
                bedrock_converse: req(Endpoint::BedrockConverse),
                bedrock_converse_stream: req(Endpoint::BedrockConverseStream),
                responses: req(Endpoint::Responses),
                responses_stream: req(Endpoint::ResponsesStream),
                bad_request: req(Endpoint::BadRequest),
                not_found: req(Endpoint::NotFound),
                total,
            },
            faults: FaultCounts {
                status: r(&self.fault_status),
                reset: r(&self.fault_reset),
                reset_mid_stream: r(&self.fault_reset_mid_stream),
                stall: r(&self.fault_stall),
                stall_mid_stream: r(&self.fault_stall_mid_stream),
                error_mid_stream: r(&self.fault_error_mid_stream),
                reset_after_head: r(&self.fault_reset_after_head),
                drip: r(&self.fault_drip),
                truncated_json: r(&self.fault_truncated_json),
                not_json: r(&self.fault_not_json),
                bad_sse_framing: r(&self.fault_bad_sse_framing),
                invalid_utf8_event: r(&self.fault_invalid_utf8_event),
                oversized_event: r(&self.fault_oversized_event),
                idle_close: r(&self.fault_idle_close),
                stream_answer: r(&self.fault_stream_answer),
                whole_answer: r(&self.fault_whole_answer),
                storm: r(&self.fault_storm),
            },
            streams_cancelled: r(&self.streams_cancelled),
            connections: r(&self.connections),
            http2_connections: r(&self.http2_connections),
            http2_requests: r(&self.http2_requests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_a_counter() {
        let stats = MockStats::default();
        stats.count_request(Endpoint::NotFound);
        stats.count_request(Endpoint::GeminiStream);
        stats.count_request(Endpoint::BedrockConverseStream);
        stats.count_request(Endpoint::ResponsesStream);
        let s = stats.snapshot();
        assert_eq!(s.requests.not_found, 1);
        assert_eq!(s.requests.gemini_stream, 1);
        assert_eq!(s.requests.bedrock_converse_stream, 1);
        assert_eq!(s.requests.responses_stream, 1);
        assert_eq!(s.requests.total, 4);
    }
}
