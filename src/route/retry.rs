//! Retries that cannot multiply an outage: how many attempts a request may make, how long
//! it waits before asking a target it already asked (exponential backoff with full jitter),
//! and a budget per alias and shard (retries at most a share of the requests of the last
//! [`WINDOW_SECS`] seconds, plus a small floor so quiet aliases still fail over).

use crate::FastMap;
use std::cell::RefCell;
use std::time::Duration;

/// The budget's window, in one-second slots.
pub const WINDOW_SECS: u64 = 10;
/// Retries a window allows whatever the traffic, so an alias with few requests still fails
/// over.
pub const MIN_RETRIES_PER_WINDOW: u64 = 10;
/// The longest backoff before a repeat attempt.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Most aliases a shard keeps a budget for (more only after reloads that renamed many: the
/// budgets then start afresh).
const MAX_ALIASES: usize = 4096;

/// An alias's retry rules, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first (default: one per other target). More than the targets
    /// ask targets again, in plan order.
    pub max: Option<u32>,
    /// Backoff base before a target is asked again: the n-th repeat waits a uniform random
    /// time below `base * 2^n` (at most 10 s).
    pub base: Duration,
    /// Retries allowed per request over the window, in percent (0-100).
    pub budget_percent: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max: None,
            base: Duration::from_millis(100),
            budget_percent: 100,
        }
    }
}

impl RetryPolicy {
    /// How many attempts a request with `targets` targets may make in all.
    pub fn attempts(&self, targets: usize) -> usize {
        let max = self.max.map_or(targets.saturating_sub(1), |m| m as usize);
        1 + max
    }

    /// The wait before the `repeat`-th time a request asks a target again (0 for the first
    /// repeat's lower bound), drawn with full jitter from `roll` (uniform in `0..=u32::MAX`).
    pub fn backoff(&self, repeat: u32, roll: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << repeat.min(16))
            .min(MAX_BACKOFF);
        ceiling.mul_f64(f64::from(roll) / f64::from(u32::MAX))
    }
}

/// One second of an alias's traffic.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Which second (Unix) the counts belong to.
    second: u64,
    requests: u64,
    retries: u64,
}

/// The last [`WINDOW_SECS`] seconds of one alias.
#[derive(Debug, Default)]
struct Window {
    slots: [Slot; WINDOW_SECS as usize],
}

impl Window {
    fn slot(&mut self, second: u64) -> Option<&mut Slot> {
        let slot = self.slots.get_mut((second % WINDOW_SECS) as usize)?;
        if slot.second != second {
            *slot = Slot {
                second,
                ..Slot::default()
            };
        }
        Some(slot)
    }

    fn totals(&self, second: u64) -> (u64, u64) {
        self.slots
            .iter()
            .filter(|s| s.second + WINDOW_SECS > second && s.second <= second)
            .fold((0, 0), |(q, r), s| (q + s.requests, r + s.retries))
    }
}

/// Every alias's retry budget on one shard. Interior mutability: a shard is one thread.
#[derive(Debug, Default)]
pub struct RetryBudgets {
    aliases: RefCell<FastMap<String, Window>>,
}

impl RetryBudgets {
    /// No traffic seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a request of `alias` at Unix second `second`.
    pub fn request(&self, alias: &str, second: u64) {
        self.with(alias, |w| {
            if let Some(s) = w.slot(second) {
                s.requests += 1;
            }
        });
    }

    /// Whether `alias` may make one more retry now (`percent` of its requests in the window,
    /// plus the floor); counts it when it may.
    pub fn try_retry(&self, alias: &str, percent: u32, second: u64) -> bool {
        self.with(alias, |w| {
            let (requests, retries) = w.totals(second);
            let allowed = MIN_RETRIES_PER_WINDOW + requests * u64::from(percent.min(100)) / 100;
            if retries >= allowed {
                return false;
            }
            if let Some(s) = w.slot(second) {
                s.retries += 1;
            }
            true
        })
    }

    fn with<T>(&self, alias: &str, f: impl FnOnce(&mut Window) -> T) -> T {
        let mut aliases = self.aliases.borrow_mut();
        if let Some(w) = aliases.get_mut(alias) {
            return f(w);
        }
        if aliases.len() >= MAX_ALIASES {
            aliases.clear();
        }
        f(aliases.entry(alias.to_string()).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_capped_at_the_share_of_requests_plus_the_floor() {
        let b = RetryBudgets::new();
        let mut allowed = 0;
        for _ in 0..100 {
            b.request("m", 1_000);
            if b.try_retry("m", 20, 1_000) {
                allowed += 1;
            }
        }
        // 20% of 100 plus the floor of 10, give or take the order of counting.
        assert!((28..=30).contains(&allowed), "{allowed}");
        // Other aliases have their own budget.
        assert!(b.try_retry("other", 20, 1_000));
        // A window later the budget is back.
        b.request("m", 1_000 + WINDOW_SECS);
        assert!(b.try_retry("m", 20, 1_000 + WINDOW_SECS));
    }

    #[test]
    fn a_quiet_alias_keeps_the_floor() {
        let b = RetryBudgets::new();
        for i in 0..MIN_RETRIES_PER_WINDOW {
            b.request("m", 5 + i % 3);
            assert!(b.try_retry("m", 0, 5 + i % 3));
        }
        assert!(!b.try_retry("m", 0, 8));
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let p = RetryPolicy {
            max: Some(3),
            base: Duration::from_millis(100),
            budget_percent: 20,
        };
        assert_eq!(p.backoff(0, 0), Duration::ZERO);
        assert_eq!(p.backoff(0, u32::MAX), Duration::from_millis(100));
        assert_eq!(p.backoff(2, u32::MAX), Duration::from_millis(400));
        let half = p.backoff(1, u32::MAX / 2);
        assert!((half.as_secs_f64() - 0.1).abs() < 1e-6, "{half:?}");
        assert_eq!(p.backoff(40, u32::MAX), MAX_BACKOFF);
        assert_eq!(p.attempts(3), 4);
        assert_eq!(RetryPolicy::default().attempts(3), 3);
        assert_eq!(RetryPolicy::default().attempts(1), 1);
    }
}
