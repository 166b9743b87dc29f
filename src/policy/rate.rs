//! Requests and tokens per minute, exact across shards without a lock.
//!
//! A [`Bucket`] is a token bucket kept as one `AtomicU64` in the GCRA form: the *theoretical
//! arrival time* (TAT), the instant at which the bucket would be full again. Taking `n` units
//! moves the TAT `n` intervals later, by compare-exchange, and is refused when the TAT would
//! lie more than one period (the whole burst) ahead of `now`. One word holds the whole state,
//! so every decision is exact whatever the number of threads.
//!
//! The bucket holds `limit` units and refills continuously, one unit every
//! `interval = ceil(period / limit)` nanoseconds (OpenAI's "continuously replenishing"
//! semantics). Rounding the interval up keeps the unit cost an integer, so reservations and
//! refunds add up exactly, and errs on the strict side: a burst admits exactly `limit`, and over
//! any span of `d` nanoseconds at most `limit + d / interval <= limit + limit * d / period` are
//! admitted.
//!
//! Time comes in as a monotonic `now` in nanoseconds (any fixed origin), so tests are
//! deterministic.

use std::sync::atomic::{AtomicU64, Ordering};

/// One minute in nanoseconds: the period of `rpm` and `tpm` limits.
pub const MINUTE_NS: u64 = 60_000_000_000;

/// Why a bucket cannot be built (a configuration error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// A limit of zero would refuse everything; leave the limit out instead.
    #[error("a rate limit must be at least 1")]
    ZeroLimit,
    /// The period is zero, or `limit` intervals do not fit in 64 bits of nanoseconds.
    #[error("a rate limit of {0} per period cannot be represented")]
    OutOfRange(u64),
}

/// What the `x-ratelimit-*` response headers report after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// `x-ratelimit-limit-*`: the most the bucket holds.
    pub limit: u64,
    /// `x-ratelimit-remaining-*`: what could be taken now, never below zero.
    pub remaining: u64,
    /// `x-ratelimit-reset-*` in nanoseconds: until the bucket is full again.
    pub reset_ns: u64,
}

impl RateState {
    /// `reset_ns` as the headers write it (`"1s"`, `"6m0s"`, `"17ms"`).
    pub fn reset(&self) -> String {
        duration_string(self.reset_ns)
    }
}

/// A refused take: the state the headers report and when it could succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRefusal {
    /// The bucket as it stands (remaining is what could still be taken).
    pub state: RateState,
    /// Nanoseconds until the same take would succeed; `None` when it asks for more than the
    /// limit and never can.
    pub retry_after_ns: Option<u64>,
}

/// A lock-free token bucket of `limit` units per `period` (see the module docs).
#[derive(Debug)]
pub struct Bucket {
    limit: u64,
    /// Nanoseconds one unit takes to come back.
    interval: u64,
    /// `limit * interval`: how far ahead of `now` the TAT may run (the burst).
    burst: u64,
    tat: AtomicU64,
}

impl Bucket {
    /// A bucket of `limit` units per minute (`rpm`, `tpm`).
    pub fn per_minute(limit: u64) -> Result<Self, RateError> {
        Self::new(limit, MINUTE_NS)
    }

    /// A bucket of `limit` units per `period_ns` nanoseconds, full at first.
    pub fn new(limit: u64, period_ns: u64) -> Result<Self, RateError> {
        if limit == 0 {
            return Err(RateError::ZeroLimit);
        }
        if period_ns == 0 {
            return Err(RateError::OutOfRange(limit));
        }
        let interval = period_ns.div_ceil(limit);
        let burst = interval
            .checked_mul(limit)
            .ok_or(RateError::OutOfRange(limit))?;
        Ok(Self {
            limit,
            interval,
            burst,
            tat: AtomicU64::new(0),
        })
    }

    /// The configured limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `n` units at `now`, or says how long until it could.
    pub fn take(&self, n: u64, now: u64) -> Result<RateState, RateRefusal> {
        if n > self.limit {
            return Err(RateRefusal {
                state: self.state(now),
                retry_after_ns: None,
            });
        }
        // n <= limit, so n * interval <= burst: no overflow.
        let cost = n.saturating_mul(self.interval);
        let mut current = self.tat.load(Ordering::Acquire);
        loop {
            let next = current.max(now).saturating_add(cost);
            let ahead = next.saturating_sub(now);
            if ahead > self.burst {
                return Err(RateRefusal {
                    state: self.state_at(current, now),
                    retry_after_ns: Some(ahead - self.burst),
                });
            }
            match self
                .tat
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(self.state_at(next, now)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back `n` units taken earlier (a reservation larger than the use, or a rollback).
    ///
    /// The bucket never holds more than `limit`: a TAT moved before `now` reads as full.
    pub fn refund(&self, n: u64) {
        let cost = n.saturating_mul(self.interval);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(cost))
            });
    }

    /// Charges `n` units without asking (use beyond the reservation): the bucket may go into
    /// debt, and later takes wait until it is paid back.
    pub fn charge(&self, n: u64, now: u64) {
        let cost = n.saturating_mul(self.interval);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.max(now).saturating_add(cost))
            });
    }

    /// The bucket at `now`, for headers and the admin API.
    pub fn state(&self, now: u64) -> RateState {
        self.state_at(self.tat.load(Ordering::Acquire), now)
    }

    fn state_at(&self, tat: u64, now: u64) -> RateState {
        let ahead = tat.saturating_sub(now);
        let in_use = ahead.div_ceil(self.interval);
        RateState {
            limit: self.limit,
            remaining: self.limit.saturating_sub(in_use),
            reset_ns: ahead,
        }
    }
}

/// Formats nanoseconds as Go's `time.Duration` does, rounded up to the millisecond: `"0s"`,
/// `"17ms"`, `"1s"`, `"1.5s"`, `"6m0s"`, `"1h0m0s"` (the form of OpenAI's reset headers).
pub fn duration_string(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let (s, frac) = ((ms / 1000) % 60, ms % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

/// Whole seconds for `retry-after`, rounded up (at least 1 once anything is owed).
pub fn retry_after_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_burst_admits_exactly_the_limit_then_refills() {
        let b = Bucket::per_minute(7).unwrap();
        let t0 = 5 * SEC;
        for i in 0..7 {
            let s = b.take(1, t0).unwrap();
            assert_eq!(s.remaining, 6 - i);
            assert_eq!(s.limit, 7);
        }
        let r = b.take(1, t0).unwrap_err();
        assert_eq!(r.state.remaining, 0);
        let wait = r.retry_after_ns.unwrap();
        // One unit comes back every ceil(60s / 7).
        assert_eq!(wait, MINUTE_NS.div_ceil(7));
        assert!(b.take(1, t0 + wait - 1).is_err());
        assert!(b.take(1, t0 + wait).is_ok());
        // Seven intervals (a minute, rounded up) after the last take it is full again.
        assert_eq!(b.state(t0 + 8 * wait - 1).remaining, 6);
        assert_eq!(b.state(t0 + 8 * wait).remaining, 7);
    }

    #[test]
    fn a_take_larger_than_the_limit_never_fits() {
        let b = Bucket::per_minute(100).unwrap();
        let r = b.take(101, 0).unwrap_err();
        assert_eq!(r.retry_after_ns, None);
        assert_eq!(r.state.remaining, 100);
        assert!(b.take(100, 0).is_ok());
    }

    #[test]
    fn refunds_and_charges_settle_tokens() {
        let b = Bucket::per_minute(1000).unwrap();
        let now = 10 * SEC;
        // Reserve 600, use 200: 400 come back.
        assert_eq!(b.take(600, now).unwrap().remaining, 400);
        b.refund(400);
        assert_eq!(b.state(now).remaining, 800);
        // Reserve 100, use 500: 400 more are charged and the bucket is in debt.
        assert_eq!(b.take(100, now).unwrap().remaining, 700);
        b.charge(400, now);
        assert_eq!(b.state(now).remaining, 300);
        b.charge(2000, now);
        let s = b.state(now);
        assert_eq!(s.remaining, 0, "remaining never goes below zero");
        assert!(s.reset_ns > MINUTE_NS);
        assert!(b.take(1, now).is_err());
        // Refunding more than was taken never fills beyond the limit.
        b.refund(1_000_000);
        assert_eq!(b.state(now).remaining, 1000);
        assert!(b.take(1001, now).is_err());
    }

    #[test]
    fn reset_is_the_time_to_full() {
        let b = Bucket::per_minute(60).unwrap();
        let s = b.take(6, 0).unwrap();
        assert_eq!(s.reset_ns, 6 * SEC);
        assert_eq!(s.reset(), "6s");
        assert_eq!(b.state(4 * SEC).reset(), "2s");
        assert_eq!(b.state(7 * SEC).reset(), "0s");
    }

    #[test]
    fn rejects_unrepresentable_limits() {
        assert_eq!(Bucket::per_minute(0).unwrap_err(), RateError::ZeroLimit);
        assert!(Bucket::new(5, 0).is_err());
        assert!(Bucket::per_minute(u64::MAX).is_ok());
    }

    #[test]
    fn formats_durations_like_openai() {
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(1), "1ms");
        assert_eq!(duration_string(17_000_000), "17ms");
        assert_eq!(duration_string(SEC), "1s");
        assert_eq!(duration_string(1_500 * 1_000_000), "1.5s");
        assert_eq!(duration_string(360 * SEC), "6m0s");
        assert_eq!(duration_string(361_250 * 1_000_000), "6m1.25s");
        assert_eq!(duration_string(3600 * SEC), "1h0m0s");
        assert_eq!(retry_after_secs(1), 1);
        assert_eq!(retry_after_secs(2 * SEC), 2);
    }

    /// 8 threads × 10,000 reservations of 1..=50 tokens at one instant: the admitted total
    /// never exceeds the limit, and no capacity is lost to the contention either.
    #[test]
    fn concurrent_takes_never_exceed_the_limit() {
        let limit = 100_000;
        let b = Arc::new(Bucket::per_minute(limit).unwrap());
        let admitted = Arc::new(AtomicU64::new(0));
        let now = 3 * SEC;
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (b, admitted) = (Arc::clone(&b), Arc::clone(&admitted));
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        let n = (t * 7 + i * 13) % 50 + 1;
                        if b.take(n, now).is_ok() {
                            admitted.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total = admitted.load(Ordering::Relaxed);
        assert!(total <= limit, "{total} > {limit}");
        assert!(total > limit - 50, "capacity lost: {total}");
        b.refund(total);
        assert_eq!(b.state(now).remaining, limit);
    }

    /// With time moving, admissions in any span of `d` stay within `limit + limit * d / 60s`.
    #[test]
    fn concurrent_takes_over_time_stay_within_the_rate() {
        let limit = 600; // 10 per second
        let b = Arc::new(Bucket::per_minute(limit).unwrap());
        let clock = Arc::new(AtomicU64::new(0));
        let admitted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (b, clock, admitted) =
                    (Arc::clone(&b), Arc::clone(&clock), Arc::clone(&admitted));
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        // Each try moves the shared clock 1 ms on: 80 s in all.
                        let now = clock.fetch_add(1_000_000, Ordering::Relaxed);
                        if b.take(1, now).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let span = clock.load(Ordering::Relaxed);
        let bound = limit + limit * span / MINUTE_NS;
        let total = admitted.load(Ordering::Relaxed);
        assert!(total <= bound, "{total} > {bound}");
        assert!(total + 5 >= bound, "{total} well under {bound}");
    }
}
