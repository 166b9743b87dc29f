//! Counting heap allocations per shard thread, so a test can pin how many allocations one
//! passthrough request and one relayed SSE event cost (tests/allocations.rs) and they don't
//! creep back unnoticed.
//!
//! The binary wraps its global allocator in [`CountingAlloc`]. Counting is off unless
//! `INFERGATE_COUNT_ALLOCATIONS=1` is set when the process starts ([`enable_from_env`]).
//! While on, every allocation (`alloc`, `alloc_zeroed`, `realloc`; frees are not counted)
//! adds one to a counter of the calling thread; each shard copies its thread's counter to
//! an [`AllocationBoard`] slot now and then, and the admin listener serves the board as
//! `GET /admin/debug/allocations` → `{"shards":[n0,n1,..]}`.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::proxy::Lifecycle;

/// The environment variable that turns counting on (`1`), read once at start.
pub const ENV: &str = "INFERGATE_COUNT_ALLOCATIONS";

/// How often a shard copies its thread's count to the board while counting is on.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// Whether allocations are being counted. Off by default; set once at start.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Where shards publish their counts; set only when counting is on.
static BOARD: OnceLock<AllocationBoard> = OnceLock::new();

thread_local! {
    /// Allocations made by this thread since counting was turned on. Const-initialised and
    /// without a destructor, so touching it never allocates or registers a TLS destructor
    /// (which would recurse into the allocator).
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// A global allocator that forwards to `A` and, while counting is on, counts the calling
/// thread's allocations (see the module docs).
///
/// Cost when counting is off (the default): one relaxed load of a `static AtomicBool` per
/// allocation, reallocation and zeroed allocation, and a branch predicted not taken; frees
/// cost nothing extra. When on: also a thread-local increment.
pub struct CountingAlloc<A> {
    inner: A,
}

impl<A> CountingAlloc<A> {
    /// Wraps `inner` (the binary passes mimalloc).
    pub const fn new(inner: A) -> Self {
        CountingAlloc { inner }
    }
}

#[inline(always)]
fn note_allocation() {
    if COUNTING.load(Ordering::Relaxed) {
        // `try_with`: a thread being torn down has no TLS left; its allocations go uncounted.
        let _ = COUNT.try_with(|c| c.set(c.get().wrapping_add(1)));
    }
}

// SAFETY: every method forwards to `inner` with the caller's arguments unchanged; the
// counting beside it neither allocates nor touches the memory handed out.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

/// Turns counting on when `INFERGATE_COUNT_ALLOCATIONS=1`, with a board of `shards` slots;
/// returns whether it did. Call once, before the shards start.
pub fn enable_from_env(shards: usize) -> bool {
    if std::env::var(ENV).is_ok_and(|v| v == "1") {
        enable(shards);
        true
    } else {
        false
    }
}

/// Turns counting on with a board of `shards` slots (a second call keeps the first board).
pub fn enable(shards: usize) {
    let _ = BOARD.get_or_init(|| AllocationBoard::new(shards));
    COUNTING.store(true, Ordering::Relaxed);
}

/// Whether allocations are being counted.
pub fn is_counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

/// Allocations the calling thread made while counting was on.
pub fn thread_allocations() -> u64 {
    COUNT.try_with(Cell::get).unwrap_or(0)
}

/// The board shards publish to, when counting is on.
pub fn board() -> Option<&'static AllocationBoard> {
    BOARD.get().filter(|_| is_counting())
}

/// The newest allocation count of each shard thread, as the shards published them, so the
/// admin listener can read them without reaching into a shard.
pub struct AllocationBoard {
    shards: Box<[AtomicU64]>,
}

impl AllocationBoard {
    fn new(shards: usize) -> Self {
        AllocationBoard {
            shards: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records `count` as shard `shard`'s total (a shard out of range is ignored).
    pub fn publish(&self, shard: usize, count: u64) {
        if let Some(slot) = self.shards.get(shard) {
            slot.store(count, Ordering::Relaxed);
        }
    }

    /// Each shard's published total, in shard order.
    pub fn totals(&self) -> Vec<u64> {
        self.shards
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .collect()
    }
}

/// Runs on shard `shard` while counting is on: copies the thread's count to `board` every
/// [`PUBLISH_EVERY`] until the drain begins. Spawned only when counting is on, so the request
/// path never pays for publishing.
pub async fn publish_counts(board: &'static AllocationBoard, shard: usize, life: Arc<Lifecycle>) {
    loop {
        board.publish(shard, thread_allocations());
        if life.is_draining() {
            return;
        }
        monoio::time::sleep(PUBLISH_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_keeps_each_shards_total() {
        let board = AllocationBoard::new(2);
        board.publish(1, 7);
        board.publish(5, 9);
        assert_eq!(board.totals(), vec![0, 7]);
    }

    #[test]
    fn counts_allocations_not_frees_once_on() {
        // The library's tests run on the system allocator; the wrapper is called directly.
        let a = CountingAlloc::new(std::alloc::System);
        let layout = Layout::from_size_align(64, 8).unwrap();
        enable(1);
        let before = thread_allocations();
        // SAFETY: a non-zero layout; each pointer is freed once with the layout it came from.
        unsafe {
            let p = a.alloc(layout);
            let p = a.realloc(p, layout, 128);
            a.dealloc(p, Layout::from_size_align(128, 8).unwrap());
            let z = a.alloc_zeroed(layout);
            a.dealloc(z, layout);
        }
        assert_eq!(thread_allocations() - before, 3);
        assert!(board().is_some());
    }
}
