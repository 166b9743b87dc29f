//! Spend caps that never overshoot, at any concurrency.
//!
//! A [`Budget`] holds, for the current window, one atomic `committed` amount: what was spent
//! plus what is reserved by calls in flight, in integer micro-dollars. A call reserves its
//! worst-case cost by compare-exchange, only while `committed + worst_case <= cap`; it then
//! settles to its actual cost (the unused part goes back) or releases the whole reservation.
//! Settled spend is always part of `committed`, so it can never pass the cap.
//!
//! **Actual above the reservation is clamped.** The caller reserves the worst case, so an
//! actual cost above it means the estimate was wrong; charging the difference could pass the
//! cap, so [`Budget::settle`] records at most the reserved amount and returns what it recorded.
//!
//! **Window rollover.** Each window has its own counters, swapped in (an `ArcSwap`) by the
//! first call that sees the new window; spend starts again from zero. A reservation belongs to
//! the window it was made in: settled or released after its window has ended, it is *dropped*
//! (its window's counters are gone and no longer limit anything) and never touches the new
//! window's counters, so it cannot free room there that was never taken. Its cost is still
//! returned to the caller for the record. In short: a call is charged to the window that
//! admitted it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::window::Window;

/// Micro-dollars in one US dollar.
pub const MICROS_PER_USD: u64 = 1_000_000;

/// A budget amount from the config that is not a finite, non-negative number of dollars.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("budget of {0} USD is not a non-negative amount")]
pub struct BadAmount(pub f64);

/// Dollars (as the config writes them) to micro-dollars, rounded to the nearest.
pub fn usd_to_micros(usd: f64) -> Result<u64, BadAmount> {
    if !usd.is_finite() || usd < 0.0 || usd * MICROS_PER_USD as f64 >= u64::MAX as f64 {
        return Err(BadAmount(usd));
    }
    Ok((usd * MICROS_PER_USD as f64).round() as u64)
}

/// The counters of one window.
#[derive(Debug)]
struct Period {
    id: u64,
    /// Spent plus reserved: the only amount the cap is checked against.
    committed: AtomicU64,
    /// Settled spend (reporting only; always part of `committed`).
    spent: AtomicU64,
}

impl Period {
    fn new(id: u64) -> Self {
        Self {
            id,
            committed: AtomicU64::new(0),
            spent: AtomicU64::new(0),
        }
    }
}

/// A spend cap over a calendar window, in micro-dollars (see the module docs).
#[derive(Debug)]
pub struct Budget {
    cap: u64,
    per: Window,
    current: ArcSwap<Period>,
}

/// An amount held against a budget until it is settled or released.
///
/// Not `Clone`: each reservation is settled or released once. Dropping one without either
/// keeps its amount held until the window ends (for `total`, for good).
#[must_use = "settle or release a reservation, or its amount stays held until the window ends"]
#[derive(Debug, PartialEq, Eq)]
pub struct BudgetReservation {
    window: u64,
    amount: u64,
}

impl BudgetReservation {
    /// The amount held, in micro-dollars.
    pub fn amount(&self) -> u64 {
        self.amount
    }
}

/// A refused reservation: the cap, what is still available, and when the window resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetRefusal {
    /// The cap, in micro-dollars.
    pub cap: u64,
    /// What could still be reserved, in micro-dollars.
    pub available: u64,
    /// Milliseconds until the window ends and spend starts again; `None` for `total`.
    pub resets_in_ms: Option<u64>,
}

/// A budget's standing, for the admin API and response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetUsage {
    /// The cap, in micro-dollars.
    pub cap: u64,
    /// The window it applies to.
    pub per: Window,
    /// Settled spend in the current window.
    pub spent: u64,
    /// Held by calls in flight.
    pub reserved: u64,
    /// What could still be reserved (`cap - spent - reserved`).
    pub remaining: u64,
    /// Milliseconds until the window ends; `None` for `total`.
    pub resets_in_ms: Option<u64>,
}

impl Budget {
    /// A budget of `cap` micro-dollars per window `per`, with nothing spent.
    pub fn new(cap: u64, per: Window) -> Self {
        Self {
            cap,
            per,
            current: ArcSwap::from_pointee(Period::new(0)),
        }
    }

    /// The cap, in micro-dollars.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// The window the cap applies to.
    pub fn per(&self) -> Window {
        self.per
    }

    /// The counters of the window holding `unix_ms`, swapping in fresh ones when it is newer
    /// than the current window. Never goes back to an older window: a caller whose clock lags
    /// uses the newer window's counters, which is only stricter.
    fn period(&self, unix_ms: u64) -> arc_swap::Guard<Arc<Period>> {
        let id = self.per.id(unix_ms);
        loop {
            let current = self.current.load();
            if current.id >= id {
                return current;
            }
            // Whoever wins, the current window is at least `id` afterwards.
            let _ = self
                .current
                .compare_and_swap(&current, Arc::new(Period::new(id)));
        }
    }

    /// Holds `amount` if `spent + reserved + amount <= cap` in the window of `unix_ms`.
    pub fn reserve(&self, amount: u64, unix_ms: u64) -> Result<BudgetReservation, BudgetRefusal> {
        let period = self.period(unix_ms);
        let mut committed = period.committed.load(Ordering::Acquire);
        loop {
            let Some(next) = committed.checked_add(amount).filter(|n| *n <= self.cap) else {
                return Err(BudgetRefusal {
                    cap: self.cap,
                    available: self.cap.saturating_sub(committed),
                    resets_in_ms: self.per.resets_in_ms(unix_ms),
                });
            };
            match period.committed.compare_exchange_weak(
                committed,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(BudgetReservation {
                        window: period.id,
                        amount,
                    })
                }
                Err(actual) => committed = actual,
            }
        }
    }

    /// Turns a reservation into spend of `actual` micro-dollars, clamped to the reservation,
    /// and gives back the rest. Returns the amount recorded as spent.
    pub fn settle(&self, reservation: BudgetReservation, actual: u64) -> u64 {
        let charged = actual.min(reservation.amount);
        let period = self.current.load();
        if period.id == reservation.window {
            // Spend first: `committed` never drops below `spent`.
            period.spent.fetch_add(charged, Ordering::AcqRel);
            period
                .committed
                .fetch_sub(reservation.amount - charged, Ordering::AcqRel);
        }
        charged
    }

    /// Gives a reservation back whole (the call was not made).
    pub fn release(&self, reservation: BudgetReservation) {
        let period = self.current.load();
        if period.id == reservation.window {
            period
                .committed
                .fetch_sub(reservation.amount, Ordering::AcqRel);
        }
    }

    /// The current window's id and settled spend, to persist.
    pub fn snapshot(&self) -> (u64, u64) {
        let period = self.current.load();
        (period.id, period.spent.load(Ordering::Acquire))
    }

    /// Adds spend persisted for window `window` (before a restart), if that window is the
    /// one holding `unix_ms`: a restart never hands a budget its money back.
    pub fn restore(&self, window: u64, spent: u64, unix_ms: u64) {
        if window != self.per.id(unix_ms) {
            return;
        }
        let period = self.period(unix_ms);
        if period.id == window {
            period.spent.fetch_add(spent, Ordering::AcqRel);
            period.committed.fetch_add(spent, Ordering::AcqRel);
        }
    }

    /// Continues `old`'s window counters (a reload changed the cap, not the window): what
    /// was spent and what calls in flight hold still count against the new cap.
    pub fn adopt(&self, old: &Budget) {
        if self.per == old.per {
            self.current.store(old.current.load_full());
        }
    }

    /// The largest amount a reservation could get at `unix_ms` (used to lower max tokens).
    pub fn affordable(&self, unix_ms: u64) -> u64 {
        let period = self.current.load();
        if period.id < self.per.id(unix_ms) {
            return self.cap;
        }
        self.cap
            .saturating_sub(period.committed.load(Ordering::Acquire))
    }

    /// The budget's standing at `unix_ms`; a window that has ended reads as empty.
    pub fn read(&self, unix_ms: u64) -> BudgetUsage {
        let period = self.current.load();
        let (spent, committed) = if period.id < self.per.id(unix_ms) {
            (0, 0)
        } else {
            (
                period.spent.load(Ordering::Acquire),
                period.committed.load(Ordering::Acquire),
            )
        };
        BudgetUsage {
            cap: self.cap,
            per: self.per,
            spent,
            reserved: committed.saturating_sub(spent),
            remaining: self.cap.saturating_sub(committed),
            resets_in_ms: self.per.resets_in_ms(unix_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23T12:00:00.123Z
    const T: u64 = 1_795_435_200_123;

    #[test]
    fn converts_dollars() {
        assert_eq!(usd_to_micros(50.0), Ok(50_000_000));
        assert_eq!(usd_to_micros(0.0000015), Ok(2));
        assert!(usd_to_micros(-1.0).is_err());
        assert!(usd_to_micros(f64::NAN).is_err());
        assert!(usd_to_micros(f64::INFINITY).is_err());
    }

    #[test]
    fn reserves_up_to_the_cap_and_settles_the_actual() {
        let b = Budget::new(1000, Window::Day);
        let a = b.reserve(600, T).unwrap();
        assert_eq!(b.affordable(T), 400);
        let refused = b.reserve(401, T).unwrap_err();
        assert_eq!(refused.available, 400);
        assert_eq!(refused.cap, 1000);
        assert_eq!(refused.resets_in_ms, Some(12 * 3_600_000 - 123));
        let c = b.reserve(400, T).unwrap();
        assert_eq!(b.affordable(T), 0);
        assert_eq!(b.settle(a, 250), 250);
        b.release(c);
        let u = b.read(T);
        assert_eq!((u.spent, u.reserved, u.remaining), (250, 0, 750));
    }

    #[test]
    fn actual_above_the_reservation_is_clamped() {
        let b = Budget::new(1000, Window::Total);
        let a = b.reserve(100, T).unwrap();
        assert_eq!(b.settle(a, 5000), 100);
        let u = b.read(T);
        assert_eq!((u.spent, u.remaining, u.resets_in_ms), (100, 900, None));
    }

    #[test]
    fn a_new_window_starts_from_zero_and_drops_old_reservations() {
        let b = Budget::new(1000, Window::Minute);
        let old_settled = b.reserve(700, T).unwrap();
        let old_released = b.reserve(300, T).unwrap();
        assert!(b.reserve(1, T).is_err());
        let next = T + 60_000;
        // The read before anyone reserves in the new window already shows it empty.
        assert_eq!(b.read(next).remaining, 1000);
        assert_eq!(b.affordable(next), 1000);
        let fresh = b.reserve(900, next).unwrap();
        // The old window's reservations settle to nothing in the new one.
        assert_eq!(b.settle(old_settled, 500), 500);
        b.release(old_released);
        let u = b.read(next);
        assert_eq!((u.spent, u.reserved, u.remaining), (0, 900, 100));
        assert!(b.reserve(101, next).is_err());
        // A caller whose clock lags behind uses the newer window: never the old one again.
        assert!(b.reserve(101, T).is_err());
        assert_eq!(b.settle(fresh, 900), 900);
        assert_eq!(b.read(next).spent, 900);
    }

    /// 8 threads × 10,000 reservations against a cap that fits a fraction of them: the settled
    /// spend never passes the cap, everything unused comes back, and the budget is whole again.
    #[test]
    fn concurrent_reservations_never_overshoot() {
        let cap = 5_000_000; // $5
        let b = Arc::new(Budget::new(cap, Window::Total));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let (mut spent, mut held) = (0u64, Vec::new());
                    for i in 0..10_000u64 {
                        let worst = 1000 + (t * 31 + i * 17) % 9000;
                        let Ok(r) = b.reserve(worst, T) else { continue };
                        match i % 3 {
                            // Settle: sometimes under, sometimes "over" (clamped).
                            0 => spent += b.settle(r, worst / 2),
                            1 => spent += b.settle(r, worst * 2),
                            // Keep some in flight a while, released later.
                            _ => held.push(r),
                        }
                        if held.len() > 10 {
                            held.drain(..).for_each(|r| b.release(r));
                        }
                    }
                    for r in held {
                        b.release(r);
                    }
                    spent
                })
            })
            .collect();
        let spent: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let u = b.read(T);
        assert!(spent <= cap, "{spent} > {cap}");
        assert_eq!(u.spent, spent);
        assert_eq!(u.reserved, 0, "every reservation came back");
        assert_eq!(u.remaining, cap - spent);
        assert!(spent > cap / 2, "the budget was used: {spent}");
        // After the settle, what is left can be reserved again.
        let r = b.reserve(u.remaining, T).unwrap();
        assert!(b.reserve(1, T).is_err());
        b.release(r);
    }

    /// Reservations racing a window rollover (some settled after their window ended): the
    /// last window's counters balance exactly and never pass the cap.
    #[test]
    fn concurrent_rollover_keeps_each_window_under_the_cap() {
        let cap = 100_000;
        let b = Arc::new(Budget::new(cap, Window::Minute));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..10_000u64 {
                        // Four windows, each thread at its own pace through them.
                        let w = ((i + t * 100) * 4) / 10_800;
                        let now = T + w * 60_000;
                        if let Ok(r) = b.reserve(997, now) {
                            if i % 2 == 0 {
                                b.settle(r, 500);
                            } else {
                                held.push(r);
                            }
                        }
                        // Release late, often after the window has ended.
                        if held.len() > 20 {
                            held.drain(..).for_each(|r| b.release(r));
                        }
                    }
                    held.into_iter().for_each(|r| b.release(r));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let u = b.read(T + 3 * 60_000);
        assert!(u.spent > 0 && u.spent <= cap);
        assert_eq!(u.reserved, 0);
        assert_eq!(
            u.remaining,
            cap - u.spent,
            "no old reservation freed room here"
        );
    }
}
