//! What one shard owns (its pool, parse scratch, record sink) and the process lifecycle flag.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use monoio_rustls::TlsConnector;

use super::caching::Caches;
use crate::api::JsonScratch;
use crate::guardrails::schema::ValidatorCache;
use crate::http::BodyBudget;
use crate::observe::metrics::ShardMetrics;
use crate::observe::RecordSink;
use crate::policy::LocalGovernor;
use crate::route::{RetryBudgets, RouteHealth, SharedRouteTable};
use crate::upstream::{ConnPool, UpstreamRegistry};

/// Process-wide lifecycle: set once when shutdown begins; shards stop accepting and drain.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    drain_timeout_ms: std::sync::atomic::AtomicU64,
}

impl Lifecycle {
    /// A running process.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how long a drain may take (from `[server] drain_timeout_ms`).
    pub fn set_drain_timeout(&self, d: std::time::Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.drain_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// When a process that began draining must be gone at the latest: the drain timeout
    /// plus time to flush the request log.
    pub fn exit_deadline(&self) -> std::time::Duration {
        let drain = self.drain_timeout_ms.load(Ordering::Relaxed);
        std::time::Duration::from_millis(drain.saturating_add(5_000))
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
    /// Compiled JSON schemas clients asked for.
    pub validators: RefCell<ValidatorCache>,
    /// What this shard has learned about each target (ejections, rate limits, latency);
    /// survives table swaps.
    pub health: RouteHealth,
    /// Each alias's retry budget on this shard.
    pub retries: RetryBudgets,
    /// TLS client configuration.
    pub tls: TlsConnector,
    /// How each provider is reached (shared by all shards, swapped with the table).
    pub upstreams: Arc<UpstreamRegistry>,
    /// Limits and budgets of keys and tenants (shared by all shards, rules installed with
    /// each table).
    pub governor: Arc<LocalGovernor>,
    /// Where request records go.
    pub records: RecordSink,
    /// Where sampled requests' spans go.
    pub tracer: crate::observe::trace::Tracer,
    /// This shard's metrics, counted from each record.
    pub metrics: ShardMetrics,
    /// Shutdown flag shared by all shards.
    pub lifecycle: Arc<Lifecycle>,
    /// TLS termination for client connections (absent: plain HTTP).
    pub tls_server: Option<Arc<crate::http::tls::TlsTerminator>>,
    /// Response caches and the embedder (shared by all shards).
    pub caches: Option<Arc<Caches>>,
    /// The process-wide budget for request bodies in memory.
    pub bodies: BodyBudget,
    /// Fault injection for tests (`INFERGATE_FAILPOINTS`); off in production.
    pub failpoints: bool,
    /// Most connections this shard holds, whatever the config says: its share of the
    /// process's open-files limit.
    pub fd_connection_cap: usize,
    inflight: Cell<usize>,
    connections: Rc<Cell<usize>>,
    /// The client sockets open on this shard (shut down when a drain ends).
    pub open_sockets: Rc<super::open_sockets::OpenSockets>,
    /// When the last request ended during a drain (the drain waits until the shard has been
    /// quiet for a while before it closes idle connections).
    quiet_since: Cell<Option<std::time::Instant>>,
}

/// What a shard is started with besides its table, pools and sinks.
pub struct ShardLimits {
    /// The process-wide budget for request bodies in memory.
    pub bodies: BodyBudget,
    /// Most connections per shard that the open-files limit allows.
    pub fd_connection_cap: usize,
    /// Fault injection for tests.
    pub failpoints: bool,
    /// How each provider is reached.
    pub upstreams: Arc<UpstreamRegistry>,
    /// Limits and budgets of keys and tenants.
    pub governor: Arc<LocalGovernor>,
    /// Where sampled requests' spans go.
    pub tracer: crate::observe::trace::Tracer,
    /// The shard's metrics handle (disabled when metrics are off).
    pub metrics: ShardMetrics,
    /// TLS termination for client connections (absent: plain HTTP).
    pub tls_server: Option<Arc<crate::http::tls::TlsTerminator>>,
}

/// One open client connection, counted against the shard's limit until dropped (after its
/// socket, which the connection's task owns and drops first).
pub struct ConnectionSlot {
    count: Rc<Cell<usize>>,
    socket: (Rc<super::open_sockets::OpenSockets>, usize),
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.count.set(self.count.get().saturating_sub(1));
        self.socket.0.remove(self.socket.1);
    }
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
        limits: ShardLimits,
    ) -> Self {
        Self {
            shard_id,
            table,
            pool: ConnPool::new(),
            scratch: RefCell::new(JsonScratch::new()),
            validators: RefCell::new(ValidatorCache::new()),
            health: RouteHealth::new(),
            retries: RetryBudgets::new(),
            tls,
            upstreams: limits.upstreams,
            governor: limits.governor,
            records,
            tracer: limits.tracer,
            metrics: limits.metrics,
            lifecycle,
            tls_server: limits.tls_server,
            caches,
            bodies: limits.bodies,
            failpoints: limits.failpoints,
            fd_connection_cap: limits.fd_connection_cap,
            inflight: Cell::new(0),
            connections: Rc::new(Cell::new(0)),
            open_sockets: Rc::default(),
            quiet_since: Cell::new(None),
        }
    }

    /// Counts a new connection on socket `fd`, unless the shard already holds `max` (or its
    /// share of the open-files limit).
    pub fn open_connection(&self, max: usize, fd: std::os::fd::RawFd) -> Option<ConnectionSlot> {
        let n = self.connections.get();
        if n >= max.min(self.fd_connection_cap) {
            return None;
        }
        self.connections.set(n + 1);
        Some(ConnectionSlot {
            count: Rc::clone(&self.connections),
            socket: (Rc::clone(&self.open_sockets), self.open_sockets.insert(fd)),
        })
    }

    /// How long no request has been in flight or ended on this shard during the drain
    /// (`None`: a request is in flight, or none ended yet since the drain began).
    pub fn quiet_for(&self) -> Option<std::time::Duration> {
        if self.inflight.get() > 0 {
            return None;
        }
        self.quiet_since.get().map(|t| t.elapsed())
    }

    /// Starts the quiet clock when the drain begins.
    pub fn mark_quiet(&self) {
        self.quiet_since.set(Some(std::time::Instant::now()));
    }

    /// Client connections open on this shard.
    pub fn connections(&self) -> usize {
        self.connections.get()
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
        if self.ctx.lifecycle.is_draining() {
            self.ctx.mark_quiet();
        }
    }
}
