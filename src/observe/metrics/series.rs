//! What one shard counts: every series keyed by interned label ids, updated from each
//! finished request's record. Only its shard writes it (behind that shard's own mutex, which
//! the scraper takes once per scrape), so nothing here is shared between shards.

use std::collections::HashMap;

use super::labels::{
    attempt_result, cache_result, error_label, status_class, Dimension, LabelId, LabelIndex,
};
use super::latency::Latency;
use crate::observe::RequestRecord;
use crate::route::RouteTable;

/// The labels of `infergate_requests_total` (tokens and cost are kept with them and summed
/// over endpoint and status class when scraped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey {
    /// Model alias.
    pub alias: LabelId,
    /// Provider that answered.
    pub provider: LabelId,
    /// Upstream model that answered.
    pub model: LabelId,
    /// The key's tenant.
    pub tenant: LabelId,
    /// The endpoint.
    pub endpoint: &'static str,
    /// The status class.
    pub status: &'static str,
}

/// Counts kept per [`RequestKey`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestCounts {
    /// Requests.
    pub requests: u64,
    /// Input tokens (cached ones included).
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// Input tokens read from the provider's prompt cache.
    pub tokens_cached: u64,
    /// Cost in US dollars.
    pub cost_usd: f64,
}

/// The labels of `infergate_request_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKey {
    /// Model alias.
    pub alias: LabelId,
    /// Provider that answered (none when no provider did).
    pub provider: LabelId,
    /// The key's tenant.
    pub tenant: LabelId,
    /// The bounded error code.
    pub error: &'static str,
}

/// The labels of `infergate_upstream_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptKey {
    /// Provider tried.
    pub provider: LabelId,
    /// Upstream model tried.
    pub model: LabelId,
    /// Status class or transport error.
    pub result: &'static str,
}

/// The labels of `infergate_cache_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Model alias.
    pub alias: LabelId,
    /// The key's tenant.
    pub tenant: LabelId,
    /// hit, semantic, miss, skip or refresh.
    pub result: &'static str,
}

/// The latencies of one alias's requests.
#[derive(Debug, Clone)]
pub struct RequestLatencies {
    /// Total time.
    pub total: Latency,
    /// Time to the first byte sent to the client.
    pub ttfb: Latency,
    /// Total time less the time spent on provider attempts.
    pub overhead: Latency,
}

/// Gauges a shard publishes about itself every second (they live in `ShardCtx`, where only
/// the shard can read them).
#[derive(Debug, Clone, Default)]
pub struct ShardGauges {
    /// Open client connections.
    pub connections: u64,
    /// Requests being served.
    pub inflight: u64,
    /// Streams being relayed.
    pub streams: u64,
    /// Idle pooled upstream connections by provider.
    pub idle_upstream: Vec<(String, u64)>,
}

/// Everything one shard counts.
#[derive(Debug)]
pub struct ShardSeries {
    /// The label names behind the ids.
    pub labels: LabelIndex,
    /// Requests, tokens and cost.
    pub requests: HashMap<RequestKey, RequestCounts>,
    /// Errors by class.
    pub errors: HashMap<ErrorKey, u64>,
    /// Attempts by result.
    pub attempts: HashMap<AttemptKey, u64>,
    /// Moves to another target, by alias.
    pub failovers: HashMap<LabelId, u64>,
    /// Requests whose retries the alias's retry budget cut short, by alias.
    pub budget_spent: HashMap<LabelId, u64>,
    /// Sessions sent away from their own target, by alias and why.
    pub affinity_moves: HashMap<(LabelId, &'static str), u64>,
    /// Cache results.
    pub cache: HashMap<CacheKey, u64>,
    /// Request latencies by alias.
    pub latency: HashMap<LabelId, RequestLatencies>,
    /// Attempt latencies by provider.
    pub upstream: HashMap<LabelId, Latency>,
    /// The last published gauges.
    pub gauges: ShardGauges,
    empty: Latency,
}

impl ShardSeries {
    /// Empty series; `empty` is the histogram every new one starts as.
    pub fn new(empty: Latency) -> Self {
        Self {
            labels: LabelIndex::default(),
            requests: HashMap::new(),
            errors: HashMap::new(),
            attempts: HashMap::new(),
            failovers: HashMap::new(),
            budget_spent: HashMap::new(),
            affinity_moves: HashMap::new(),
            cache: HashMap::new(),
            latency: HashMap::new(),
            upstream: HashMap::new(),
            gauges: ShardGauges::default(),
            empty,
        }
    }

    /// Counts one finished request. `table` is the current route table: label values it
    /// does not name collapse into `other`.
    pub fn observe(&mut self, table: &RouteTable, r: &RequestRecord) {
        self.labels.refresh(table);
        let l = &self.labels;
        let alias = l.id(Dimension::Alias, r.model.as_deref());
        let provider = l.id(Dimension::Provider, r.provider.as_deref());
        let model = l.id(Dimension::UpstreamModel, r.upstream_model.as_deref());
        let tenant = l.id(Dimension::Tenant, r.tenant.as_deref());

        let counts = self
            .requests
            .entry(RequestKey {
                alias,
                provider,
                model,
                tenant,
                endpoint: r.endpoint,
                status: status_class(r.status),
            })
            .or_default();
        counts.requests += 1;
        counts.tokens_in += r.tokens_in.unwrap_or(0);
        counts.tokens_out += r.tokens_out.unwrap_or(0);
        counts.tokens_cached += r.tokens_cached.unwrap_or(0);
        counts.cost_usd += r.cost_usd.filter(|c| c.is_finite()).unwrap_or(0.0);

        if let Some(error) = error_label(r.error.as_deref(), r.status) {
            *self
                .errors
                .entry(ErrorKey {
                    alias,
                    provider,
                    tenant,
                    error,
                })
                .or_default() += 1;
        }
        if let Some(cache) = r.cache {
            *self
                .cache
                .entry(CacheKey {
                    alias,
                    tenant,
                    result: cache_result(cache),
                })
                .or_default() += 1;
        }
        let failovers = r.attempts.len().saturating_sub(1) as u64;
        if failovers > 0 {
            *self.failovers.entry(alias).or_default() += failovers;
        }
        if r.retry_budget_spent {
            *self.budget_spent.entry(alias).or_default() += 1;
        }
        if let Some(why) = r.affinity_moved {
            *self.affinity_moves.entry((alias, why)).or_default() += 1;
        }
        for a in &r.attempts {
            let provider = l.id(Dimension::Provider, Some(&a.provider));
            let key = AttemptKey {
                provider,
                model: l.id(Dimension::UpstreamModel, Some(&a.model)),
                result: attempt_result(a.error.as_deref(), a.status),
            };
            *self.attempts.entry(key).or_default() += 1;
            self.upstream
                .entry(provider)
                .or_insert_with(|| self.empty.empty_like())
                .record_ms(a.latency_ms);
        }

        let empty = &self.empty;
        let latency = self
            .latency
            .entry(alias)
            .or_insert_with(|| RequestLatencies {
                total: empty.empty_like(),
                ttfb: empty.empty_like(),
                overhead: empty.empty_like(),
            });
        latency.total.record_ms(r.latency_ms);
        if let Some(ttfb) = r.ttfb_ms {
            latency.ttfb.record_ms(ttfb);
        }
        latency.overhead.record_ms(r.gateway_ms());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::observe::AttemptRecord;

    const CFG: &str = r#"
[providers.p]
kind = "mock"
[providers.q]
kind = "mock"
[models.a]
targets = [{ provider = "p", model = "up-a" }, { provider = "q", model = "up-b" }]
[tenants.acme]
"#;

    fn record() -> RequestRecord {
        let mut r = RequestRecord::started("r".into(), 0);
        r.model = Some("a".into());
        r.provider = Some("q".into());
        r.upstream_model = Some("up-b".into());
        r.tenant = Some("acme".into());
        r.status = 200;
        r.latency_ms = 12.0;
        r.ttfb_ms = Some(9.0);
        r.tokens_in = Some(100);
        r.tokens_out = Some(20);
        r.tokens_cached = Some(60);
        r.cost_usd = Some(0.25);
        r.cache = Some("miss");
        r.attempts = vec![
            AttemptRecord {
                provider: "p".into(),
                model: "up-a".into(),
                status: None,
                error: Some("connect".into()),
                latency_ms: 1.0,
                start_ms: 0.5,
            },
            AttemptRecord {
                provider: "q".into(),
                model: "up-b".into(),
                status: Some(200),
                error: None,
                latency_ms: 10.0,
                start_ms: 1.5,
            },
        ];
        r
    }

    #[test]
    fn a_record_counts_everywhere_it_belongs() {
        let table = RouteTable::compile(&Config::parse(CFG).unwrap()).unwrap();
        let mut s = ShardSeries::new(Latency::new().unwrap());
        s.observe(&table, &record());
        s.observe(&table, &record());
        let mut unknown = RequestRecord::started("u".into(), 0);
        unknown.model = Some("made-up".into());
        unknown.status = 404;
        unknown.error = Some("model_not_found".into());
        s.observe(&table, &unknown);

        let name = |id| s.labels.name(id).to_string();
        assert_eq!(s.requests.len(), 2);
        let (key, counts) = s.requests.iter().find(|(k, _)| k.status == "2xx").unwrap();
        assert_eq!(
            (
                name(key.alias),
                name(key.provider),
                name(key.model),
                name(key.tenant)
            ),
            ("a".into(), "q".into(), "up-b".into(), "acme".into())
        );
        assert_eq!(counts.requests, 2);
        assert_eq!(
            (counts.tokens_in, counts.tokens_out, counts.tokens_cached),
            (200, 40, 120)
        );
        assert!((counts.cost_usd - 0.5).abs() < 1e-12);
        let (key, _) = s.requests.iter().find(|(k, _)| k.status == "4xx").unwrap();
        assert_eq!(
            (name(key.alias), name(key.provider)),
            ("other".into(), "none".into())
        );

        assert_eq!(s.errors.len(), 1);
        assert_eq!(s.errors.keys().next().unwrap().error, "model_not_found");
        assert_eq!(s.failovers.values().sum::<u64>(), 2);
        let results: Vec<(String, &str, u64)> = s
            .attempts
            .iter()
            .map(|(k, n)| (name(k.provider), k.result, *n))
            .collect();
        assert!(results.contains(&("p".into(), "connect", 2)), "{results:?}");
        assert!(results.contains(&("q".into(), "2xx", 2)), "{results:?}");
        assert_eq!(s.cache.values().sum::<u64>(), 2);

        let alias = s.labels.id(Dimension::Alias, Some("a"));
        let l = &s.latency[&alias];
        assert_eq!(l.total.count(), 2);
        assert_eq!(l.ttfb.count(), 2);
        // 12 ms total less 11 ms of attempts.
        assert!((l.overhead.quantile_seconds(0.5) - 0.001).abs() < 0.00002);
        let q = s.labels.id(Dimension::Provider, Some("q"));
        assert!((s.upstream[&q].quantile_seconds(0.5) - 0.010).abs() < 0.0002);
    }
}
