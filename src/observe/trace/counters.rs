//! Process-wide span counters, for `/metrics` and the exporter's own warnings: read with
//! [`spans_dropped`], [`spans_exported`] and [`spans_export_failed`].

use std::sync::atomic::{AtomicU64, Ordering};

static DROPPED: AtomicU64 = AtomicU64::new(0);
static EXPORTED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Spans a shard could not hand to the exporter because its queue was full (or the
/// exporter had stopped). Counted on the shard; never blocks.
pub fn spans_dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Spans a collector accepted.
pub fn spans_exported() -> u64 {
    EXPORTED.load(Ordering::Relaxed)
}

/// Spans lost on the way to the collector: it was down, slow, answered an error, or
/// refused them (partial success).
pub fn spans_export_failed() -> u64 {
    FAILED.load(Ordering::Relaxed)
}

pub(super) fn add_dropped(n: u64) {
    DROPPED.fetch_add(n, Ordering::Relaxed);
}

pub(super) fn add_exported(n: u64) {
    EXPORTED.fetch_add(n, Ordering::Relaxed);
}

pub(super) fn add_failed(n: u64) {
    FAILED.fetch_add(n, Ordering::Relaxed);
}
