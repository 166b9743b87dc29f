//! The request record: what happened to one request, every attempt included.

use serde::Serialize;

use crate::wire::FinishReason;

/// One try at one target.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// Provider name.
    pub provider: String,
    /// Upstream model name.
    pub model: String,
    /// HTTP status from the provider (absent when none arrived).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the attempt failed or was skipped (`connect`, `first_byte_timeout`, `skipped: ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Time spent on this attempt, in milliseconds.
    pub latency_ms: f64,
    /// When the attempt began, in milliseconds after the request started.
    pub start_ms: f64,
}

/// What admission held for a request against limits and budgets.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Reservation {
    /// The worst-case cost in US dollars.
    pub usd: f64,
    /// Prompt bound plus max output tokens.
    pub tokens: u64,
    /// The max output tokens the gateway sent (set or lowered by a budget), if it changed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
}

/// What a call's tokens cost, by kind, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CostParts {
    /// Uncached input tokens (prompt-cache writes included).
    pub input_usd: f64,
    /// Output tokens.
    pub output_usd: f64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_usd: f64,
}

/// A guardrail rule that fired on a request or its answer (never the matched text).
#[derive(Debug, Clone, Serialize)]
pub struct GuardrailRecord {
    /// The policy (`[guardrails.NAME]`).
    pub policy: std::sync::Arc<str>,
    /// The rule.
    pub rule: String,
    /// `block`, `redact` or `flag`.
    pub action: &'static str,
    /// `request` or `response`.
    pub side: &'static str,
    /// The JSON key whose value held the match.
    pub field: String,
    /// How many matches.
    pub count: u32,
}

/// One request, as written to the log.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// `x-infergate-request-id`.
    pub request_id: String,
    /// Start time, RFC 3339 UTC.
    pub time: String,
    /// The W3C trace id (the client's `traceparent`'s, or one the gateway made), so
    /// records and traces can be joined.
    pub trace_id: super::trace::TraceId,
    /// Start time in Unix nanoseconds, for the spans.
    #[serde(skip)]
    pub start_unix_ns: u64,
    /// Which shard served it.
    pub shard: usize,
    /// The endpoint (`chat.completions`, `embeddings`, `models`).
    pub endpoint: &'static str,
    /// The gateway key's name, when keys are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key's tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<std::sync::Arc<str>>,
    /// The key's (or its tenant's) region tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<std::sync::Arc<str>>,
    /// The key's and tenant's labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::sync::Arc<std::collections::BTreeMap<String, String>>>,
    /// The model alias asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The provider that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The upstream model that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Every attempt in order.
    pub attempts: Vec<AttemptRecord>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Status sent to the client (499 when the client went away).
    pub status: u16,
    /// The gateway's error code, when it answered an error itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Total time, milliseconds.
    pub latency_ms: f64,
    /// The gateway's own time: the total less the time spent on provider attempts.
    pub overhead_ms: f64,
    /// Time to the first response byte sent to the client, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<f64>,
    /// Input tokens, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    /// Output tokens, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    /// Input tokens the provider read from its prompt cache (part of `tokens_in`), when
    /// it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_cached: Option<u64>,
    /// The stream's finish reason, when seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// What the cache did: `hit`, `semantic`, `miss`, `skip` or `refresh` (absent: not cached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    /// Similarity of the semantic hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_similarity: Option<f32>,
    /// Why a semantic candidate was refused, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_note: Option<String>,
    /// What the call cost in US dollars, from its usage and the model's price (with a
    /// budget: what the budget recorded, never more than the reservation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The cost's parts at the answering model's price: uncached input, output and input
    /// read from the provider's prompt cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostParts>,
    /// What the client said about the call (`x-infergate-metadata`, a JSON object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<serde_json::Value>,
    /// The request body as forwarded (after redaction), when the alias logs bodies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<serde_json::Value>,
    /// The answer as the client got it (a stream: its events, bounded), when the alias logs
    /// bodies; matches of the alias's guardrail rules are redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<serde_json::Value>,
    /// What admission reserved: the worst-case cost and tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Reservation>,
    /// The limit or budget that refused the request (`key request limit`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<String>,
    /// The agent run the request belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Guardrail rules that fired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<GuardrailRecord>,
    /// Which of the alias's `rules` chose the targets (1 for the first; absent: its own
    /// `targets`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_rule: Option<usize>,
    /// Why the session's own target was not tried first (`ejected`, `rate_limited`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity_moved: Option<&'static str>,
    /// The alias's retry budget stopped further attempts.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retry_budget_spent: bool,
    /// Request body size in bytes.
    pub bytes_in: usize,
    /// Response body size in bytes.
    pub bytes_out: u64,
}

impl RequestRecord {
    /// The record of a request that just arrived: its id, shard and start time; the phases
    /// fill in the rest.
    pub fn started(request_id: String, shard: usize) -> Self {
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        Self {
            request_id,
            time: rfc3339_millis(unix_ns / 1_000_000),
            trace_id: super::trace::TraceId::random(),
            start_unix_ns: unix_ns,
            shard,
            endpoint: crate::wire::Endpoint::ChatCompletions.as_str(),
            key: None,
            tenant: None,
            region: None,
            metadata: None,
            model: None,
            provider: None,
            upstream_model: None,
            attempts: Vec::new(),
            stream: false,
            status: 0,
            error: None,
            latency_ms: 0.0,
            ttfb_ms: None,
            tokens_in: None,
            tokens_out: None,
            tokens_cached: None,
            finish_reason: None,
            cache: None,
            cache_similarity: None,
            cache_note: None,
            cost_usd: None,
            cost: None,
            client_metadata: None,
            request_body: None,
            response_body: None,
            overhead_ms: 0.0,
            reservation: None,
            refused_by: None,
            run_id: None,
            guardrails: Vec::new(),
            route_rule: None,
            affinity_moved: None,
            retry_budget_spent: false,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Notes the tokens a response reported.
    pub fn set_usage(&mut self, usage: Option<crate::wire::Usage>) {
        if let Some(u) = usage {
            self.tokens_in = Some(u.prompt_tokens());
            self.tokens_out = Some(u.output_tokens);
            self.tokens_cached = (u.cache_read_tokens > 0).then_some(u.cache_read_tokens);
        }
    }

    /// The gateway's own share of the request's time: the total minus the time spent on
    /// provider attempts (never below zero), in milliseconds.
    pub fn gateway_ms(&self) -> f64 {
        let upstream: f64 = self.attempts.iter().map(|a| a.latency_ms).sum();
        (self.latency_ms - upstream).max(0.0)
    }
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before it).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Formats a Unix time in milliseconds as RFC 3339 UTC (`2026-11-23T12:00:00.123Z`).
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_795_435_200_123),
            "2026-11-23T12:00:00.123Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn gateway_time_is_the_total_less_the_attempts() {
        let attempt = |ms| AttemptRecord {
            provider: "p".into(),
            model: "m".into(),
            status: Some(200),
            error: None,
            latency_ms: ms,
            start_ms: 0.0,
        };
        let mut r = RequestRecord::started("r".into(), 0);
        r.latency_ms = 10.0;
        assert_eq!(r.gateway_ms(), 10.0);
        r.attempts = vec![attempt(3.0), attempt(6.5)];
        assert!((r.gateway_ms() - 0.5).abs() < 1e-9);
        r.attempts.push(attempt(5.0));
        assert_eq!(r.gateway_ms(), 0.0);
    }
}
