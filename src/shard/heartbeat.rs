//! Shard heartbeats: proof that each shard's event loop still turns.
//!
//! Every shard runs a timer task that stamps its slot every [`BEAT_EVERY`]. The stamp only
//! moves if the shard's runtime gets through its ready tasks and fires its timers, so a
//! shard stuck in a blocking call, a busy loop or a deadlock stops beating even though its
//! thread exists. `/admin/live`, `/admin/ready` and the systemd watchdog all read the same
//! [`Heartbeats::check`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a shard stamps its heartbeat.
pub const BEAT_EVERY: Duration = Duration::from_millis(100);

/// One slot per shard: when it last beat, and whether it stopped after a drain.
#[derive(Debug)]
pub struct Heartbeats {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last beat, plus one (0: never beat).
    beats: Box<[AtomicU64]>,
    /// The shard's runtime ended after the drain (it no longer beats, and need not).
    stopped: Box<[AtomicBool]>,
}

/// What the heartbeats say at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulse {
    /// Every running shard beat within the timeout; `slowest` is the longest silence.
    Alive {
        /// The longest time since a running shard's last beat.
        slowest: Duration,
        /// Shards that stopped after the drain.
        stopped: usize,
    },
    /// A shard has not beaten yet (it is still starting).
    Starting {
        /// Which shard.
        shard: usize,
    },
    /// A shard has been silent for longer than the timeout: wedged or dead.
    Silent {
        /// Which shard (the first found).
        shard: usize,
        /// How long since its last beat.
        silent_for: Duration,
    },
}

impl Pulse {
    /// True when every running shard is alive.
    pub fn is_alive(&self) -> bool {
        matches!(self, Pulse::Alive { .. })
    }
}

impl Heartbeats {
    /// Slots for `shards` shards, none of which has beaten yet.
    pub fn new(shards: usize) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            beats: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            stopped: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.beats.len()
    }

    /// Stamps shard `id`'s heartbeat at `now`.
    pub fn beat_at(&self, id: usize, now: Instant) {
        if let Some(slot) = self.beats.get(id) {
            slot.store(self.stamp(now), Ordering::Relaxed);
        }
    }

    /// Marks shard `id` as stopped after its drain: it is no longer expected to beat.
    pub fn stopped(&self, id: usize) {
        if let Some(flag) = self.stopped.get(id) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    /// Whether every shard that has not stopped beat within `timeout` of `now`.
    pub fn check(&self, now: Instant, timeout: Duration) -> Pulse {
        let now_stamp = self.stamp(now);
        let mut slowest = Duration::ZERO;
        let mut stopped = 0;
        for (shard, (beat, done)) in self.beats.iter().zip(self.stopped.iter()).enumerate() {
            if done.load(Ordering::Relaxed) {
                stopped += 1;
                continue;
            }
            let last = beat.load(Ordering::Relaxed);
            if last == 0 {
                return Pulse::Starting { shard };
            }
            let silent_for = Duration::from_millis(now_stamp.saturating_sub(last));
            if silent_for > timeout {
                return Pulse::Silent { shard, silent_for };
            }
            slowest = slowest.max(silent_for);
        }
        Pulse::Alive { slowest, stopped }
    }

    fn stamp(&self, at: Instant) -> u64 {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1
    }
}

/// Runs on a shard for as long as its runtime does: stamps the shard's heartbeat every
/// [`BEAT_EVERY`]. It holds nothing of the shard's, so a runtime that ends with it asleep
/// loses nothing.
pub async fn beat(beats: Arc<Heartbeats>, id: usize) {
    loop {
        beats.beat_at(id, Instant::now());
        monoio::time::sleep(BEAT_EVERY).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[test]
    fn a_shard_that_never_beat_is_starting() {
        let hb = Heartbeats::new(2);
        let t0 = Instant::now();
        hb.beat_at(0, t0);
        assert_eq!(hb.check(t0, TIMEOUT), Pulse::Starting { shard: 1 });
    }

    #[test]
    fn recent_beats_are_alive_and_old_ones_silent() {
        let hb = Heartbeats::new(2);
        let t0 = Instant::now();
        hb.beat_at(0, t0);
        hb.beat_at(1, t0 + Duration::from_millis(500));
        let at = t0 + Duration::from_millis(1500);
        assert_eq!(
            hb.check(at, TIMEOUT),
            Pulse::Alive {
                slowest: Duration::from_millis(1500),
                stopped: 0
            }
        );
        let late = t0 + Duration::from_millis(2400);
        assert_eq!(
            hb.check(late, TIMEOUT),
            Pulse::Silent {
                shard: 0,
                silent_for: Duration::from_millis(2400)
            }
        );
        hb.beat_at(0, late);
        assert!(hb.check(late, TIMEOUT).is_alive());
    }

    #[test]
    fn a_stopped_shard_is_not_expected_to_beat() {
        let hb = Heartbeats::new(2);
        let t0 = Instant::now();
        hb.beat_at(0, t0);
        hb.beat_at(1, t0);
        hb.stopped(1);
        let at = t0 + Duration::from_secs(60);
        assert!(!hb.check(at, TIMEOUT).is_alive());
        hb.beat_at(0, at);
        assert_eq!(
            hb.check(at, TIMEOUT),
            Pulse::Alive {
                slowest: Duration::ZERO,
                stopped: 1
            }
        );
    }

    #[test]
    fn the_beat_task_stamps_its_slot() {
        let hb = Heartbeats::new(1);
        let task = beat(Arc::clone(&hb), 0);
        crate::block_on_local(async move {
            let _ = monoio::time::timeout(Duration::from_millis(250), task).await;
        });
        assert!(hb.check(Instant::now(), TIMEOUT).is_alive());
    }
}
