//! HTTP/2 to providers: one multiplexed connection per shard per provider (`h2_connections`
//! for more), shared by all the calls the shard makes to it at once. It replaces the
//! keep-alive pool for such providers; [`super::h2call`] runs one call on it.
//!
//! Design:
//!
//! - **Shard-local, no lock.** The connections live in the shard's [`super::ConnPool`]
//!   (`RefCell`, never borrowed across an `.await`), keyed by the provider's pool key. Each
//!   connection's h2 driver (`h2::client::Connection`) is a task spawned on the shard; the
//!   calls hold clones of its `SendRequest`.
//! - **One connect for many callers.** The first call that finds a slot empty opens the
//!   connection (TCP, then TLS with ALPN `h2, http/1.1` or h2c with prior knowledge, then
//!   the h2 handshake) within the provider's connect timeout; calls arriving meanwhile wait
//!   for it and share the result, a failure included, so 20 concurrent calls to a fresh
//!   provider make one connection, and a provider that is down fails them all fast. A
//!   connecting call that is cancelled (its client left) hands the slot to the next caller.
//! - **Reconnect.** The driver task marks the connection closed when it ends (GOAWAY
//!   handled, connection error, the provider closing an idle socket); a call that sees its
//!   connection die before any response byte marks it closed too. The next call opens a new
//!   one. A connection idle for longer than the keep-alive pool keeps sockets is replaced
//!   rather than trusted.
//! - **ALPN fallback.** An `https` provider whose server picks HTTP/1.1 (or no ALPN) is
//!   remembered for [`HTTP1_RECHECK`]: its calls take the HTTP/1.1 path and its pool.
//! - **Stream limits.** Each call sends on its own clone of `SendRequest` after `ready()`,
//!   so h2 queues streams beyond the server's `SETTINGS_MAX_CONCURRENT_STREAMS` and opens
//!   them as others end.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use monoio::io::poll_io::{AsyncRead, AsyncWrite};
use monoio::io::IntoPollIo;

use super::conn::{server_name, tcp_connect};
use super::error::UpstreamError;
use super::pool::IDLE_TTL;
use super::registry::UpstreamLink;
use crate::route::{Provider, Scheme};

/// How long an `https` provider that answered ALPN with HTTP/1.1 is spoken to in HTTP/1.1
/// before HTTP/2 is offered again.
const HTTP1_RECHECK: Duration = Duration::from_secs(600);

/// Per-stream receive window: how much of one answer the provider may send ahead of the
/// relay (the relay releases it as it reads).
const STREAM_WINDOW: u32 = 1024 * 1024;
/// Receive window of the whole connection, across its streams.
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Largest response header block accepted (the HTTP/1.1 client's head limit).
const MAX_HEADER_LIST: u32 = 64 * 1024;
/// Most streams the provider may reset before the connection is dropped as abusive.
const MAX_PENDING_RESETS: usize = 64;

/// What a shared connection's calls and its driver task both see.
pub(super) struct ConnState {
    closed: Cell<bool>,
    last_used: Cell<Instant>,
}

impl ConnState {
    /// Marks the connection unusable: the next call opens another.
    pub(super) fn close(&self) {
        self.closed.set(true);
    }

    /// Notes that a call used it (its idle time starts again).
    pub(super) fn touch(&self) {
        self.last_used.set(Instant::now());
    }

    fn usable(&self, now: Instant) -> bool {
        !self.closed.get() && now.saturating_duration_since(self.last_used.get()) < IDLE_TTL
    }
}

/// A handle on a shared HTTP/2 connection.
#[derive(Clone)]
pub(super) struct SharedConn {
    /// Cloned by each call to open its stream.
    pub(super) send: SendRequest<Bytes>,
    /// Closed flag and idle time.
    pub(super) state: Rc<ConnState>,
}

/// What a call gets from [`H2Pool::checkout`].
pub(super) enum Checkout {
    /// A connection, and whether it served calls before this one (a failure on it may be
    /// staleness, worth one retry on a fresh connection).
    Conn {
        /// The connection.
        conn: SharedConn,
        /// It existed before this call.
        reused: bool,
    },
    /// The provider chose HTTP/1.1 in ALPN: use the HTTP/1.1 path.
    Http1,
}

/// A connect in progress, awaited by the calls that arrived meanwhile.
#[derive(Default)]
struct Opening {
    done: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Opening {
    fn finish(&self) {
        self.done.set(true);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.done.get() {
                return Poll::Ready(());
            }
            let mut wakers = self.wakers.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }
}

/// One connection slot of a provider.
#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Opening(Rc<Opening>),
    Ready(SharedConn),
    /// The last connect failed; the calls that waited for it get this failure.
    Failed(Rc<UpstreamError>),
}

/// A provider's connection slots on this shard.
#[derive(Default)]
struct ProviderConns {
    slots: Vec<Slot>,
    next: usize,
    /// ALPN picked HTTP/1.1: use it until then.
    http1_until: Option<Instant>,
}

/// What the state of a slot tells a call to do.
enum Step {
    Use(SharedConn),
    Http1,
    Fail(Rc<UpstreamError>),
    Wait(Rc<Opening>),
    Open(Rc<Opening>),
}

/// The shard's shared HTTP/2 connections, by provider pool key.
#[derive(Default)]
pub struct H2Pool {
    providers: RefCell<HashMap<Arc<str>, ProviderConns>>,
}

impl H2Pool {
    /// A connection to `provider` (one of its `h2_connections`, in turn): a live one,
    /// the one being opened, or a new one.
    pub(super) async fn checkout(
        &self,
        provider: &Provider,
        link: &UpstreamLink,
    ) -> Result<Checkout, UpstreamError> {
        let key = &provider.pool_key;
        let count = provider.http2.map_or(1, NonZeroUsize::get);
        let index = self.pick(key, count);
        let deadline = Instant::now() + provider.connect_timeout;
        let mut waited = false;
        loop {
            match self.step(key, count, index, waited) {
                Step::Use(conn) => {
                    conn.state.touch();
                    return Ok(Checkout::Conn { conn, reused: true });
                }
                Step::Http1 => return Ok(Checkout::Http1),
                Step::Fail(e) => return Err(copy_error(&e)),
                Step::Wait(opening) => {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .ok_or(UpstreamError::ConnectTimeout)?;
                    monoio::time::timeout(left, opening.wait())
                        .await
                        .map_err(|_| UpstreamError::ConnectTimeout)?;
                    waited = true;
                }
                Step::Open(opening) => {
                    let guard = OpenGuard {
                        pool: self,
                        key,
                        index,
                        opening,
                        settled: false,
                    };
                    let opened =
                        monoio::time::timeout(provider.connect_timeout, open(provider, link))
                            .await
                            .unwrap_or(Err(UpstreamError::ConnectTimeout));
                    return guard.settle(opened);
                }
            }
        }
    }

    /// The slot the next call to `key` uses (round robin over `count`).
    fn pick(&self, key: &Arc<str>, count: usize) -> usize {
        let mut providers = self.providers.borrow_mut();
        let conns = providers.entry(Arc::clone(key)).or_default();
        let index = conns.next % count;
        conns.next = conns.next.wrapping_add(1);
        index
    }

    /// Looks at slot `index` of `key` and says what to do; claims it for a connect when it
    /// holds nothing usable (`waited`: this call already waited for a connect, whose failure
    /// is its own).
    fn step(&self, key: &Arc<str>, count: usize, index: usize, waited: bool) -> Step {
        let now = Instant::now();
        let mut providers = self.providers.borrow_mut();
        let conns = providers.entry(Arc::clone(key)).or_default();
        if conns.http1_until.is_some_and(|t| now < t) {
            return Step::Http1;
        }
        // A reload may change the count: slots past it are dropped, new ones start empty.
        conns.slots.resize_with(count, Slot::default);
        let Some(slot) = conns.slots.get_mut(index) else {
            return Step::Http1;
        };
        match slot {
            Slot::Ready(conn) if conn.state.usable(now) => return Step::Use(conn.clone()),
            Slot::Opening(opening) => return Step::Wait(Rc::clone(opening)),
            Slot::Failed(e) if waited => return Step::Fail(Rc::clone(e)),
            Slot::Ready(_) | Slot::Failed(_) | Slot::Empty => {}
        }
        let opening = Rc::new(Opening::default());
        *slot = Slot::Opening(Rc::clone(&opening));
        Step::Open(opening)
    }

    /// Puts what a connect came to in its slot, if the slot still waits for that connect;
    /// `http1`: the provider chose HTTP/1.1, remembered for [`HTTP1_RECHECK`].
    fn set(&self, key: &Arc<str>, index: usize, opening: &Rc<Opening>, value: Slot, http1: bool) {
        let mut providers = self.providers.borrow_mut();
        let Some(conns) = providers.get_mut(key) else {
            return;
        };
        if http1 {
            conns.http1_until = Some(Instant::now() + HTTP1_RECHECK);
        }
        if let Some(slot) = conns.slots.get_mut(index) {
            if matches!(slot, Slot::Opening(o) if Rc::ptr_eq(o, opening)) {
                *slot = value;
            }
        }
    }

    /// Drops every connection idle past its time and every remembered failure, and the
    /// providers left with nothing (removed by a reload, say). Run when a connection opens.
    fn sweep(&self) {
        let now = Instant::now();
        let mut providers = self.providers.borrow_mut();
        providers.retain(|_, conns| {
            for slot in &mut conns.slots {
                let stale = match slot {
                    Slot::Ready(c) => !c.state.usable(now),
                    Slot::Failed(_) => true,
                    Slot::Empty | Slot::Opening(_) => false,
                };
                if stale {
                    *slot = Slot::Empty;
                }
            }
            conns.http1_until.is_some_and(|t| now < t)
                || conns.slots.iter().any(|s| !matches!(s, Slot::Empty))
        });
    }

    /// Open (not known closed) HTTP/2 connections to `key` on this shard, for tests and
    /// stats.
    pub fn open_count(&self, key: &str) -> usize {
        let now = Instant::now();
        self.providers.borrow().get(key).map_or(0, |c| {
            c.slots
                .iter()
                .filter(|s| matches!(s, Slot::Ready(c) if c.state.usable(now)))
                .count()
        })
    }
}

/// The claim of the call opening a slot's connection: it settles the slot with the result
/// and wakes the calls waiting for it; dropped unsettled (the call was cancelled), it
/// empties the slot so that one of them opens it instead.
struct OpenGuard<'a> {
    pool: &'a H2Pool,
    key: &'a Arc<str>,
    index: usize,
    opening: Rc<Opening>,
    settled: bool,
}

impl OpenGuard<'_> {
    fn settle(mut self, opened: Result<Opened, UpstreamError>) -> Result<Checkout, UpstreamError> {
        self.settled = true;
        let http1 = matches!(opened, Ok(Opened::Http1));
        let (slot, result) = match opened {
            Ok(Opened::H2(conn)) => (
                Slot::Ready(conn.clone()),
                Ok(Checkout::Conn {
                    conn,
                    reused: false,
                }),
            ),
            Ok(Opened::Http1) => (Slot::Empty, Ok(Checkout::Http1)),
            Err(e) => {
                let e = Rc::new(e);
                (Slot::Failed(Rc::clone(&e)), Err(copy_error(&e)))
            }
        };
        self.pool
            .set(self.key, self.index, &self.opening, slot, http1);
        if result.is_ok() {
            self.pool.sweep();
        }
        result
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.pool
                .set(self.key, self.index, &self.opening, Slot::Empty, false);
        }
        self.opening.finish();
    }
}

/// What a new connection turned out to be.
enum Opened {
    H2(SharedConn),
    /// TLS with ALPN other than `h2`: the provider wants HTTP/1.1.
    Http1,
}

/// Opens a connection to `provider`: h2c with prior knowledge over `http`, TLS with ALPN
/// over `https` (HTTP/2 only when the server picks `h2`).
async fn open(provider: &Provider, link: &UpstreamLink) -> Result<Opened, UpstreamError> {
    let addr = provider.addr.as_ref().ok_or(UpstreamError::NoAddress)?;
    let tcp = tcp_connect(provider, link).await?;
    let io = tcp.into_poll_io().map_err(UpstreamError::Connect)?;
    match addr.scheme {
        Scheme::Http => handshake(io).await.map(Opened::H2),
        Scheme::Https => {
            let tls = link.h2_tls.as_ref().ok_or(UpstreamError::NoLink)?;
            let stream = tls
                .connect(server_name(&addr.host)?, io)
                .await
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                handshake(stream).await.map(Opened::H2)
            } else {
                tracing::debug!(provider = %provider.name, "the provider chose HTTP/1.1 in ALPN");
                Ok(Opened::Http1)
            }
        }
    }
}

/// The HTTP/2 handshake on `io`, and the connection's driver task on this shard.
async fn handshake<T>(io: T) -> Result<SharedConn, UpstreamError>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (send, connection) = h2::client::Builder::new()
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_concurrent_reset_streams(MAX_PENDING_RESETS)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| {
            let msg = e.to_string();
            UpstreamError::Connect(e.into_io().unwrap_or_else(|| std::io::Error::other(msg)))
        })?;
    let state = Rc::new(ConnState {
        closed: Cell::new(false),
        last_used: Cell::new(Instant::now()),
    });
    let seen_by_driver = Rc::clone(&state);
    monoio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "HTTP/2 provider connection ended");
        }
        seen_by_driver.close();
    });
    Ok(SharedConn { send, state })
}

/// A copy of a connect failure for each call that waited on the same connect.
fn copy_error(e: &UpstreamError) -> UpstreamError {
    match e {
        UpstreamError::NoAddress => UpstreamError::NoAddress,
        UpstreamError::NoLink => UpstreamError::NoLink,
        UpstreamError::Connect(io) => {
            UpstreamError::Connect(std::io::Error::new(io.kind(), io.to_string()))
        }
        UpstreamError::ConnectTimeout => UpstreamError::ConnectTimeout,
        UpstreamError::Tls(msg) => UpstreamError::Tls(msg.clone()),
        // A connect fails with the kinds above only.
        _ => UpstreamError::ClosedBeforeResponse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on_local as block_on;
    use crate::config::ProviderConfig;

    fn provider(url: &str) -> Provider {
        let cfg = ProviderConfig {
            http2: true,
            connect_timeout_ms: 2000,
            ..ProviderConfig::openai_for_tests(url)
        };
        Provider::compile("p", &cfg).unwrap()
    }

    /// A listener that accepts and holds connections (an h2c client's handshake only
    /// writes), counting them.
    fn listener() -> (std::net::SocketAddr, Rc<Cell<usize>>) {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Rc::new(Cell::new(0));
        let count = Rc::clone(&accepted);
        monoio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.set(count.get() + 1);
                held.push(s);
            }
        });
        (addr, accepted)
    }

    fn fresh(c: Result<Checkout, UpstreamError>) -> bool {
        match c.unwrap() {
            Checkout::Conn { reused, .. } => !reused,
            Checkout::Http1 => panic!("h2c never falls back"),
        }
    }

    #[test]
    fn concurrent_calls_share_one_connect_and_a_closed_connection_is_replaced() {
        block_on(async {
            let (addr, accepted) = listener();
            let p = provider(&format!("http://{addr}/v1"));
            let link = UpstreamLink::build(&p).unwrap();
            let pool = H2Pool::default();
            let (a, b, c) = futures_util::future::join3(
                pool.checkout(&p, &link),
                pool.checkout(&p, &link),
                pool.checkout(&p, &link),
            )
            .await;
            assert_eq!([a, b, c].into_iter().map(fresh).filter(|f| *f).count(), 1);
            monoio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(accepted.get(), 1);
            assert_eq!(pool.open_count(&p.pool_key), 1);
            let Ok(Checkout::Conn { conn, reused: true }) = pool.checkout(&p, &link).await else {
                panic!("the open connection is reused")
            };
            conn.state.close();
            assert!(fresh(pool.checkout(&p, &link).await));
            monoio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(accepted.get(), 2);
        });
    }

    #[test]
    fn the_calls_that_waited_for_a_failed_connect_get_its_failure() {
        block_on(async {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let p = provider(&format!("http://127.0.0.1:{port}/v1"));
            let link = UpstreamLink::build(&p).unwrap();
            let pool = H2Pool::default();
            let (a, b) =
                futures_util::future::join(pool.checkout(&p, &link), pool.checkout(&p, &link))
                    .await;
            for r in [a, b] {
                assert!(matches!(r, Err(UpstreamError::Connect(_))));
            }
            // A later call tries again rather than inherit the old failure.
            let key = &p.pool_key;
            assert!(matches!(pool.step(key, 1, 0, false), Step::Open(_)));
        });
    }

    #[test]
    fn a_cancelled_connect_hands_the_slot_to_a_waiting_call() {
        let pool = H2Pool::default();
        let key: Arc<str> = Arc::from("k");
        let Step::Open(opening) = pool.step(&key, 1, 0, false) else {
            panic!("an empty slot is opened")
        };
        let Step::Wait(waiting) = pool.step(&key, 1, 0, false) else {
            panic!("a slot being opened is waited for")
        };
        drop(OpenGuard {
            pool: &pool,
            key: &key,
            index: 0,
            opening,
            settled: false,
        });
        assert!(waiting.done.get());
        assert!(matches!(pool.step(&key, 1, 0, true), Step::Open(_)));
    }

    #[test]
    fn an_alpn_answer_of_http1_is_remembered() {
        let pool = H2Pool::default();
        let key: Arc<str> = Arc::from("k");
        let Step::Open(opening) = pool.step(&key, 2, 1, false) else {
            panic!("an empty slot is opened")
        };
        let guard = OpenGuard {
            pool: &pool,
            key: &key,
            index: 1,
            opening,
            settled: false,
        };
        assert!(matches!(
            guard.settle(Ok(Opened::Http1)),
            Ok(Checkout::Http1)
        ));
        assert!(matches!(pool.step(&key, 2, 0, false), Step::Http1));
    }
}
