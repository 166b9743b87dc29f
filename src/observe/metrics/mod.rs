//! Prometheus metrics: each shard counts its own finished requests ([`ShardMetrics`], called
//! from the one place a record is sent), the admin listener merges the shards when
//! `GET /metrics` is scraped ([`Metrics::render`]).
//!
//! **How the scraper reads a shard.** Each shard's series sit behind a `Mutex` that only that
//! shard and the scraper ever take: the shard once per finished request, the scraper once per
//! shard per scrape. An uncontended lock is one atomic exchange on a cache line the shard
//! already owns, so the hot path shares nothing with other shards; a scrape holds a shard's
//! lock while it adds that shard's counts and histograms into its own copy (microseconds).
//! Latencies are HDR histograms per shard, merged at scrape time into Prometheus buckets and
//! quantiles (see `latency.rs`). Gauges the shard alone can read (connections, in-flight
//! requests, streams, idle upstream connections) are published by the shard every second.
//!
//! **Cardinality.** Label values come from the route table (aliases, providers, upstream
//! models, tenants) or from fixed lists (endpoints, status classes, error codes, cache
//! results, attempt results); anything else is `other`, an absent value `none` (`labels.rs`).

mod labels;
mod latency;
mod render;
mod scrape;
mod series;

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use labels::{NONE, OTHER};
pub use latency::{HistogramError, Latency, BUCKETS_SECONDS, QUANTILES};
pub use render::Format;
pub use series::{ShardGauges, ShardSeries};

use super::writer::RecordDrops;
use super::RequestRecord;
use crate::embed::EmbedderStats;
use crate::route::SharedRouteTable;

/// Where process-wide gauges come from besides the shards.
#[derive(Clone, Default)]
pub struct MetricSources {
    /// The request log's drop counter.
    pub record_drops: RecordDrops,
    /// The embedder's queue and batches, and the queue's capacity, when it runs.
    pub embedder: Option<(Arc<EmbedderStats>, usize)>,
}

/// The process's metrics: one series set per shard, and what the scraper needs to merge
/// and render them.
pub struct Metrics {
    shards: Vec<Arc<Mutex<ShardSeries>>>,
    table: SharedRouteTable,
    sources: MetricSources,
    windows: Mutex<scrape::Windows>,
}

impl Metrics {
    /// Metrics for `shards` shards serving `table`.
    pub fn new(
        shards: usize,
        table: SharedRouteTable,
        sources: MetricSources,
    ) -> Result<Arc<Self>, HistogramError> {
        let empty = Latency::new()?;
        let series = (0..shards.max(1))
            .map(|_| Arc::new(Mutex::new(ShardSeries::new(empty.empty_like()))))
            .collect();
        Ok(Arc::new(Self {
            shards: series,
            table,
            sources,
            windows: Mutex::new(scrape::Windows::default()),
        }))
    }

    /// The handle shard `id` counts with.
    pub fn shard(&self, id: usize) -> ShardMetrics {
        let series = self.shards.get(id).or_else(|| self.shards.last()).cloned();
        ShardMetrics {
            series,
            table: Some(Arc::clone(&self.table)),
            streams: Cell::new(0),
        }
    }

    /// The scrape: every shard merged, in `format`.
    pub fn render(&self, format: Format) -> String {
        scrape::render(self, format)
    }
}

/// Locks a shard's series; a panic while holding it cannot leave counts half-written in a
/// way that matters, so a poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A shard's handle on its own series (in `ShardCtx`). Disabled, every call returns at once.
pub struct ShardMetrics {
    series: Option<Arc<Mutex<ShardSeries>>>,
    table: Option<SharedRouteTable>,
    streams: Cell<u64>,
}

impl ShardMetrics {
    /// A handle that counts nothing (`[metrics] enabled = false`, or no admin listener).
    pub fn disabled() -> Self {
        Self {
            series: None,
            table: None,
            streams: Cell::new(0),
        }
    }

    /// Whether this shard keeps metrics.
    pub fn is_on(&self) -> bool {
        self.series.is_some()
    }

    /// Counts a finished request from its record.
    pub fn observe(&self, record: &RequestRecord) {
        let (Some(series), Some(table)) = (&self.series, &self.table) else {
            return;
        };
        let table = table.load();
        lock(series).observe(&table, record);
    }

    /// Counts a stream being relayed until the guard drops.
    pub fn open_stream(&self) -> StreamGuard<'_> {
        self.streams.set(self.streams.get() + 1);
        StreamGuard { metrics: self }
    }

    /// Publishes the shard's gauges (its streams are filled in here).
    pub fn publish(&self, mut gauges: ShardGauges) {
        if let Some(series) = &self.series {
            gauges.streams = self.streams.get();
            lock(series).gauges = gauges;
        }
    }
}

/// One stream being relayed (see [`ShardMetrics::open_stream`]).
pub struct StreamGuard<'a> {
    metrics: &'a ShardMetrics,
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        let s = &self.metrics.streams;
        s.set(s.get().saturating_sub(1));
    }
}
