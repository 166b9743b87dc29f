//! What one shard owns (its pool, parse scratch, record sink) and the process lifecycle flag.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use monoio_rustls::TlsConnector;

use super::caching::Caches;
use crate::api::JsonScratch;
use crate::observe::RecordSink;
use crate::route::SharedRouteTable;
use crate::upstream::ConnPool;

/// Process-wide lifecycle: set once when shutdown begins; shards stop accepting and drain.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    /// A running process.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the drain (idempotent).
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Per-shard state. Lives in an `Rc` on the shard's thread: nothing here is shared or locked.
pub struct ShardCtx {
    /// The shard's index (also its core).
    pub shard_id: usize,
    /// The route table, read once per request.
    pub table: SharedRouteTable,
    /// Idle upstream connections.
    pub pool: ConnPool,
    /// Reusable buffers for parsing request bodies.
    pub scratch: RefCell<JsonScratch>,
    /// TLS client configuration.
    pub tls: TlsConnector,
    /// Where request records go.
    pub records: RecordSink,
    /// Shutdown flag shared by all shards.
    pub lifecycle: Arc<Lifecycle>,
    /// Response caches and the embedder (shared by all shards).
    pub caches: Option<Arc<Caches>>,
    inflight: Cell<usize>,
}

impl ShardCtx {
    /// Builds a shard's context.
    pub fn new(
        shard_id: usize,
        table: SharedRouteTable,
        tls: TlsConnector,
        records: RecordSink,
        lifecycle: Arc<Lifecycle>,
        caches: Option<Arc<Caches>>,
    ) -> Self {
        Self {
            shard_id,
            table,
            pool: ConnPool::new(),
            scratch: RefCell::new(JsonScratch::new()),
            tls,
            records,
            lifecycle,
            caches,
            inflight: Cell::new(0),
        }
    }

    /// Requests being served right now on this shard.
    pub fn inflight(&self) -> usize {
        self.inflight.get()
    }

    /// Counts a request in flight until the guard drops.
    pub fn enter(&self) -> InflightGuard<'_> {
        self.inflight.set(self.inflight.get() + 1);
        InflightGuard { ctx: self }
    }
}

/// Decrements the in-flight count when a request ends, however it ends.
pub struct InflightGuard<'a> {
    ctx: &'a ShardCtx,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.ctx
            .inflight
            .set(self.ctx.inflight.get().saturating_sub(1));
    }
}
