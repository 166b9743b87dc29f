//! One latency distribution: an HDR histogram of microseconds (2 significant digits, so
//! any value is known to within 1%) and the exact sum. A shard records into its own; the
//! scraper adds the shards' together and reads both the Prometheus buckets and the
//! quantiles from the result.

use hdrhistogram::Histogram;

/// Bucket upper bounds in seconds, shared by every latency histogram: from 100 µs (the
/// gateway's own overhead) to 5 minutes (a long generation).
pub const BUCKETS_SECONDS: [f64; 20] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The quantiles exported for each latency.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Longest latency recorded as itself (one hour); longer ones count as one hour, so a
/// nonsense value cannot grow a histogram without bound.
const MAX_MICROS: u64 = 3_600_000_000;

/// Significant digits kept: values are exact to within 1%.
const SIGFIG: u8 = 2;

/// Why a histogram could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot create a latency histogram: {0:?}")]
pub struct HistogramError(hdrhistogram::CreationError);

/// A latency distribution in microseconds with its exact sum.
#[derive(Debug, Clone)]
pub struct Latency {
    hdr: Histogram<u64>,
    sum_seconds: f64,
}

impl Latency {
    /// An empty distribution (auto-resizing: it grows only as far as the largest value seen).
    pub fn new() -> Result<Self, HistogramError> {
        Ok(Self {
            hdr: Histogram::new(SIGFIG).map_err(HistogramError)?,
            sum_seconds: 0.0,
        })
    }

    /// An empty distribution like this one (no allocation can fail here).
    pub fn empty_like(&self) -> Self {
        let mut hdr = self.hdr.clone();
        hdr.reset();
        Self {
            hdr,
            sum_seconds: 0.0,
        }
    }

    /// Records one latency given in milliseconds (negative or NaN values are ignored).
    pub fn record_ms(&mut self, ms: f64) {
        if ms.is_nan() || ms < 0.0 {
            return;
        }
        let micros = (ms * 1000.0).round().min(MAX_MICROS as f64) as u64;
        // `record` grows the histogram as needed (`saturating_record` would clamp to its
        // current top instead); values are capped above, so it cannot fail.
        if self.hdr.record(micros).is_ok() {
            self.sum_seconds += micros as f64 / 1e6;
        }
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.hdr.len()
    }

    /// The sum of every value, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_seconds
    }

    /// Adds another distribution into this one (the scraper merging shards).
    pub fn add(&mut self, other: &Latency) {
        // Both auto-resize with the same precision, so adding cannot fail.
        if self.hdr.add(&other.hdr).is_ok() {
            self.sum_seconds += other.sum_seconds;
        }
    }

    /// This distribution without what `earlier` (a copy of it taken before) held: the values
    /// recorded since. Falls back to the whole distribution if `earlier` is not a prefix.
    pub fn since(&self, earlier: &Latency) -> Latency {
        let mut window = self.clone();
        if window.hdr.subtract(&earlier.hdr).is_err() {
            return self.clone();
        }
        window.sum_seconds = (self.sum_seconds - earlier.sum_seconds).max(0.0);
        window
    }

    /// Cumulative counts for [`BUCKETS_SECONDS`] (the `+Inf` bucket is [`Self::count`]).
    /// A value lands in the first bucket whose bound is at least the lowest value its HDR
    /// slot holds, so bucket edges are exact to within 1%.
    pub fn bucket_counts(&self) -> [u64; BUCKETS_SECONDS.len()] {
        let bounds = BUCKETS_SECONDS.map(|s| (s * 1e6).round() as u64);
        let mut counts = [0u64; BUCKETS_SECONDS.len()];
        for v in self.hdr.iter_recorded() {
            let low = self.hdr.lowest_equivalent(v.value_iterated_to());
            let i = bounds.partition_point(|&b| b < low);
            if let Some(c) = counts.get_mut(i) {
                *c += v.count_at_value();
            }
        }
        let mut running = 0;
        for c in &mut counts {
            running += *c;
            *c = running;
        }
        counts
    }

    /// The value at quantile `q` in seconds (NaN when nothing was recorded, as Prometheus
    /// client libraries report an empty summary).
    pub fn quantile_seconds(&self, q: f64) -> f64 {
        if self.hdr.is_empty() {
            return f64::NAN;
        }
        // The middle of the HDR slot the quantile falls in (within 1% of the true value).
        self.hdr.median_equivalent(self.hdr.value_at_quantile(q)) as f64 / 1e6
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_match_the_values() {
        let mut l = Latency::new().unwrap();
        for ms in [0.05, 0.2, 0.9, 1.0, 7.0, 400.0, 2_000.0, 10_000_000.0] {
            l.record_ms(ms);
        }
        l.record_ms(-1.0);
        l.record_ms(f64::NAN);
        assert_eq!(l.count(), 8);
        let b = l.bucket_counts();
        let at = |s: f64| b[BUCKETS_SECONDS.iter().position(|&x| x == s).unwrap()];
        assert_eq!(at(0.0001), 1); // 50 µs
        assert_eq!(at(0.00025), 2); // 200 µs
        assert_eq!(at(0.001), 4); // 900 µs and exactly 1 ms
        assert_eq!(at(0.01), 5);
        assert_eq!(at(0.5), 6);
        assert_eq!(at(2.5), 7);
        // The ten-thousand-second value is capped at an hour: over every bound.
        assert_eq!(at(300.0), 7);
        assert!(b.windows(2).all(|w| w[0] <= w[1]));
        let sum = 0.00005 + 0.0002 + 0.0009 + 0.001 + 0.007 + 0.4 + 2.0 + 3600.0;
        assert!((l.sum_seconds() - sum).abs() < 1e-9, "{}", l.sum_seconds());
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut l = Latency::new().unwrap();
        for i in 1..=1000 {
            l.record_ms(f64::from(i));
        }
        let p50 = l.quantile_seconds(0.5);
        let p99 = l.quantile_seconds(0.99);
        assert!((p50 - 0.5).abs() / 0.5 < 0.01, "{p50}");
        assert!((p99 - 0.99).abs() / 0.99 < 0.01, "{p99}");
        assert!(Latency::new().unwrap().quantile_seconds(0.5).is_nan());
    }

    #[test]
    fn shards_add_up_and_a_window_holds_only_new_values() {
        let mut a = Latency::new().unwrap();
        let mut b = a.empty_like();
        a.record_ms(1.0);
        b.record_ms(100.0);
        let mut merged = a.empty_like();
        merged.add(&a);
        merged.add(&b);
        assert_eq!(merged.count(), 2);
        let earlier = merged.clone();
        let mut later = merged.clone();
        later.record_ms(50.0);
        let window = later.since(&earlier);
        assert_eq!(window.count(), 1);
        assert!((window.quantile_seconds(0.5) - 0.05).abs() < 0.001);
        assert!((window.sum_seconds() - 0.05).abs() < 1e-9);
    }
}
