//! Exact response cache shared by every shard, with single-flight for identical requests.
//!
//! # Store: `moka::sync::Cache`
//!
//! The store needs three things at once: a byte bound (entries weigh what their body
//! weighs), a TTL per entry (a request may override the route's TTL), and reads from every
//! shard without a global lock. Of the crates made for this:
//!
//! * `moka` has all three built in: a weigher with `max_capacity` in bytes, per-entry
//!   expiry through its `Expiry` trait, TinyLFU admission with LRU eviction (better hit
//!   rates than plain LRU under scans), and reads that go through a lock-free hash table
//!   and a lock-free read buffer; bookkeeping is done in batches under a `try_lock` that a
//!   reader never waits on.
//! * `quick_cache` is lighter and weight-bounded, but has no TTL: expiry would be ours.
//! * `papaya` / `scc` are maps, not caches: eviction and TTL would be ours.
//!
//! So the store is `moka`; the entry also carries its own deadline, checked against the
//! caller's `now`, so expiry is exact (moka's timer wheel only reclaims memory).
//!
//! # Single-flight
//!
//! Requests that miss look up a `papaya::HashMap` (lock-free) of flights. The first one
//! inserts a flight and becomes its [`FlightLeader`]; the others get a [`FlightWaiter`], a
//! runtime-agnostic future woken through `event-listener` (works across threads). The leader
//! either completes (the response is stored, then handed to every waiter) or is dropped
//! (abandoned: every waiter resolves to `None` and goes upstream itself). A waiter that is
//! dropped just unregisters its listener: nothing leaks.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::{Event, EventListener};

use super::key::ExactKey;

/// A complete upstream answer, kept dialect-agnostic: the final JSON response. The gateway
/// replays it as is, or re-renders a stream from it for a streaming client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedResponse {
    /// HTTP status of the upstream answer (only successes are expected to be cached).
    pub status: u16,
    /// `content-type` of `body`.
    pub content_type: String,
    /// The whole non-streamed response body.
    pub body: Bytes,
}

impl CachedResponse {
    /// Bytes this entry is charged against the cache's memory bound.
    pub fn weight(&self) -> u64 {
        const OVERHEAD: u64 = 128;
        OVERHEAD + self.body.len() as u64 + self.content_type.len() as u64
    }
}

/// Sizing of an [`ExactCache`].
#[derive(Clone, Debug)]
pub struct ExactCacheConfig {
    /// Upper bound of the stored responses' total weight, in bytes.
    pub max_bytes: u64,
    /// Responses heavier than this are not stored (still handed to waiters).
    pub max_entry_bytes: u64,
}

impl Default for ExactCacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            max_entry_bytes: 4 << 20,
        }
    }
}

/// Result of a cache lookup with single-flight.
#[derive(Debug)]
pub enum Lookup {
    /// A fresh stored response.
    Hit(Arc<CachedResponse>),
    /// Nobody is fetching this: the caller goes upstream and completes the flight.
    Lead(FlightLeader),
    /// An identical request is already upstream: await its answer.
    Wait(FlightWaiter),
}

#[derive(Clone)]
struct Stored {
    response: Arc<CachedResponse>,
    expires_at: Instant,
    ttl: Duration,
}

struct StoredExpiry;

impl moka::Expiry<ExactKey, Stored> for StoredExpiry {
    fn expire_after_create(
        &self,
        _key: &ExactKey,
        value: &Stored,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &ExactKey,
        value: &Stored,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(Debug, Default)]
struct Flight {
    /// Set once by the leader: `Some` on completion, `None` when abandoned.
    outcome: OnceLock<Option<Arc<CachedResponse>>>,
    done: Event,
}

struct Shared {
    store: moka::sync::Cache<ExactKey, Stored>,
    flights: papaya::HashMap<ExactKey, Arc<Flight>>,
    max_entry_bytes: u64,
}

impl Shared {
    fn finish_flight(
        &self,
        key: &ExactKey,
        flight: &Arc<Flight>,
        outcome: Option<Arc<CachedResponse>>,
    ) {
        // Publish first, then unlink: a lookup that still finds the flight resolves at once.
        let _ = flight.outcome.set(outcome);
        flight.done.notify(usize::MAX);
        let _ = self
            .flights
            .pin()
            .remove_if(key, |_, current| Arc::ptr_eq(current, flight));
    }
}

/// The exact cache: one per process, held in an `Arc` and used from every shard.
#[derive(Clone)]
pub struct ExactCache {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ExactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactCache")
            .field("entries", &self.shared.store.entry_count())
            .field("weighted_bytes", &self.shared.store.weighted_size())
            .finish()
    }
}

impl ExactCache {
    /// Makes an empty cache bounded by `cfg.max_bytes`.
    pub fn new(cfg: ExactCacheConfig) -> Self {
        let store = moka::sync::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|_k: &ExactKey, v: &Stored| {
                u32::try_from(v.response.weight()).unwrap_or(u32::MAX)
            })
            .expire_after(StoredExpiry)
            .build();
        Self {
            shared: Arc::new(Shared {
                store,
                flights: papaya::HashMap::new(),
                max_entry_bytes: cfg.max_entry_bytes.min(u64::from(u32::MAX)),
            }),
        }
    }

    /// Looks `key` up; on a miss, joins the request already in flight or leads a new one.
    pub fn lookup(&self, key: &ExactKey, now: Instant) -> Lookup {
        if let Some(hit) = self.lookup_no_flight(key, now) {
            return Lookup::Hit(hit);
        }
        let flights = self.shared.flights.pin();
        let fresh = Arc::new(Flight::default());
        match flights.try_insert(*key, Arc::clone(&fresh)) {
            Ok(_) => {
                drop(flights);
                // The previous leader may have stored its answer between our miss and insert.
                if let Some(hit) = self.lookup_no_flight(key, now) {
                    self.shared
                        .finish_flight(key, &fresh, Some(Arc::clone(&hit)));
                    return Lookup::Hit(hit);
                }
                Lookup::Lead(FlightLeader {
                    shared: Arc::clone(&self.shared),
                    key: *key,
                    flight: fresh,
                    finished: false,
                })
            }
            Err(occupied) => Lookup::Wait(FlightWaiter {
                flight: Arc::clone(occupied.current),
                listener: None,
            }),
        }
    }

    /// Looks `key` up without single-flight (e.g. for requests that must not wait).
    pub fn lookup_no_flight(&self, key: &ExactKey, now: Instant) -> Option<Arc<CachedResponse>> {
        let stored = self.shared.store.get(key)?;
        if stored.expires_at <= now {
            self.shared.store.invalidate(key);
            return None;
        }
        Some(stored.response)
    }

    /// Stores a response directly (outside a flight), fresh for `ttl` from `now`.
    pub fn insert(
        &self,
        key: ExactKey,
        response: Arc<CachedResponse>,
        ttl: Duration,
        now: Instant,
    ) {
        insert_stored(&self.shared, key, response, ttl, now);
    }

    /// Removes an entry (e.g. an admin purge).
    pub fn invalidate(&self, key: &ExactKey) {
        self.shared.store.invalidate(key);
    }

    /// Number of stored entries (approximate until maintenance has run).
    pub fn entry_count(&self) -> u64 {
        self.shared.store.entry_count()
    }

    /// Total weight of the stored entries in bytes (approximate until maintenance has run).
    pub fn weighted_bytes(&self) -> u64 {
        self.shared.store.weighted_size()
    }

    /// Requests currently being fetched upstream by a leader.
    pub fn in_flight(&self) -> usize {
        self.shared.flights.len()
    }

    /// Runs pending eviction and expiry work now (it otherwise runs in batches on access).
    pub fn run_maintenance(&self) {
        self.shared.store.run_pending_tasks();
    }
}

fn insert_stored(
    shared: &Shared,
    key: ExactKey,
    response: Arc<CachedResponse>,
    ttl: Duration,
    now: Instant,
) {
    if ttl.is_zero() || response.weight() > shared.max_entry_bytes {
        return;
    }
    let expires_at = now.checked_add(ttl).unwrap_or(now);
    shared.store.insert(
        key,
        Stored {
            response,
            expires_at,
            ttl,
        },
    );
}

/// The request that goes upstream for everyone asking the same thing. Complete it with the
/// answer; dropping it without completing abandons the flight and releases the waiters.
#[derive(Debug)]
pub struct FlightLeader {
    shared: Arc<Shared>,
    key: ExactKey,
    flight: Arc<Flight>,
    finished: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExactCacheShared")
    }
}

impl FlightLeader {
    /// Stores the answer (fresh for `ttl`) and hands it to every waiter.
    pub fn complete(mut self, response: CachedResponse, ttl: Duration) -> Arc<CachedResponse> {
        let response = Arc::new(response);
        insert_stored(
            &self.shared,
            self.key,
            Arc::clone(&response),
            ttl,
            Instant::now(),
        );
        self.shared
            .finish_flight(&self.key, &self.flight, Some(Arc::clone(&response)));
        self.finished = true;
        response
    }

    /// Hands the answer to the waiters without storing it (e.g. an uncacheable status).
    pub fn complete_uncached(mut self, response: CachedResponse) {
        self.shared
            .finish_flight(&self.key, &self.flight, Some(Arc::new(response)));
        self.finished = true;
    }

    /// The key this flight is fetching.
    pub fn key(&self) -> &ExactKey {
        &self.key
    }
}

impl Drop for FlightLeader {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.finish_flight(&self.key, &self.flight, None);
        }
    }
}

/// Awaits the answer of the identical request in flight: `Some` when its leader completed,
/// `None` when it was abandoned (then go upstream, or `lookup` again to lead).
/// Runtime-agnostic and cancellation-safe: dropping it unregisters it.
#[derive(Debug)]
pub struct FlightWaiter {
    flight: Arc<Flight>,
    listener: Option<EventListener>,
}

impl Future for FlightWaiter {
    type Output = Option<Arc<CachedResponse>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if let Some(outcome) = this.flight.outcome.get() {
                this.listener = None;
                return Poll::Ready(outcome.clone());
            }
            match this.listener.as_mut() {
                // Register, then check again: a notification before registering is not lost.
                None => this.listener = Some(this.flight.done.listen()),
                Some(listener) => match Pin::new(listener).poll(cx) {
                    Poll::Ready(()) => this.listener = None,
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn key(n: u8) -> ExactKey {
        ExactKey([n; 16])
    }

    fn resp(body: &str) -> CachedResponse {
        CachedResponse {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn cache() -> ExactCache {
        ExactCache::new(ExactCacheConfig::default())
    }

    #[test]
    fn miss_then_hit() {
        let c = cache();
        let now = Instant::now();
        let Lookup::Lead(leader) = c.lookup(&key(1), now) else {
            panic!("expected lead")
        };
        leader.complete(resp("a"), Duration::from_secs(60));
        match c.lookup(&key(1), now) {
            Lookup::Hit(r) => assert_eq!(r.body, "a"),
            other => panic!("expected hit, got {other:?}"),
        }
        assert!(c.lookup_no_flight(&key(2), now).is_none());
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn ttl_expires_per_entry() {
        let c = cache();
        let now = Instant::now();
        c.insert(key(1), Arc::new(resp("short")), Duration::from_secs(1), now);
        c.insert(
            key(2),
            Arc::new(resp("long")),
            Duration::from_secs(100),
            now,
        );
        let later = now + Duration::from_secs(2);
        assert!(c.lookup_no_flight(&key(1), now).is_some());
        assert!(c.lookup_no_flight(&key(1), later).is_none());
        assert!(c.lookup_no_flight(&key(2), later).is_some());
        assert!(matches!(c.lookup(&key(1), later), Lookup::Lead(_)));
    }

    #[test]
    fn memory_bound_evicts() {
        let c = ExactCache::new(ExactCacheConfig {
            max_bytes: 20_000,
            max_entry_bytes: 4_000,
        });
        let now = Instant::now();
        let body = "x".repeat(1_000);
        for i in 0..100u8 {
            c.insert(key(i), Arc::new(resp(&body)), Duration::from_secs(60), now);
        }
        c.run_maintenance();
        assert!(c.weighted_bytes() <= 20_000, "{}", c.weighted_bytes());
        assert!(c.entry_count() < 100);
        // Too heavy for one entry: not stored.
        c.insert(
            key(200),
            Arc::new(resp(&"y".repeat(5_000))),
            Duration::from_secs(60),
            now,
        );
        assert!(c.lookup_no_flight(&key(200), now).is_none());
    }

    #[test]
    fn single_flight_across_threads() {
        let c = cache();
        let now = Instant::now();
        let Lookup::Lead(leader) = c.lookup(&key(7), now) else {
            panic!("expected lead")
        };
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || match c.lookup(&key(7), now) {
                    Lookup::Wait(w) => pollster::block_on(w),
                    Lookup::Hit(r) => Some(r),
                    Lookup::Lead(_) => panic!("second leader"),
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        leader.complete(resp("shared"), Duration::from_secs(60));
        for w in waiters {
            let got = w.join().unwrap().expect("answer");
            assert_eq!(got.body, "shared");
        }
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn abandoned_leader_releases_waiters() {
        let c = cache();
        let now = Instant::now();
        let Lookup::Lead(leader) = c.lookup(&key(3), now) else {
            panic!("expected lead")
        };
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let Lookup::Wait(w) = c.lookup(&key(3), now) else {
                    panic!("expected wait")
                };
                std::thread::spawn(move || pollster::block_on(w))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        drop(leader);
        for w in waiters {
            assert!(w.join().unwrap().is_none());
        }
        assert_eq!(c.in_flight(), 0);
        // The next request leads a new flight.
        assert!(matches!(c.lookup(&key(3), now), Lookup::Lead(_)));
    }

    #[test]
    fn dropped_waiter_does_not_leak_or_block() {
        let c = cache();
        let now = Instant::now();
        let Lookup::Lead(leader) = c.lookup(&key(4), now) else {
            panic!("expected lead")
        };
        let Lookup::Wait(mut w) = c.lookup(&key(4), now) else {
            panic!("expected wait")
        };
        // Poll once so it registers a listener, then cancel it.
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut w).poll(&mut cx).is_pending());
        let flight = Arc::clone(&w.flight);
        assert_eq!(flight.done.total_listeners(), 1);
        drop(w);
        assert_eq!(flight.done.total_listeners(), 0);
        assert_eq!(Arc::strong_count(&flight), 3); // map, leader, this test
        leader.complete(resp("done"), Duration::from_secs(60));
        assert_eq!(c.in_flight(), 0);
        // The map's reference is released once papaya's epoch advances; the leader's is gone.
        assert!(Arc::strong_count(&flight) <= 2);
    }
}
