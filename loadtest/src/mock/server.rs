//! The thread-per-core server: one pinned monoio runtime and SO_REUSEPORT listener per thread.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use monoio::net::{ListenerOpts, TcpListener};
use monoio::{FusionDriver, RuntimeBuilder};

use super::config::MockConfig;
use super::handler::{serve_connection, ServerContext};
use super::http2;
use super::last_request::LastRequestSlot;
use super::responses::StoredResponses;
use super::stats::MockStats;
use crate::affinity;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockServerError {
    /// A thread could not build its runtime or bind its listener.
    #[error("mockllm thread {thread}: {source}")]
    Start {
        thread: usize,
        #[source]
        source: std::io::Error,
    },
    /// A thread went away before saying whether it started.
    #[error("mockllm thread {0} exited during start-up")]
    ThreadLost(usize),
    /// The TLS certificate or key could not be loaded.
    #[error("mockllm TLS: {0}")]
    Tls(String),
}

/// The certificate and key (PEM files) mockllm serves TLS with: HTTP/2 only (ALPN `h2`).
#[derive(Debug, Clone)]
pub struct MockTls {
    /// Certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// Private key.
    pub key: std::path::PathBuf,
}

/// A running mock: its bound address and counters. The threads serve until the process exits.
pub struct MockServer {
    local_addr: SocketAddr,
    stats: Arc<MockStats>,
    _threads: Vec<JoinHandle<()>>,
}

impl MockServer {
    /// Starts `threads` server threads on `listen`. With port 0 the first thread binds and
    /// discovers the port, then the others bind that same port with SO_REUSEPORT.
    /// With `pin`, thread i is pinned to the i-th CPU this process may use.
    pub fn start(
        listen: SocketAddr,
        threads: usize,
        pin: bool,
        config: MockConfig,
    ) -> Result<Self, MockServerError> {
        Self::start_with_tls(listen, threads, pin, config, None)
    }

    /// [`MockServer::start`], serving TLS (and HTTP/2 only) when `tls` is given.
    pub fn start_with_tls(
        listen: SocketAddr,
        threads: usize,
        pin: bool,
        config: MockConfig,
        tls: Option<&MockTls>,
    ) -> Result<Self, MockServerError> {
        let tls = tls
            .map(|t| http2::tls_acceptor(&t.cert, &t.key))
            .transpose()
            .map_err(MockServerError::Tls)?;
        let config = Arc::new(config);
        let stats = Arc::new(MockStats::default());
        let last_request = Arc::new(LastRequestSlot::default());
        let stored_responses = Arc::new(StoredResponses::default());
        let cpus = affinity::allowed_cpus();
        let mut handles = Vec::new();
        let mut addr = listen;
        for index in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            let config = config.clone();
            let stats = stats.clone();
            let last_request = last_request.clone();
            let stored_responses = stored_responses.clone();
            let tls = tls.clone();
            let cpus = cpus.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mockllm-{index}"))
                .spawn(move || {
                    if pin {
                        affinity::pin_current_thread(&cpus, index);
                    }
                    let shared = Shared {
                        config,
                        stats,
                        last_request,
                        stored_responses,
                        tls,
                    };
                    server_thread(addr, shared, tx);
                })
                .map_err(|source| MockServerError::Start {
                    thread: index,
                    source,
                })?;
            handles.push(handle);
            match rx.recv() {
                Ok(Ok(bound)) => addr = bound,
                Ok(Err(source)) => {
                    return Err(MockServerError::Start {
                        thread: index,
                        source,
                    })
                }
                Err(_) => return Err(MockServerError::ThreadLost(index)),
            }
        }
        Ok(Self {
            local_addr: addr,
            stats,
            _threads: handles,
        })
    }

    /// The address all threads listen on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters served at `/mock/stats`.
    pub fn stats(&self) -> &Arc<MockStats> {
        &self.stats
    }
}

/// What every server thread shares with the others.
struct Shared {
    config: Arc<MockConfig>,
    stats: Arc<MockStats>,
    last_request: Arc<LastRequestSlot>,
    stored_responses: Arc<StoredResponses>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

fn server_thread(
    addr: SocketAddr,
    shared: Shared,
    started: mpsc::Sender<std::io::Result<SocketAddr>>,
) {
    let runtime = RuntimeBuilder::<FusionDriver>::new()
        .with_entries(1024)
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
        let listener = match TcpListener::bind_with_config(addr, &opts) {
            Ok(l) => l,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let bound = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let _ = started.send(Ok(bound));
        drop(started);
        let tls = shared.tls;
        let ctx = Rc::new(ServerContext {
            config: shared.config,
            stats: shared.stats,
            last_request: shared.last_request,
            stored_responses: shared.stored_responses,
        });
        loop {
            match listener.accept().await {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    ctx.stats.count_connection();
                    match &tls {
                        None => {
                            monoio::spawn(serve_connection(stream, ctx.clone()));
                        }
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            monoio::spawn(http2::serve_tls(stream, acceptor, ctx.clone()));
                        }
                    }
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => monoio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    });
}
