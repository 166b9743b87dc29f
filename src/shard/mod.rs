//! Shards: one thread per core, each pinned, each with its own monoio runtime (io_uring, or
//! epoll where io_uring can't be set up) and its own SO_REUSEPORT listener on the same address.
//! A connection lives and dies on the shard that accepted it.
//!
//! The listeners may be inherited from the process this one replaces (`crate::upgrade`): the
//! same sockets, so connections queued on them are accepted here. A shard accepts only once a
//! listener is readable, so stopping never drops a connection the kernel already handed over.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;
use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};
use socket2::{Domain, Protocol, Socket, Type};

pub mod allocations;
mod gauges;
pub mod heartbeat;
mod memory;
mod placement;
pub use heartbeat::{Heartbeats, Pulse};
pub use memory::release_freed_memory;
pub use placement::{allowed_cpus, CpuSetError, ShardPlan};

use crate::observe::RecordSink;
use crate::proxy::{serve_connection, Lifecycle, ShardCtx};
use crate::route::SharedRouteTable;

/// The IO driver a shard runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// io_uring.
    IoUring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

impl DriverKind {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::IoUring => "io_uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

/// Which driver to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// io_uring when it can be set up, else epoll.
    Auto,
    /// epoll only (`INFERGATE_DRIVER=epoll`).
    Epoll,
}

impl DriverChoice {
    /// Reads `INFERGATE_DRIVER` (`epoll` forces epoll; anything else is auto).
    pub fn from_env() -> Self {
        match std::env::var("INFERGATE_DRIVER").as_deref() {
            Ok("epoll") | Ok("legacy") => DriverChoice::Epoll,
            _ => DriverChoice::Auto,
        }
    }
}

/// Why the shards could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The listen address is not an address.
    #[error("invalid listen address {0:?}")]
    BadAddress(String),
    /// Binding or configuring a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A shard thread or runtime failed to start.
    #[error("shard {0} failed to start: {1}")]
    Start(usize, String),
}

/// Running shards.
pub struct Shards {
    /// The bound address (the real port when the config said port 0).
    pub local_addr: SocketAddr,
    /// The driver the shards run on.
    pub driver: DriverKind,
    /// Duplicates of the listening sockets, for a handoff to a new process (the shards close
    /// theirs when they stop accepting).
    pub handoff: Vec<std::net::TcpListener>,
    handles: Vec<JoinHandle<()>>,
    exits: mpsc::Receiver<ShardExit>,
    lifecycle: Arc<Lifecycle>,
    /// Each shard's heartbeat (read by `/admin/live`, `/admin/ready` and the watchdog).
    pub heartbeats: Arc<Heartbeats>,
}

/// A shard thread that ended, and whether it panicked.
struct ShardExit {
    id: usize,
    panicked: bool,
}

/// A shard stopped while the process was serving: nothing answers its share of connections
/// any more, so the process must end loudly (and be restarted by its supervisor).
#[derive(Debug, thiserror::Error)]
#[error("shard {id} stopped while serving ({how})")]
pub struct ShardDied {
    /// Which shard.
    pub id: usize,
    /// `panicked` or `exited`.
    pub how: &'static str,
}

impl Shards {
    /// Waits until every shard has drained and stopped. A shard that stops before the drain
    /// began is an error: the caller should exit non-zero at once.
    pub fn join(self) -> Result<(), ShardDied> {
        let mut left = self.handles.len();
        while left > 0 {
            let Ok(exit) = self.exits.recv() else { break };
            left -= 1;
            if !self.lifecycle.is_draining() {
                return Err(ShardDied {
                    id: exit.id,
                    how: if exit.panicked { "panicked" } else { "exited" },
                });
            }
            if exit.panicked {
                tracing::error!(shard = exit.id, "shard panicked while draining");
            }
        }
        for h in self.handles {
            let _ = h.join();
        }
        Ok(())
    }
}

type ShardRuntime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

fn build_runtime(choice: DriverChoice) -> std::io::Result<(ShardRuntime, DriverKind)> {
    if choice == DriverChoice::Auto && monoio::utils::detect_uring() {
        match RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(1024)
            .enable_timer()
            .build()
        {
            Ok(rt) => return Ok((rt.into(), DriverKind::IoUring)),
            Err(e) => tracing::warn!(error = %e, "io_uring could not be set up; using epoll"),
        }
    }
    let rt = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok((rt.into(), DriverKind::Epoll))
}

/// Binds a listening socket with SO_REUSEPORT (std, non-blocking; each shard adopts one).
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Everything a shard needs that all shards share.
#[derive(Clone)]
pub struct ShardShared {
    /// The route table.
    pub table: SharedRouteTable,
    /// The request log.
    pub records: RecordSink,
    /// Where sampled requests' spans go.
    pub tracer: crate::observe::trace::Tracer,
    /// Shutdown flag.
    pub lifecycle: Arc<Lifecycle>,
    /// TLS client config.
    pub tls: monoio_rustls::TlsConnector,
    /// How each provider is reached (installed by the reloader with each table).
    pub upstreams: Arc<crate::upstream::UpstreamRegistry>,
    /// Limits and budgets of keys and tenants, shared by every shard.
    pub governor: Arc<crate::policy::LocalGovernor>,
    /// Response caches.
    pub caches: Option<Arc<crate::proxy::Caches>>,
    /// The process-wide budget for request bodies in memory.
    pub bodies: crate::http::BodyBudget,
    /// Most connections per shard that the open-files limit allows.
    pub fd_connection_cap: usize,
    /// Fault injection for tests (`INFERGATE_FAILPOINTS=1`).
    pub failpoints: bool,
    /// Metrics (absent when off).
    pub metrics: Option<Arc<crate::observe::metrics::Metrics>>,
    /// TLS termination for client connections (absent: plain HTTP).
    pub tls_server: Option<Arc<crate::http::tls::TlsTerminator>>,
}

/// Starts the plan's shards listening on `listen`, each pinned to its CPU: on the
/// `inherited` listening sockets (bound to `listen`) first and on new SO_REUSEPORT ones for
/// the rest. With more inherited sockets than shards, a shard accepts on several, so none is
/// left with connections nobody takes.
pub fn start(
    plan: &ShardPlan,
    listen: &str,
    choice: DriverChoice,
    shared: ShardShared,
    inherited: Vec<std::net::TcpListener>,
) -> Result<Shards, ShardError> {
    let count = plan.count.max(1);
    let mut addr: SocketAddr = listen
        .parse()
        .map_err(|_| ShardError::BadAddress(listen.to_string()))?;
    let listen_err = |addr: SocketAddr, source| ShardError::Listen {
        addr: addr.to_string(),
        source,
    };
    let mut listeners = inherited;
    if listeners.is_empty() {
        // The first bind fixes the port (port 0 becomes a real one); the others share it.
        listeners.push(bind_reuseport(addr).map_err(|e| listen_err(addr, e))?);
    }
    if let Some(first) = listeners.first() {
        addr = first.local_addr().map_err(|e| listen_err(addr, e))?;
    }
    while listeners.len() < count {
        listeners.push(bind_reuseport(addr).map_err(|e| listen_err(addr, e))?);
    }
    let handoff = listeners
        .iter()
        .map(std::net::TcpListener::try_clone)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| listen_err(addr, e))?;
    let mut per_shard: Vec<Vec<std::net::TcpListener>> = (0..count).map(|_| Vec::new()).collect();
    for (i, l) in listeners.into_iter().enumerate() {
        if let Some(mine) = per_shard.get_mut(i % count.max(1)) {
            mine.push(l);
        }
    }
    let heartbeats = Heartbeats::new(count);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<DriverKind, String>>();
    let (exit_tx, exits) = mpsc::channel::<ShardExit>();
    let lifecycle = Arc::clone(&shared.lifecycle);
    let mut handles = Vec::with_capacity(count);
    for (id, std_listeners) in per_shard.into_iter().enumerate() {
        let shared = shared.clone();
        let ready = ready_tx.clone();
        let exit = exit_tx.clone();
        let core = plan.cpu_of(id);
        let beats = Arc::clone(&heartbeats);
        let handle = std::thread::Builder::new()
            .name(format!("infergate-shard-{id}"))
            .spawn(move || {
                // A panic that escapes every connection task ends up here: report it, so the
                // main thread can end the process instead of serving with a shard missing.
                let run = std::panic::AssertUnwindSafe(|| {
                    run_shard(id, core, std_listeners, shared, choice, ready, &beats)
                });
                let panicked = std::panic::catch_unwind(run).is_err();
                if panicked {
                    tracing::error!(shard = id, "shard thread panicked");
                }
                let _ = exit.send(ShardExit { id, panicked });
            })
            .map_err(|e| ShardError::Start(id, e.to_string()))?;
        handles.push(handle);
    }
    drop(ready_tx);
    drop(exit_tx);
    let mut driver = DriverKind::IoUring;
    for id in 0..count {
        match ready_rx.recv() {
            Ok(Ok(d)) => {
                if d == DriverKind::Epoll {
                    driver = DriverKind::Epoll;
                }
            }
            Ok(Err(e)) => return Err(ShardError::Start(id, e)),
            Err(_) => return Err(ShardError::Start(id, "thread exited".into())),
        }
    }
    Ok(Shards {
        local_addr: addr,
        driver,
        handoff,
        handles,
        exits,
        lifecycle,
        heartbeats,
    })
}

fn run_shard(
    id: usize,
    core: usize,
    std_listeners: Vec<std::net::TcpListener>,
    shared: ShardShared,
    choice: DriverChoice,
    ready: mpsc::Sender<Result<DriverKind, String>>,
    beats: &Arc<Heartbeats>,
) {
    if let Err(e) = monoio::utils::bind_to_cpu_set([core]) {
        tracing::warn!(shard = id, core, error = ?e, "could not pin shard to its core");
    }
    let (mut rt, driver) = match build_runtime(choice) {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(format!("runtime: {e}")));
            return;
        }
    };
    let drain_ms = shared.table.load().server.drain_timeout_ms;
    let beat = heartbeat::beat(Arc::clone(beats), id);
    rt.block_on(async move {
        let listeners = match std_listeners
            .into_iter()
            .map(TcpListener::from_std)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("listener: {e}")));
                return;
            }
        };
        // The first beat before the shard reports ready: once `start` returns, every shard
        // counts as serving for `/admin/ready`.
        beats.beat_at(id, Instant::now());
        let _ = ready.send(Ok(driver));
        monoio::spawn(beat);
        let ctx = Rc::new(ShardCtx::new(
            id,
            shared.table,
            shared.tls,
            shared.records,
            shared.lifecycle,
            shared.caches,
            crate::proxy::ShardLimits {
                bodies: shared.bodies,
                fd_connection_cap: shared.fd_connection_cap,
                failpoints: shared.failpoints,
                upstreams: Arc::clone(&shared.upstreams),
                governor: Arc::clone(&shared.governor),
                tracer: shared.tracer,
                tls_server: shared.tls_server.clone(),
                metrics: shared
                    .metrics
                    .as_ref()
                    .map_or_else(crate::observe::metrics::ShardMetrics::disabled, |m| {
                        m.shard(id)
                    }),
            },
        ));
        if ctx.metrics.is_on() {
            monoio::spawn(gauges::publish_gauges(Rc::downgrade(&ctx)));
        }
        monoio::spawn(gauges::publish_health(Rc::downgrade(&ctx)));
        if let Some(board) = allocations::board() {
            monoio::spawn(allocations::publish_counts(
                board,
                id,
                Arc::clone(&ctx.lifecycle),
            ));
        }
        let mut listeners = listeners.into_iter();
        let first = listeners.next();
        let others: Vec<_> = listeners
            .map(|l| {
                let ctx = Rc::clone(&ctx);
                monoio::spawn(async move { accept_loop(&ctx, &l, driver).await })
            })
            .collect();
        if let Some(listener) = first {
            accept_loop(&ctx, &listener, driver).await;
        }
        for other in others {
            other.await;
        }
        drain(&ctx, Duration::from_millis(drain_ms)).await;
        tracing::debug!(shard = id, "shard stopped");
    });
    beats.stopped(id);
}

async fn wait_for_drain(lifecycle: &Lifecycle) {
    while !lifecycle.is_draining() {
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Accepts on `listener` until the drain begins; the listener closes when the caller drops it.
async fn accept_loop(ctx: &Rc<ShardCtx>, listener: &TcpListener, driver: DriverKind) {
    let stop = wait_for_drain(&ctx.lifecycle);
    let mut stop = std::pin::pin!(stop);
    let mut accept_errors = AcceptErrorLog::default();
    loop {
        monoio::select! {
            accepted = accept_when_ready(listener, driver) => match accepted {
                // Another shard or process took the connection first.
                Ok(None) => {}
                Ok(Some(stream)) => {
                    let max = ctx.table.load().server.max_connections_per_shard;
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
                    match ctx.open_connection(max, fd) {
                        Some(slot) => {
                            monoio::spawn(serve_connection(Rc::clone(ctx), stream, slot));
                        }
                        None => {
                            accept_errors.note(ctx.shard_id, "connection limit reached; refusing with 503", None);
                            monoio::spawn(refuse_connection(stream));
                        }
                    }
                }
                Err(e) => {
                    // EMFILE and friends: every accept would fail the same way until a
                    // connection closes, so wait instead of spinning, and log once a while.
                    accept_errors.note(ctx.shard_id, "accept failed", Some(&e));
                    let pause = if is_out_of_descriptors(&e) { 100 } else { 10 };
                    monoio::time::sleep(Duration::from_millis(pause)).await;
                }
            },
            _ = &mut stop => break,
        }
    }
}

/// Waits until `listener` has a connection queued, then takes it with `accept4(2)`; `None` when
/// another shard or process (the other side of an upgrade) took it first.
///
/// Dropping this future at any point loses nothing: the wait is a readiness poll, which takes
/// no connection, and the accept itself does not wait. An io_uring accept dropped as it
/// completes would leave the connection accepted, unserved and never closed; a shard stops
/// accepting on every drain, and during an upgrade the connection must stay queued for the new
/// process instead.
async fn accept_when_ready(
    listener: &TcpListener,
    driver: DriverKind,
) -> std::io::Result<Option<monoio::net::TcpStream>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    listener.readable(false).await?;
    // io_uring drives blocking sockets, epoll non-blocking ones (as monoio's own accept does).
    let flags = match driver {
        DriverKind::IoUring => libc::SOCK_CLOEXEC,
        DriverKind::Epoll => libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
    };
    // SAFETY: accept4 on the listening socket, with no address buffer.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            flags,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    monoio::net::TcpStream::from_std(stream).map(Some)
}

/// True for the errors that mean the process or system has no file descriptor left.
fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Logs accept-side trouble at most once every few seconds, with how often it happened since,
/// so a flood of failures is one line, not thousands.
#[derive(Default)]
struct AcceptErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrorLog {
    const EVERY: Duration = Duration::from_secs(5);

    fn note(&mut self, shard: usize, what: &str, error: Option<&std::io::Error>) {
        if self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.suppressed += 1;
            return;
        }
        let again = std::mem::take(&mut self.suppressed);
        match error {
            Some(e) => tracing::warn!(shard, error = %e, repeated = again, "{what}"),
            None => tracing::warn!(shard, repeated = again, "{what}"),
        }
        self.last = Some(Instant::now());
    }
}

/// Answers a connection over the shard's limit with 503 and closes it.
async fn refuse_connection(stream: monoio::net::TcpStream) {
    use monoio::io::AsyncWriteRentExt;
    let mut stream = stream;
    let body = b"{\"error\":{\"message\":\"The gateway has too many open connections; retry shortly.\",\"type\":\"server_error\",\"param\":null,\"code\":\"too_many_connections\"}}";
    let mut response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    let _ = monoio::time::timeout(Duration::from_secs(1), stream.write_all(response)).await;
}

/// Raises the soft limit on open files to the hard limit: a gateway holds one descriptor per
/// client connection and per pooled upstream connection, and distributions start processes
/// at 1,024. Returns the limit in effect.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// How many connections each of `shards` shards may hold within an open-files limit: a
/// client connection can need an upstream one too, and some descriptors stay for listeners,
/// logs and the embedder.
pub fn connections_within(open_files: u64, shards: usize) -> usize {
    let limit = usize::try_from(open_files).unwrap_or(usize::MAX);
    let reserve = (limit / 4).min(128);
    (limit.saturating_sub(reserve) / 2 / shards.max(1)).max(1)
}

/// How long a draining shard must be quiet (no request in flight or ending) before it closes
/// its idle connections. A client that got a keep-alive answer and sends its next request
/// right away gets that answered (with `connection: close`) instead of a reset; a connection
/// idle for this long is closed (the race every HTTP/1.1 server has when it closes an idle
/// connection).
const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Lets requests in flight finish and connections close, up to `limit`: the shard stops once
/// no connection is open, or once it has been quiet for [`IDLE_GRACE`]. The sockets still
/// open then are shut down, and their tasks given a moment to end, so none is left behind.
async fn drain(ctx: &ShardCtx, limit: Duration) {
    let start = Instant::now();
    let deadline = start + limit;
    ctx.mark_quiet();
    while Instant::now() < deadline
        && ctx.connections() > 0
        && ctx.quiet_for().is_none_or(|q| q < IDLE_GRACE)
    {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    if ctx.connections() > 0 {
        let n = ctx.open_sockets.shut_down_all();
        tracing::debug!(
            shard = ctx.shard_id,
            sockets = n,
            "closing the connections still open"
        );
        let wind_down = Instant::now() + Duration::from_secs(1);
        while ctx.connections() > 0 && Instant::now() < wind_down {
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if ctx.inflight() > 0 {
        tracing::warn!(
            shard = ctx.shard_id,
            inflight = ctx.inflight(),
            "drain time is up; closing requests still in flight"
        );
    }
}
