//! The health board: where each shard publishes its view of its targets' health (from its
//! own [`RouteHealth`](super::RouteHealth), which no other thread may touch), and where the
//! admin listener and the metrics scrape read it, added up over the shards.
//!
//! A shard publishes when a target's state changes (ejected, let back, benched, probed) and
//! otherwise at most every few hundred milliseconds when something changed (failure counts,
//! latency averages); a publish swaps one pointer, so neither side ever waits for the
//! other. A view holds instants, not states: whether an ejection is over is decided when it
//! is read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

/// Most shards whose views the board keeps (a shard past it publishes nothing).
pub const MAX_SHARDS: usize = 1024;

/// Why a target was benched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BenchReason {
    /// The provider answered 429 (for its `retry-after`, or one second).
    Status429,
    /// An answer's rate-limit headers said nothing is left until a reset.
    RateLimitHeaders,
}

impl BenchReason {
    /// Every reason, in the order of [`TargetSnapshot::benched`].
    pub const ALL: [BenchReason; 2] = [BenchReason::Status429, BenchReason::RateLimitHeaders];

    /// The label in `/admin/health` and metrics: `429` or `rate_limit_headers`.
    pub fn as_str(self) -> &'static str {
        match self {
            BenchReason::Status429 => "429",
            BenchReason::RateLimitHeaders => "rate_limit_headers",
        }
    }

    /// Its index in [`TargetSnapshot::benched`].
    pub fn index(self) -> usize {
        match self {
            BenchReason::Status429 => 0,
            BenchReason::RateLimitHeaders => 1,
        }
    }
}

/// One target as one shard saw it when it published.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    /// Provider name.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// Peak-EWMA of time to first byte in microseconds (0: no answer yet).
    pub ewma_ttfb_us: f64,
    /// Attempts of this shard waiting for their first byte.
    pub waiting: u32,
    /// Failures in a row since the last answer.
    pub failures: u32,
    /// Ejected until then (past: a probe is due or out).
    pub ejected_until: Option<Instant>,
    /// Benched until then.
    pub benched_until: Option<Instant>,
    /// Why it was last benched.
    pub bench_reason: Option<BenchReason>,
    /// Times this shard ejected it.
    pub ejections: u64,
    /// Times this shard benched it, by [`BenchReason::index`].
    pub benched: [u64; 2],
}

/// A target's state at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetState {
    /// Tried as usual.
    Healthy,
    /// Its ejection is over: one probe may go (or is out), and its result decides.
    Probing,
    /// Benched until then, for that reason.
    Benched(Instant, BenchReason),
    /// Ejected until then.
    Ejected(Instant),
}

impl TargetState {
    /// `healthy`, `probing`, `benched` or `ejected`.
    pub fn name(self) -> &'static str {
        match self {
            TargetState::Healthy => "healthy",
            TargetState::Probing => "probing",
            TargetState::Benched(..) => "benched",
            TargetState::Ejected(_) => "ejected",
        }
    }

    /// Its place in [`TargetHealth::shards`], from the mildest.
    fn rank(self) -> usize {
        match self {
            TargetState::Healthy => 0,
            TargetState::Probing => 1,
            TargetState::Benched(..) => 2,
            TargetState::Ejected(_) => 3,
        }
    }
}

impl TargetSnapshot {
    /// The state the snapshot means at `now`.
    pub fn state(&self, now: Instant) -> TargetState {
        if let Some(until) = self.benched_until.filter(|&t| t > now) {
            let reason = self.bench_reason.unwrap_or(BenchReason::Status429);
            return TargetState::Benched(until, reason);
        }
        match self.ejected_until {
            Some(until) if until > now => TargetState::Ejected(until),
            Some(_) => TargetState::Probing,
            None => TargetState::Healthy,
        }
    }
}

/// One shard's published view.
#[derive(Debug, Clone, Default)]
pub struct ShardHealthView {
    /// Every target the shard has state for.
    pub targets: Vec<TargetSnapshot>,
}

/// A target's health over all shards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetHealth {
    /// The most severe state of any shard's (ejected, then benched, then probing); with
    /// the latest end among the shards in it.
    pub state: TargetState,
    /// Shards that see it healthy, probing, benched, ejected.
    pub shards: [usize; 4],
    /// The most failures in a row on any shard.
    pub consecutive_failures: u32,
    /// The mean of the shards' peak-EWMA of time to first byte (`None`: no answer yet).
    pub ewma_ttfb: Option<Duration>,
    /// Attempts waiting for their first byte, all shards.
    pub waiting_first_byte: u32,
    /// Ejections, all shards.
    pub ejections: u64,
    /// Benchings by [`BenchReason::index`], all shards.
    pub benched: [u64; 2],
}

impl Default for TargetHealth {
    fn default() -> Self {
        Self {
            state: TargetState::Healthy,
            shards: [0; 4],
            consecutive_failures: 0,
            ewma_ttfb: None,
            waiting_first_byte: 0,
            ejections: 0,
            benched: [0; 2],
        }
    }
}

/// Every shard's latest view, one slot per shard, each swapped whole.
pub struct HealthBoard {
    shards: Box<[ArcSwapOption<ShardHealthView>]>,
}

impl Default for HealthBoard {
    fn default() -> Self {
        Self {
            shards: (0..MAX_SHARDS).map(|_| ArcSwapOption::empty()).collect(),
        }
    }
}

impl std::fmt::Debug for HealthBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let published = self.shards.iter().filter(|s| s.load().is_some()).count();
        f.debug_struct("HealthBoard")
            .field("published_shards", &published)
            .finish()
    }
}

impl HealthBoard {
    /// Replaces shard `shard`'s view.
    pub fn publish(&self, shard: usize, view: ShardHealthView) {
        if let Some(slot) = self.shards.get(shard) {
            slot.store(Some(Arc::new(view)));
        }
    }

    /// Every target some shard published, by provider and model, added up over the shards
    /// as of `now`.
    pub fn targets(&self, now: Instant) -> BTreeMap<(String, String), TargetHealth> {
        let mut out: BTreeMap<(String, String), TargetHealth> = BTreeMap::new();
        let mut ewma: BTreeMap<(String, String), (f64, u32)> = BTreeMap::new();
        for slot in self.shards.iter() {
            let Some(view) = slot.load_full() else {
                continue;
            };
            for t in &view.targets {
                let key = (t.provider.clone(), t.model.clone());
                let h = out.entry(key.clone()).or_default();
                let state = t.state(now);
                if let Some(n) = h.shards.get_mut(state.rank()) {
                    *n += 1;
                }
                h.state = match (h.state, state) {
                    (TargetState::Ejected(a), TargetState::Ejected(b)) => {
                        TargetState::Ejected(a.max(b))
                    }
                    (TargetState::Benched(a, r), TargetState::Benched(b, s)) => {
                        if b > a {
                            TargetState::Benched(b, s)
                        } else {
                            TargetState::Benched(a, r)
                        }
                    }
                    (old, new) if new.rank() > old.rank() => new,
                    (old, _) => old,
                };
                h.consecutive_failures = h.consecutive_failures.max(t.failures);
                h.waiting_first_byte = h.waiting_first_byte.saturating_add(t.waiting);
                h.ejections = h.ejections.saturating_add(t.ejections);
                for (sum, n) in h.benched.iter_mut().zip(t.benched) {
                    *sum = sum.saturating_add(n);
                }
                if t.ewma_ttfb_us > 0.0 {
                    let e = ewma.entry(key).or_insert((0.0, 0));
                    e.0 += t.ewma_ttfb_us;
                    e.1 += 1;
                }
            }
        }
        for (key, (sum, n)) in ewma {
            if let Some(h) = out.get_mut(&key) {
                h.ewma_ttfb = Some(Duration::from_secs_f64(sum / f64::from(n) / 1e6));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(provider: &str) -> TargetSnapshot {
        TargetSnapshot {
            provider: provider.into(),
            model: "m".into(),
            ewma_ttfb_us: 0.0,
            waiting: 0,
            failures: 0,
            ejected_until: None,
            benched_until: None,
            bench_reason: None,
            ejections: 0,
            benched: [0; 2],
        }
    }

    #[test]
    fn shards_add_up_and_the_most_severe_state_shows() {
        let board = HealthBoard::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let ejected = TargetSnapshot {
            ejected_until: Some(later),
            failures: 0,
            ejections: 2,
            ewma_ttfb_us: 3000.0,
            ..snapshot("a")
        };
        let failing = TargetSnapshot {
            failures: 2,
            ejections: 1,
            waiting: 1,
            ewma_ttfb_us: 1000.0,
            benched: [1, 0],
            ..snapshot("a")
        };
        let benched = TargetSnapshot {
            benched_until: Some(later),
            bench_reason: Some(BenchReason::RateLimitHeaders),
            benched: [0, 1],
            ..snapshot("b")
        };
        board.publish(
            0,
            ShardHealthView {
                targets: vec![ejected, benched],
            },
        );
        board.publish(
            1,
            ShardHealthView {
                targets: vec![failing],
            },
        );
        board.publish(MAX_SHARDS, ShardHealthView::default());
        let all = board.targets(now);
        let a = all[&("a".to_string(), "m".to_string())];
        assert_eq!(a.state, TargetState::Ejected(later));
        assert_eq!(a.shards, [1, 0, 0, 1]);
        assert_eq!(
            (a.consecutive_failures, a.waiting_first_byte, a.ejections),
            (2, 1, 3)
        );
        assert_eq!(a.ewma_ttfb, Some(Duration::from_millis(2)));
        assert_eq!(a.benched, [1, 0]);
        let b = all[&("b".to_string(), "m".to_string())];
        assert_eq!(
            b.state,
            TargetState::Benched(later, BenchReason::RateLimitHeaders)
        );
        assert_eq!(b.ewma_ttfb, None);
        // Once the ends pass: a probe is due at `a`, `b` is healthy again.
        let after = later + Duration::from_millis(1);
        let all = board.targets(after);
        assert_eq!(
            all[&("a".to_string(), "m".to_string())].state,
            TargetState::Probing
        );
        assert_eq!(
            all[&("b".to_string(), "m".to_string())].state,
            TargetState::Healthy
        );
    }
}
