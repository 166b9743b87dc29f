//! The scrape: each shard's series merged by label names (one short lock per shard), the
//! process-wide gauges read, everything written in the scraper's format.
//!
//! Summary quantiles cover a sliding window, as Prometheus client libraries' summaries do:
//! the scraper keeps a copy of each merged histogram at most [`WINDOW`] old and reports the
//! quantiles of what was recorded since (between one and two windows of traffic; since the
//! start for the first window). `_sum` and `_count` stay cumulative. The buckets are
//! cumulative too, so `histogram_quantile` over `rate(..._bucket)` works as usual.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::labels::LabelIndex;
use super::latency::Latency;
use super::render::{Exposition, Format, Kind};
use super::series::{RequestCounts, ShardGauges, ShardSeries};
use super::{lock, Metrics};
use crate::embed::BATCH_SIZE_BUCKETS;
use crate::route::{BenchReason, RouteTable};

/// How far back summary quantiles look (at least; at most twice as far).
pub const WINDOW: Duration = Duration::from_secs(60);

/// The copies each summary's window is measured from, kept between scrapes.
#[derive(Default)]
pub struct Windows {
    by_series: HashMap<(&'static str, String), Window>,
}

struct Window {
    base: Latency,
    next: Latency,
    next_at: Instant,
}

impl Windows {
    /// What `current` (cumulative) recorded in the window ending now.
    fn recent(&mut self, family: &'static str, label: &str, current: &Latency) -> Latency {
        let now = Instant::now();
        let w = self
            .by_series
            .entry((family, label.to_string()))
            .or_insert_with(|| Window {
                base: current.empty_like(),
                next: current.clone(),
                next_at: now,
            });
        if now.duration_since(w.next_at) >= WINDOW {
            w.base = std::mem::replace(&mut w.next, current.clone());
            w.next_at = now;
        }
        current.since(&w.base)
    }
}

type Names4 = (String, String, String, String);

/// Every shard's series, added up by label names.
#[derive(Default)]
struct Merged {
    requests: BTreeMap<(Names4, &'static str, &'static str), u64>,
    usage: BTreeMap<Names4, RequestCounts>,
    errors: BTreeMap<(String, String, String, &'static str), u64>,
    attempts: BTreeMap<(String, String, &'static str), u64>,
    failovers: BTreeMap<String, u64>,
    budget_spent: BTreeMap<String, u64>,
    affinity_moves: BTreeMap<(String, &'static str), u64>,
    cache: BTreeMap<(String, String, &'static str), u64>,
    total: BTreeMap<String, Latency>,
    ttfb: BTreeMap<String, Latency>,
    overhead: BTreeMap<String, Latency>,
    upstream: BTreeMap<String, Latency>,
    shards: Vec<ShardGauges>,
}

fn add_latency(map: &mut BTreeMap<String, Latency>, name: &str, l: &Latency) {
    match map.get_mut(name) {
        Some(m) => m.add(l),
        None => {
            map.insert(name.to_string(), l.clone());
        }
    }
}

impl Merged {
    fn add(&mut self, s: &ShardSeries) {
        let n = |id| LabelIndex::name(&s.labels, id).to_string();
        for (k, c) in &s.requests {
            let names = (n(k.alias), n(k.provider), n(k.model), n(k.tenant));
            *self
                .requests
                .entry((names.clone(), k.endpoint, k.status))
                .or_default() += c.requests;
            let u = self.usage.entry(names).or_default();
            u.requests += c.requests;
            u.tokens_in += c.tokens_in;
            u.tokens_out += c.tokens_out;
            u.tokens_cached += c.tokens_cached;
            u.cost_usd += c.cost_usd;
        }
        for (k, v) in &s.errors {
            *self
                .errors
                .entry((n(k.alias), n(k.provider), n(k.tenant), k.error))
                .or_default() += v;
        }
        for (k, v) in &s.attempts {
            *self
                .attempts
                .entry((n(k.provider), n(k.model), k.result))
                .or_default() += v;
        }
        for (k, v) in &s.failovers {
            *self.failovers.entry(n(*k)).or_default() += v;
        }
        for (k, v) in &s.budget_spent {
            *self.budget_spent.entry(n(*k)).or_default() += v;
        }
        for ((k, why), v) in &s.affinity_moves {
            *self.affinity_moves.entry((n(*k), *why)).or_default() += v;
        }
        for (k, v) in &s.cache {
            *self
                .cache
                .entry((n(k.alias), n(k.tenant), k.result))
                .or_default() += v;
        }
        for (alias, l) in &s.latency {
            let name = s.labels.name(*alias);
            add_latency(&mut self.total, name, &l.total);
            add_latency(&mut self.ttfb, name, &l.ttfb);
            add_latency(&mut self.overhead, name, &l.overhead);
        }
        for (provider, l) in &s.upstream {
            add_latency(&mut self.upstream, s.labels.name(*provider), l);
        }
        self.shards.push(s.gauges.clone());
    }
}

/// Merges the shards and writes the exposition.
pub fn render(m: &Metrics, format: Format) -> String {
    let mut merged = Merged::default();
    for shard in &m.shards {
        merged.add(&lock(shard));
    }
    let mut e = Exposition::new(format);
    counters(&mut e, &merged);
    {
        let mut windows = lock(&m.windows);
        let latencies = [
            (
                "infergate_request_duration_seconds",
                "infergate_request_duration_quantiles_seconds",
                "model",
                &merged.total,
                "Time from the request's first byte to its last response byte",
            ),
            (
                "infergate_time_to_first_byte_seconds",
                "infergate_time_to_first_byte_quantiles_seconds",
                "model",
                &merged.ttfb,
                "Time from the request's first byte to the first response byte sent to the client",
            ),
            (
                "infergate_gateway_overhead_seconds",
                "infergate_gateway_overhead_quantiles_seconds",
                "model",
                &merged.overhead,
                "The gateway's own time per request: the total less the time spent waiting on providers",
            ),
            (
                "infergate_upstream_duration_seconds",
                "infergate_upstream_duration_quantiles_seconds",
                "provider",
                &merged.upstream,
                "Time of one attempt at a provider",
            ),
        ];
        for (name, quantiles, label, series, help) in latencies {
            e.family(name, Kind::Histogram, &format!("{help}, by {label}."));
            for (value, l) in series {
                e.histogram(name, &[(label, value)], l);
            }
            e.family(
                quantiles,
                Kind::Summary,
                &format!(
                    "{help}, by {label}: quantiles over the last 1 to 2 minutes (sum and count since the start)."
                ),
            );
            for (value, l) in series {
                let recent = windows.recent(name, value, l);
                e.summary(quantiles, &[(label, value)], &recent, l);
            }
        }
    }
    shard_gauges(&mut e, &merged.shards);
    process(&mut e, m);
    e.finish()
}

fn counters(e: &mut Exposition, m: &Merged) {
    let name = "infergate_requests_total";
    e.family(name, Kind::Counter, "Requests finished, by model alias, the provider and upstream model that answered, tenant, endpoint and status class.");
    for ((k, endpoint, status), v) in &m.requests {
        let labels = [
            ("model", k.0.as_str()),
            ("provider", &k.1),
            ("upstream_model", &k.2),
            ("tenant", &k.3),
            ("endpoint", endpoint),
            ("status_class", status),
        ];
        e.sample(name, &labels, *v as f64);
    }
    let name = "infergate_request_errors_total";
    e.family(name, Kind::Counter, "Requests that failed, by model alias, provider, tenant and error (the gateway's error code, upstream_4xx/upstream_5xx for a provider's error passed on, other for an unknown code).");
    for ((model, provider, tenant, error), v) in &m.errors {
        let labels = [
            ("model", model.as_str()),
            ("provider", provider),
            ("tenant", tenant),
            ("error", error),
        ];
        e.sample(name, &labels, *v as f64);
    }
    let name = "infergate_upstream_attempts_total";
    e.family(name, Kind::Counter, "Attempts at providers, by provider, upstream model and result (status class or transport error).");
    for ((provider, model, result), v) in &m.attempts {
        let labels = [
            ("provider", provider.as_str()),
            ("upstream_model", model),
            ("result", result),
        ];
        e.sample(name, &labels, *v as f64);
    }
    let name = "infergate_failovers_total";
    e.family(
        name,
        Kind::Counter,
        "Moves from a failed target to the next one, by model alias.",
    );
    for (model, v) in &m.failovers {
        e.sample(name, &[("model", model)], *v as f64);
    }
    let name = "infergate_retry_budget_spent_total";
    e.family(
        name,
        Kind::Counter,
        "Requests whose retries the alias's retry budget cut short, by model alias.",
    );
    for (model, v) in &m.budget_spent {
        e.sample(name, &[("model", model)], *v as f64);
    }
    let name = "infergate_affinity_moves_total";
    e.family(
        name,
        Kind::Counter,
        "Session calls sent away from the session's own target, by model alias and reason (ejected, rate_limited).",
    );
    for ((model, reason), v) in &m.affinity_moves {
        e.sample(name, &[("model", model), ("reason", reason)], *v as f64);
    }
    let name = "infergate_cache_requests_total";
    e.family(
        name,
        Kind::Counter,
        "Requests on cached aliases, by model alias, tenant and cache result (hit, semantic, miss, skip, refresh).",
    );
    for ((model, tenant, result), v) in &m.cache {
        let labels = [
            ("model", model.as_str()),
            ("tenant", tenant),
            ("result", result),
        ];
        e.sample(name, &labels, *v as f64);
    }
    let name = "infergate_tokens_total";
    e.family(name, Kind::Counter, "Tokens, by model alias, provider, upstream model, tenant and type (input; output; cached: the input tokens read from the provider's prompt cache, also counted in input).");
    for (k, u) in &m.usage {
        for (kind, v) in [
            ("input", u.tokens_in),
            ("output", u.tokens_out),
            ("cached", u.tokens_cached),
        ] {
            let labels = [
                ("model", k.0.as_str()),
                ("provider", &k.1),
                ("upstream_model", &k.2),
                ("tenant", &k.3),
                ("type", kind),
            ];
            e.sample(name, &labels, v as f64);
        }
    }
    let name = "infergate_cost_usd_total";
    e.family(
        name,
        Kind::Counter,
        "What requests cost in US dollars, by model alias, provider, upstream model and tenant.",
    );
    for (k, u) in &m.usage {
        let labels = [
            ("model", k.0.as_str()),
            ("provider", &k.1),
            ("upstream_model", &k.2),
            ("tenant", &k.3),
        ];
        e.sample(name, &labels, u.cost_usd);
    }
}

/// A per-shard gauge family: name, help, and how to read it.
type GaugeFamily = (&'static str, &'static str, fn(&ShardGauges) -> u64);

fn shard_gauges(e: &mut Exposition, shards: &[ShardGauges]) {
    let families: [GaugeFamily; 3] = [
        (
            "infergate_client_connections",
            "Open client connections, by shard (published every second).",
            |g| g.connections,
        ),
        (
            "infergate_inflight_requests",
            "Requests being served, by shard (published every second).",
            |g| g.inflight,
        ),
        (
            "infergate_open_streams",
            "Streamed answers being relayed, by shard (published every second).",
            |g| g.streams,
        ),
    ];
    for (name, help, value) in families {
        e.family(name, Kind::Gauge, help);
        for (i, g) in shards.iter().enumerate() {
            e.sample(name, &[("shard", &i.to_string())], value(g) as f64);
        }
    }
    let name = "infergate_upstream_idle_connections";
    e.family(
        name,
        Kind::Gauge,
        "Idle pooled upstream connections, by shard and provider (published every second).",
    );
    for (i, g) in shards.iter().enumerate() {
        let shard = i.to_string();
        for (provider, n) in &g.idle_upstream {
            e.sample(
                name,
                &[("shard", &shard), ("provider", provider)],
                *n as f64,
            );
        }
    }
}

/// The targets' ejections and benchings, added up over the shards' published views; only
/// targets the table names (their labels stay within the config, as every label's do).
fn target_health(e: &mut Exposition, table: &RouteTable) {
    let named: BTreeSet<(&str, &str)> = table
        .models
        .values()
        .flat_map(|r| r.all_targets())
        .map(|t| (t.provider.name.as_str(), &*t.model))
        .collect();
    let mut targets = table.state.board.targets(Instant::now());
    targets.retain(|(p, m), _| named.contains(&(p.as_str(), m.as_str())));
    let name = "infergate_target_ejections_total";
    e.family(
        name,
        Kind::Counter,
        "Times a shard ejected a target after failures in a row, by provider and upstream model.",
    );
    for ((provider, model), h) in &targets {
        let labels = [("provider", provider.as_str()), ("upstream_model", model)];
        e.sample(name, &labels, h.ejections as f64);
    }
    let name = "infergate_target_benched_total";
    e.family(name, Kind::Counter, "Times a shard benched a target, by provider, upstream model and reason (429: the provider refused with 429; rate_limit_headers: its answer said nothing is left until a reset).");
    for ((provider, model), h) in &targets {
        for reason in BenchReason::ALL {
            let n = h.benched.get(reason.index()).copied().unwrap_or(0);
            let labels = [
                ("provider", provider.as_str()),
                ("upstream_model", model),
                ("reason", reason.as_str()),
            ];
            e.sample(name, &labels, n as f64);
        }
    }
}

fn process(e: &mut Exposition, m: &Metrics) {
    e.single(
        "infergate_records_dropped_total",
        Kind::Counter,
        "Request records dropped because the request log's queue was full.",
        m.sources.record_drops.count() as f64,
    );
    let table = m.table.load();
    e.single(
        "infergate_route_table_version",
        Kind::Gauge,
        "Version of the route table being served (it grows with each reload).",
        table.version as f64,
    );
    let name = "infergate_provider_available";
    e.family(name, Kind::Gauge, "Whether a provider can be used (1) or is skipped (0: its credential is missing), by provider.");
    let mut providers: Vec<_> = table.providers.values().collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    for p in &providers {
        let up = if p.unavailable.is_none() { 1.0 } else { 0.0 };
        e.sample(name, &[("provider", &p.name)], up);
    }
    let name = "infergate_upstream_in_flight";
    e.family(name, Kind::Gauge, "Attempts in flight at a provider over all shards, from sending the request until the answer's body or stream ended, by provider.");
    for p in &providers {
        e.sample(
            name,
            &[("provider", &p.name)],
            f64::from(p.load.in_flight()),
        );
    }
    let name = "infergate_upstream_concurrency_refusals_total";
    e.family(name, Kind::Counter, "Times a request passed a provider over because it had max_concurrency attempts in flight, by provider.");
    for p in &providers {
        e.sample(name, &[("provider", &p.name)], p.load.refused() as f64);
    }
    target_health(e, &table);
    if let Some((stats, capacity)) = &m.sources.embedder {
        e.single(
            "infergate_embedder_queue_depth",
            Kind::Gauge,
            "Prompts waiting for the embedder (the batch being embedded not counted).",
            stats.queued() as f64,
        );
        e.single(
            "infergate_embedder_queue_capacity",
            Kind::Gauge,
            "Most prompts the embedder's queue holds ([embedder] max_queue).",
            *capacity as f64,
        );
        e.single(
            "infergate_embedder_rejected_total",
            Kind::Counter,
            "Semantic-cache lookups refused because the embedder's queue was full.",
            stats.rejected_full() as f64,
        );
        let name = "infergate_embedder_batch_size";
        e.family(name, Kind::Histogram, "Prompts per embedder batch.");
        let per_bucket = stats.batches();
        let mut running = 0;
        let mut cumulative = [0u64; BATCH_SIZE_BUCKETS.len()];
        for (c, n) in cumulative.iter_mut().zip(per_bucket) {
            running += n;
            *c = running;
        }
        let count = per_bucket.iter().sum();
        let bounds = BATCH_SIZE_BUCKETS.map(|b| b as f64);
        e.histogram_counts(
            name,
            &bounds,
            &cumulative,
            stats.batch_prompts() as f64,
            count,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::super::{MetricSources, Metrics};
    use super::*;
    use crate::config::Config;
    use crate::observe::RequestRecord;
    use crate::route::RouteTable;

    fn metrics(shards: usize) -> std::sync::Arc<Metrics> {
        let cfg = Config::parse(
            "[providers.p]\nkind = \"mock\"\n[providers.off]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"INFERGATE_TEST_UNSET_VARIABLE_4711\"\n[models.a]\ntargets = [{ provider = \"p\", model = \"up\" }]\n",
        )
        .unwrap();
        let table = RouteTable::compile(&cfg).unwrap();
        let table = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(table));
        Metrics::new(shards, table, MetricSources::default()).unwrap()
    }

    fn record(ms: f64) -> RequestRecord {
        let mut r = RequestRecord::started("r".into(), 0);
        r.model = Some("a".into());
        r.provider = Some("p".into());
        r.upstream_model = Some("up".into());
        r.status = 200;
        r.latency_ms = ms;
        r.tokens_in = Some(3);
        r
    }

    #[test]
    fn shards_are_merged_by_name() {
        let m = metrics(2);
        let (s0, s1) = (m.shard(0), m.shard(1));
        s0.observe(&record(1.0));
        s1.observe(&record(3.0));
        s1.observe(&record(3.0));
        let text = m.render(Format::Prometheus);
        assert!(text.contains("infergate_requests_total{model=\"a\",provider=\"p\",upstream_model=\"up\",tenant=\"none\",endpoint=\"chat.completions\",status_class=\"2xx\"} 3\n"), "{text}");
        assert!(text.contains("infergate_tokens_total{model=\"a\",provider=\"p\",upstream_model=\"up\",tenant=\"none\",type=\"input\"} 9\n"), "{text}");
        assert!(text
            .contains("infergate_request_duration_seconds_bucket{model=\"a\",le=\"0.001\"} 1\n"));
        assert!(text
            .contains("infergate_request_duration_seconds_bucket{model=\"a\",le=\"0.005\"} 3\n"));
        assert!(text.contains("infergate_request_duration_seconds_count{model=\"a\"} 3\n"));
        assert!(text.contains(
            "infergate_request_duration_quantiles_seconds{model=\"a\",quantile=\"0.5\"} 0.003"
        ));
        assert!(text.contains("infergate_provider_available{provider=\"off\"} 0\n"));
        assert!(text.contains("infergate_provider_available{provider=\"p\"} 1\n"));
        assert!(text.contains("infergate_records_dropped_total 0\n"));
        assert!(text.contains("infergate_route_table_version "));
        // No embedder: no embedder families.
        assert!(!text.contains("infergate_embedder"));
    }

    #[test]
    fn gauges_are_per_shard_and_streams_counted_by_guard() {
        let m = metrics(2);
        let s1 = m.shard(1);
        let guard = s1.open_stream();
        s1.publish(ShardGauges {
            connections: 4,
            inflight: 2,
            streams: 0,
            idle_upstream: vec![("p".into(), 3)],
        });
        drop(guard);
        let text = m.render(Format::OpenMetrics);
        assert!(text.contains("infergate_client_connections{shard=\"1\"} 4\n"));
        assert!(text.contains("infergate_client_connections{shard=\"0\"} 0\n"));
        assert!(text.contains("infergate_open_streams{shard=\"1\"} 1\n"));
        assert!(
            text.contains("infergate_upstream_idle_connections{shard=\"1\",provider=\"p\"} 3\n")
        );
        assert!(text.contains("# TYPE infergate_requests counter\n"));
        assert!(text.ends_with("# EOF\n"));
        s1.publish(ShardGauges::default());
        assert!(m
            .render(Format::Prometheus)
            .contains("infergate_open_streams{shard=\"1\"} 0\n"));
    }

    #[test]
    fn quantiles_cover_the_window_and_sums_stay_cumulative() {
        let mut w = Windows::default();
        let mut l = Latency::new().unwrap();
        l.record_ms(100.0);
        let first = w.recent("f", "a", &l);
        assert_eq!(first.count(), 1, "the first window starts at zero");
        // Pretend the window's copy is a window old: the next scrape moves the base.
        w.by_series
            .get_mut(&("f", "a".to_string()))
            .unwrap()
            .next_at -= WINDOW;
        l.record_ms(5.0);
        let second = w.recent("f", "a", &l);
        assert_eq!(second.count(), 1, "only the value recorded since the copy");
        assert!((second.quantile_seconds(0.99) - 0.005).abs() < 0.0001);
    }

    #[test]
    fn providers_in_flight_and_targets_health_are_rendered() {
        use crate::route::{AttemptResult, EjectPolicy, Publish, RouteHealth};
        let m = metrics(1);
        let table = m.table.load();
        let p = &table.providers["p"];
        let permit = p.try_acquire().unwrap();
        p.load.note_refusal();
        let health = RouteHealth::new();
        let eject = EjectPolicy {
            consecutive_failures: 1,
            cooldown: Duration::from_secs(9),
        };
        let now = Instant::now();
        for (provider, model) in [("p", "up"), ("gone", "x")] {
            health.begin(provider, model, now);
            health.end(provider, model, AttemptResult::Failed, eject, now);
        }
        health.publish(&table.state.board, 0, Publish::StateChanges);
        let text = m.render(Format::Prometheus);
        for line in [
            "infergate_upstream_in_flight{provider=\"p\"} 1\n",
            "infergate_upstream_in_flight{provider=\"off\"} 0\n",
            "infergate_upstream_concurrency_refusals_total{provider=\"p\"} 1\n",
            "infergate_target_ejections_total{provider=\"p\",upstream_model=\"up\"} 1\n",
            "infergate_target_benched_total{provider=\"p\",upstream_model=\"up\",reason=\"429\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        // A target the table does not name stays out of the labels.
        assert!(!text.contains("provider=\"gone\""), "{text}");
        drop(permit);
        assert!(m
            .render(Format::Prometheus)
            .contains("infergate_upstream_in_flight{provider=\"p\"} 0\n"));
    }

    #[test]
    fn a_disabled_handle_counts_nothing() {
        let off = super::super::ShardMetrics::disabled();
        assert!(!off.is_on());
        off.observe(&record(1.0));
        off.publish(ShardGauges::default());
        let m = metrics(1);
        assert!(m.shard(0).is_on());
    }
}
