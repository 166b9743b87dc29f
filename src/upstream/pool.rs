//! The per-shard pool of idle upstream connections. It is shard-local (`RefCell`, no lock):
//! a connection lives and dies on the shard that opened it. HTTP/1.1 connections wait here
//! between calls; HTTP/2 providers get the shard's shared connections instead
//! ([`H2Pool`]), and their exchanges are never pooled.

use crate::FastMap;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{UpstreamConn, UpstreamIo};
use super::h2pool::H2Pool;

/// A pooled connection's read buffer larger than this is replaced by a small one.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

/// Idle connections are dropped after this long (providers close idle sockets too).
pub(super) const IDLE_TTL: Duration = Duration::from_secs(50);

/// An idle connection and when it went idle.
type IdleConn = (UpstreamConn, Instant);

/// Idle connections by pool key (see [`crate::route::Provider::pool_key`]).
#[derive(Default)]
pub struct ConnPool {
    idle: RefCell<FastMap<Arc<str>, Vec<IdleConn>>>,
    h2: H2Pool,
}

impl ConnPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the most recently used idle connection for `key`, if any is fresh enough.
    pub fn take(&self, key: &Arc<str>) -> Option<UpstreamConn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(key)?;
        while let Some((mut conn, since)) = list.pop() {
            if since.elapsed() < IDLE_TTL {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// The shard's shared HTTP/2 connections.
    pub fn h2(&self) -> &H2Pool {
        &self.h2
    }

    /// Returns a connection whose last response was read completely (an HTTP/2 stream is
    /// not a connection: it is dropped).
    pub fn put(&self, key: &Arc<str>, mut conn: UpstreamConn, max_idle: usize) {
        if max_idle == 0 || !conn.buf.is_empty() || matches!(conn.io, UpstreamIo::H2(_)) {
            // Leftover bytes mean the framing went wrong: never reuse such a connection.
            return;
        }
        conn.buf.clear();
        if conn.buf.capacity() > KEEP_BUFFER_BYTES {
            // A large response grew the read buffer: an idle connection keeps a small one.
            conn.buf = bytes::BytesMut::with_capacity(16 * 1024);
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(Arc::clone(key)).or_default();
        if list.len() < max_idle {
            list.push((conn, Instant::now()));
        }
    }

    /// Number of idle connections for `key` (for tests and stats).
    pub fn idle_count(&self, key: &Arc<str>) -> usize {
        self.idle.borrow().get(key).map_or(0, Vec::len)
    }
}
