//! Per-provider concurrency: how many attempts are in flight at each provider, over all
//! shards, and the permits that count them. A provider with `max_concurrency` refuses an
//! attempt past its limit; the request then goes to its next target.
//!
//! The counters are atomics in a [`ProviderLoad`] per provider name, handed out by the
//! process's [`RouteState`] when a table is compiled: every table compiled from the same
//! state shares them, so a reload or swap neither resets nor forgets attempts in flight.
//! Taking a permit is one compare-and-swap (one add without a limit); nothing is locked on
//! the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::board::HealthBoard;

/// Attempts in flight at one provider, and how often one was refused for its limit.
#[derive(Debug, Default)]
pub struct ProviderLoad {
    in_flight: AtomicU32,
    refused: AtomicU64,
}

impl ProviderLoad {
    /// Attempts holding a permit now, over all shards.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Times a request passed the provider over because it was full (since the start).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether another attempt would be refused under `limit` (`None`: never).
    pub fn is_full(&self, limit: Option<u32>) -> bool {
        limit.is_some_and(|max| self.in_flight() >= max)
    }

    /// Counts one request turned away from the provider because it was full.
    pub fn note_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A permit for one attempt, unless `limit` attempts are in flight already. The count
    /// drops when the permit does, however the attempt ends.
    pub fn try_acquire(self: &Arc<Self>, limit: Option<u32>) -> Option<InFlightPermit> {
        match limit {
            None => {
                self.in_flight.fetch_add(1, Ordering::AcqRel);
            }
            Some(max) => {
                self.in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .ok()?;
            }
        }
        Some(InFlightPermit {
            load: Arc::clone(self),
        })
    }
}

/// One attempt in flight at a provider: held from when the attempt is sent until its answer
/// has ended (the body read, or the stream relayed to its end, whatever ended it). Dropping
/// it, on any path, unwinding included, gives the slot back.
#[derive(Debug)]
pub struct InFlightPermit {
    load: Arc<ProviderLoad>,
}

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        self.load.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Routing state that outlives any one route table: each provider's [`ProviderLoad`],
/// keyed by provider name, and the board where shards publish what they learned about each
/// target's health. Tables compiled from the same state share it (the reloader keeps one
/// for the process), so swaps and reloads keep counts and health.
#[derive(Debug, Default)]
pub struct RouteState {
    /// Taken only while a table is compiled (control threads), never by requests.
    loads: Mutex<HashMap<String, Arc<ProviderLoad>>>,
    /// Each shard's latest view of its targets' health.
    pub board: HealthBoard,
}

impl RouteState {
    /// A fresh state: nothing in flight, no health published.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The load of provider `name`: the one earlier tables got, when there is one.
    pub fn load_for(&self, name: &str) -> Arc<ProviderLoad> {
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(loads.entry(name.to_string()).or_default())
    }

    /// Forgets the loads no table and no permit holds any more (providers removed from the
    /// config two reloads ago).
    pub fn prune(&self) {
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        loads.retain(|_, load| Arc::strong_count(load) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_count_up_to_the_limit_and_give_back_on_drop() {
        let state = RouteState::new();
        let load = state.load_for("p");
        let a = load.try_acquire(Some(2)).unwrap();
        let b = load.try_acquire(Some(2)).unwrap();
        assert_eq!(load.in_flight(), 2);
        assert!(load.is_full(Some(2)));
        assert!(load.try_acquire(Some(2)).is_none());
        assert_eq!(load.in_flight(), 2, "a refusal leaves the count alone");
        // Without a limit it still counts.
        let c = load.try_acquire(None).unwrap();
        assert_eq!(load.in_flight(), 3);
        assert!(!load.is_full(None));
        drop((a, b, c));
        assert_eq!(load.in_flight(), 0);
        assert!(load.try_acquire(Some(2)).is_some());
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn a_panic_while_holding_a_permit_gives_it_back() {
        let load = RouteState::new().load_for("p");
        let held = Arc::clone(&load);
        let result = std::panic::catch_unwind(move || {
            let _permit = held.try_acquire(Some(1));
            std::panic::panic_any("mid-attempt");
        });
        assert!(result.is_err());
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn the_same_name_gets_the_same_counter_until_nothing_holds_it() {
        let state = RouteState::new();
        let first = state.load_for("p");
        let permit = first.try_acquire(None);
        assert!(Arc::ptr_eq(&first, &state.load_for("p")));
        assert_eq!(state.load_for("p").in_flight(), 1);
        drop(first);
        // A permit still holds it: kept.
        state.prune();
        assert_eq!(state.load_for("p").in_flight(), 1);
        drop(permit);
        state.prune();
        assert_eq!(state.load_for("p").in_flight(), 0);
    }

    #[test]
    fn counts_hold_across_threads() {
        let load = RouteState::new().load_for("p");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let load = Arc::clone(&load);
                std::thread::spawn(move || {
                    let mut got = 0;
                    for _ in 0..1000 {
                        if let Some(p) = load.try_acquire(Some(3)) {
                            assert!(load.in_flight() <= 3);
                            got += 1;
                            drop(p);
                        }
                    }
                    got
                })
            })
            .collect();
        let got: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(got > 0);
        assert_eq!(load.in_flight(), 0);
    }
}
