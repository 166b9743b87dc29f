//! Shards: one thread per core, each pinned, each with its own monoio runtime (io_uring, or
//! epoll where io_uring can't be set up) and its own SO_REUSEPORT listener on the same address.
//! A connection lives and dies on the shard that accepted it.

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
    handles: Vec<JoinHandle<()>>,
}

impl Shards {
    /// Waits until every shard has drained and stopped.
    pub fn join(self) {
        for h in self.handles {
            let _ = h.join();
        }
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
    /// Shutdown flag.
    pub lifecycle: Arc<Lifecycle>,
    /// TLS client config.
    pub tls: monoio_rustls::TlsConnector,
    /// Response caches.
    pub caches: Option<Arc<crate::proxy::Caches>>,
}

/// Starts `count` shards listening on `listen`.
pub fn start(
    count: usize,
    listen: &str,
    choice: DriverChoice,
    shared: ShardShared,
) -> Result<Shards, ShardError> {
    let mut addr: SocketAddr = listen
        .parse()
        .map_err(|_| ShardError::BadAddress(listen.to_string()))?;
    let listen_err = |addr: SocketAddr, source| ShardError::Listen {
        addr: addr.to_string(),
        source,
    };
    // The first bind fixes the port (port 0 becomes a real one); the others share it.
    let first = bind_reuseport(addr).map_err(|e| listen_err(addr, e))?;
    addr = first.local_addr().map_err(|e| listen_err(addr, e))?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind_reuseport(addr).map_err(|e| listen_err(addr, e))?);
    }
    let cpus = allowed_cpus();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<DriverKind, String>>();
    let mut handles = Vec::with_capacity(count);
    for (id, std_listener) in listeners.into_iter().enumerate() {
        let shared = shared.clone();
        let ready = ready_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("infergate-shard-{id}"))
            .spawn({
                let core = cpus[id % cpus.len()];
                move || run_shard(id, core, std_listener, shared, choice, ready)
            })
            .map_err(|e| ShardError::Start(id, e.to_string()))?;
        handles.push(handle);
    }
    drop(ready_tx);
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
        handles,
    })
}

/// The CPUs this process may run on (respects `taskset`/cgroup pinning), in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for the calling thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) }
            == 0;
    let cpus: Vec<usize> = if ok {
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    } else {
        cpus
    }
}

fn run_shard(
    id: usize,
    core: usize,
    std_listener: std::net::TcpListener,
    shared: ShardShared,
    choice: DriverChoice,
    ready: mpsc::Sender<Result<DriverKind, String>>,
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
    rt.block_on(async move {
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("listener: {e}")));
                return;
            }
        };
        let _ = ready.send(Ok(driver));
        let ctx = Rc::new(ShardCtx::new(
            id,
            shared.table,
            shared.tls,
            shared.records,
            shared.lifecycle,
            shared.caches,
        ));
        accept_loop(&ctx, &listener).await;
        drop(listener);
        drain(&ctx, Duration::from_millis(drain_ms)).await;
        tracing::debug!(shard = id, "shard stopped");
    });
}

async fn wait_for_drain(lifecycle: &Lifecycle) {
    while !lifecycle.is_draining() {
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn accept_loop(ctx: &Rc<ShardCtx>, listener: &TcpListener) {
    let stop = wait_for_drain(&ctx.lifecycle);
    let mut stop = std::pin::pin!(stop);
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    monoio::spawn(serve_connection(Rc::clone(ctx), stream));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(shard = ctx.shard_id, error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = &mut stop => break,
        }
    }
}

/// Lets requests in flight finish, up to `limit`.
async fn drain(ctx: &ShardCtx, limit: Duration) {
    let deadline = Instant::now() + limit;
    while ctx.inflight() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    if ctx.inflight() > 0 {
        tracing::warn!(
            shard = ctx.shard_id,
            inflight = ctx.inflight(),
            "drain time is up; closing requests still in flight"
        );
    }
}
