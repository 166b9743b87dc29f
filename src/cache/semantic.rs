//! Semantic index: per scope, the nearest cached prompt by cosine of L2-normalized embeddings.
//!
//! # Layout
//!
//! Each [`ScopeHash`] owns a flat index: vectors live contiguously in chunks (16 slots at
//! first, doubling up to [`MAX_CHUNK_SLOTS`], so a scope with one entry costs ~25 KiB, not a
//! full chunk), next to a 384-bit sign sketch per vector, a packed array of deadlines (so the
//! scan touches 56 bytes per entry) and a slot record (insertion order, the cached entry). Expired slots are reused by the next insert, and
//! [`SemanticIndex::purge_expired`] (periodic maintenance) frees what they still hold; when a
//! scope is full, its oldest entry is replaced.
//!
//! # Search
//!
//! Cosine is a dot product (vectors are unit length). Up to [`EXACT_SCAN_LIMIT`] slots the
//! scan is exact. Beyond that a full scan of f32 vectors is memory-bound (100k × 1.5 KiB
//! = 150 MiB per query, ~10 ms), so the index first ranks every slot by the Hamming distance
//! of the sign sketches (48 bytes per vector; the fraction of differing signs estimates the
//! angle) and re-ranks the [`RERANK`] nearest exactly. A cache hit needs cosine ≥ ~0.8,
//! i.e. an angle whose sketch distance (~80 of 384 bits) is far below unrelated vectors'
//! (~190), so the prefilter loses nothing that matters. Dot products use 8 independent
//! accumulators so LLVM vectorizes them; the scans are compiled twice, baseline and
//! AVX2+FMA+POPCNT (the x86-64 baseline has no popcount instruction), picked at run time.
//!
//! # Concurrency
//!
//! Lookups come from every shard and must never block; inserts are rarer (one per upstream
//! answer). Each scope publishes an immutable snapshot (`arc_swap::ArcSwap<Vec<Arc<Chunk>>>`):
//! a reader loads it without locking and scans it. An insert, serialized per scope by a mutex
//! that only writers take, copies the one chunk it changes, and swaps in a new snapshot that
//! shares every other chunk. Readers in progress keep the snapshot they loaded. The scopes
//! themselves sit in a lock-free `papaya::HashMap`, capped by [`SemanticIndexConfig::max_scopes`]
//! (scopes whose entries all expired are dropped to make room).
//!
//! The GPU backend implements the same [`VectorIndex`] trait on device memory.

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use thiserror::Error;

use super::exact::CachedResponse;
use super::key::ScopeHash;

/// Embedding width of all-MiniLM-L6-v2, the model the semantic cache uses.
pub const DIM: usize = 384;
/// Largest number of slots in one chunk (what one insert copies at most: 384 KiB of vectors).
pub const MAX_CHUNK_SLOTS: usize = 256;
/// Scopes with at most this many slots are scanned exactly.
pub const EXACT_SCAN_LIMIT: usize = 2048;
/// How many sketch-nearest entries are re-ranked exactly in larger scopes.
pub const RERANK: usize = 64;

const FIRST_CHUNK_SLOTS: usize = 16;
const SKETCH_WORDS: usize = DIM / 64;

/// Why an insert was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IndexError {
    /// The vector does not have [`DIM`] components.
    #[error("vector has {got} components, expected {DIM}")]
    Dimension {
        /// Components received.
        got: usize,
    },
    /// The vector has a zero, infinite or NaN norm.
    #[error("vector cannot be normalized")]
    NotNormalizable,
    /// The index already holds `max_scopes` scopes with live entries.
    #[error("too many semantic cache scopes ({0})")]
    TooManyScopes(usize),
}

/// What a semantic hit serves: the answer and the prompt it answered, for the guard.
#[derive(Debug)]
pub struct SemanticEntry {
    /// The last user text the answer was for (compared with the query by the guard).
    pub prompt: String,
    /// Whether the embedder cut `prompt` at its token window.
    pub truncated: bool,
    /// The cached answer.
    pub response: Arc<CachedResponse>,
}

/// The nearest cached entry of a scope, with its cosine similarity to the query.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Cosine similarity (dot product of unit vectors).
    pub similarity: f32,
    /// The cached entry.
    pub entry: Arc<SemanticEntry>,
}

/// Nearest-neighbour search per scope; implemented on the CPU here and on the GPU later.
pub trait VectorIndex: Send + Sync {
    /// The live entry of `scope` most similar to `query` (unit length, [`DIM`] components),
    /// when its similarity reaches the index's threshold.
    fn search(&self, scope: &ScopeHash, query: &[f32], now: Instant) -> Option<Candidate>;

    /// Adds `vector` (normalized on the way in) with its entry, live for `ttl` from `now`.
    fn insert(
        &self,
        scope: ScopeHash,
        vector: &[f32],
        entry: Arc<SemanticEntry>,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), IndexError>;
}

/// Sizing and threshold of a [`SemanticIndex`].
#[derive(Clone, Debug)]
pub struct SemanticIndexConfig {
    /// Entries per scope; the oldest is replaced when full.
    pub max_entries_per_scope: usize,
    /// Scopes in the whole index.
    pub max_scopes: usize,
    /// Smallest cosine similarity returned by `search`.
    pub threshold: f32,
}

impl Default for SemanticIndexConfig {
    fn default() -> Self {
        Self {
            max_entries_per_scope: 100_000,
            max_scopes: 10_000,
            threshold: super::guard::DEFAULT_THRESHOLD,
        }
    }
}

/// Deadline of an empty slot.
const EMPTY: i64 = i64::MIN;

#[derive(Clone, Default)]
struct Slot {
    seq: u64,
    entry: Option<Arc<SemanticEntry>>,
}

#[derive(Clone)]
struct Chunk {
    vectors: Box<[f32]>,
    sketches: Box<[u64]>,
    /// Expiry per slot in nanoseconds from the index's epoch ([`EMPTY`] when unused), packed
    /// apart from the slot records so the scan reads only sketches and deadlines.
    deadlines: Box<[i64]>,
    slots: Box<[Slot]>,
}

impl Chunk {
    fn with_slots(n: usize) -> Self {
        Self {
            vectors: vec![0.0; n * DIM].into_boxed_slice(),
            sketches: vec![0; n * SKETCH_WORDS].into_boxed_slice(),
            deadlines: vec![EMPTY; n].into_boxed_slice(),
            slots: vec![Slot::default(); n].into_boxed_slice(),
        }
    }

    fn live(&self, i: usize, now: i64) -> bool {
        self.deadlines.get(i).is_some_and(|d| *d > now)
    }

    fn live_count(&self, now: i64) -> usize {
        self.deadlines.iter().filter(|d| **d > now).count()
    }

    /// Stores `vector / norm` and its sign sketch in slot `i`.
    fn write(&mut self, i: usize, vector: &[f32], norm: f32) {
        if let Some(dst) = self.vectors.get_mut(i * DIM..(i + 1) * DIM) {
            for (d, s) in dst.iter_mut().zip(vector) {
                *d = s / norm;
            }
        }
        let sketch = sign_sketch(self.vector(i));
        if let Some(dst) = self
            .sketches
            .get_mut(i * SKETCH_WORDS..(i + 1) * SKETCH_WORDS)
        {
            dst.copy_from_slice(&sketch);
        }
    }

    fn vector(&self, i: usize) -> &[f32] {
        self.vectors.get(i * DIM..(i + 1) * DIM).unwrap_or(&[])
    }
}

type Snapshot = Vec<Arc<Chunk>>;

struct ScopeIndex {
    snapshot: ArcSwap<Snapshot>,
    /// Serializes inserts into this scope; readers never take it.
    writer: Mutex<u64>,
}

impl ScopeIndex {
    fn new() -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Vec::new()),
            writer: Mutex::new(0),
        }
    }

    fn any_live(&self, now: i64) -> bool {
        self.snapshot.load().iter().any(|c| c.live_count(now) > 0)
    }
}

/// The CPU semantic index: one per process, shared by every shard.
pub struct SemanticIndex {
    cfg: SemanticIndexConfig,
    scopes: papaya::HashMap<ScopeHash, Arc<ScopeIndex>>,
    /// Origin of the packed deadlines.
    epoch: Instant,
}

impl std::fmt::Debug for SemanticIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SemanticIndex")
            .field("cfg", &self.cfg)
            .field("scopes", &self.scopes.len())
            .finish()
    }
}

impl SemanticIndex {
    /// Makes an empty index.
    pub fn new(cfg: SemanticIndexConfig) -> Self {
        Self {
            cfg,
            scopes: papaya::HashMap::new(),
            epoch: Instant::now(),
        }
    }

    /// `t` in signed nanoseconds from the epoch (callers may pass instants before it).
    fn ticks(&self, t: Instant) -> i64 {
        match t.checked_duration_since(self.epoch) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => {
                i64::try_from(self.epoch.duration_since(t).as_nanos()).map_or(EMPTY + 1, |n| -n)
            }
        }
    }

    /// Number of scopes held (live or not yet reclaimed).
    pub fn scope_count(&self) -> usize {
        self.scopes.len()
    }

    /// Live entries of one scope at `now`.
    pub fn live_entries(&self, scope: &ScopeHash, now: Instant) -> usize {
        let Some(index) = self.scopes.pin().get(scope).cloned() else {
            return 0;
        };
        let now = self.ticks(now);
        index
            .snapshot
            .load()
            .iter()
            .map(|c| c.live_count(now))
            .sum()
    }

    /// The nearest live entry of `scope`, whatever its similarity.
    pub fn nearest(&self, scope: &ScopeHash, query: &[f32], now: Instant) -> Option<Candidate> {
        if query.len() != DIM {
            return None;
        }
        let index = self.scopes.pin().get(scope).cloned()?;
        let snapshot = index.snapshot.load();
        let now = self.ticks(now);
        let slots: usize = snapshot.iter().map(|c| c.slots.len()).sum();
        let (similarity, ci, si) = if slots <= EXACT_SCAN_LIMIT {
            exact_scan(&snapshot, query, now)?
        } else {
            sketch_scan(&snapshot, query, now)?
        };
        let entry = snapshot.get(ci)?.slots.get(si)?.entry.as_ref()?;
        Some(Candidate {
            similarity,
            entry: Arc::clone(entry),
        })
    }

    fn scope_for_insert(&self, scope: ScopeHash, now: i64) -> Result<Arc<ScopeIndex>, IndexError> {
        let scopes = self.scopes.pin();
        if let Some(index) = scopes.get(&scope) {
            return Ok(Arc::clone(index));
        }
        if scopes.len() >= self.cfg.max_scopes {
            // Make room from scopes whose entries have all expired (rare: insert path only).
            let dead: Vec<ScopeHash> = scopes
                .iter()
                .filter(|(_, idx)| !idx.any_live(now))
                .map(|(k, _)| *k)
                .collect();
            for k in dead {
                scopes.remove(&k);
            }
            if scopes.len() >= self.cfg.max_scopes {
                return Err(IndexError::TooManyScopes(self.cfg.max_scopes));
            }
        }
        Ok(Arc::clone(
            scopes.get_or_insert_with(scope, || Arc::new(ScopeIndex::new())),
        ))
    }
}

impl VectorIndex for SemanticIndex {
    fn search(&self, scope: &ScopeHash, query: &[f32], now: Instant) -> Option<Candidate> {
        self.nearest(scope, query, now)
            .filter(|c| c.similarity >= self.cfg.threshold)
    }

    fn insert(
        &self,
        scope: ScopeHash,
        vector: &[f32],
        entry: Arc<SemanticEntry>,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), IndexError> {
        self.insert_many(scope, [(vector, entry)], ttl, now)
    }
}

/// The L2 norm of each vector to insert, refusing a wrong dimension or a vector that can't be
/// normalized (all or nothing). Shared by the CPU and GPU indexes.
pub(crate) fn vector_norms(items: &[(&[f32], Arc<SemanticEntry>)]) -> Result<Vec<f32>, IndexError> {
    let mut norms = Vec::with_capacity(items.len());
    for (vector, _) in items {
        if vector.len() != DIM {
            return Err(IndexError::Dimension { got: vector.len() });
        }
        let norm = dot(vector, vector).sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return Err(IndexError::NotNormalizable);
        }
        norms.push(norm);
    }
    Ok(norms)
}

impl SemanticIndex {
    /// Inserts several entries into one scope and publishes them at once (each touched chunk
    /// is copied once): for warm-up, restore and benchmarks. All or nothing on bad vectors.
    pub fn insert_many<'v>(
        &self,
        scope: ScopeHash,
        items: impl IntoIterator<Item = (&'v [f32], Arc<SemanticEntry>)>,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), IndexError> {
        let items: Vec<(&[f32], Arc<SemanticEntry>)> = items.into_iter().collect();
        let norms = vector_norms(&items)?;
        let deadline = self.ticks(now.checked_add(ttl).unwrap_or(now));
        let now = self.ticks(now);
        let index = self.scope_for_insert(scope, now)?;
        let mut seq = index
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Chunks shared with the published snapshot are copied on first write only.
        let mut chunks: Snapshot = (*index.snapshot.load_full()).clone();
        let mut hint = 0;
        for ((vector, entry), norm) in items.into_iter().zip(norms) {
            *seq += 1;
            let (chunk_at, slot_at, flat) =
                pick_slot(&chunks, self.cfg.max_entries_per_scope, now, hint);
            hint = flat + 1;
            if chunk_at == chunks.len() {
                let size = (FIRST_CHUNK_SLOTS << chunk_at.min(16)).min(MAX_CHUNK_SLOTS);
                chunks.push(Arc::new(Chunk::with_slots(size)));
            }
            let Some(shared) = chunks.get_mut(chunk_at) else {
                continue;
            };
            let chunk = Arc::make_mut(shared);
            chunk.write(slot_at, vector, norm);
            if let Some(d) = chunk.deadlines.get_mut(slot_at) {
                *d = deadline;
            }
            if let Some(slot) = chunk.slots.get_mut(slot_at) {
                *slot = Slot {
                    seq: *seq,
                    entry: Some(entry),
                };
            }
        }
        index.snapshot.store(Arc::new(chunks));
        Ok(())
    }
}

impl SemanticIndex {
    /// Frees what expired entries still hold (their responses) and drops scopes left empty;
    /// returns how many entries were freed. For a periodic maintenance task, off the request
    /// path: it takes each scope's writer lock in turn.
    pub fn purge_expired(&self, now: Instant) -> usize {
        let now = self.ticks(now);
        let scopes = self.scopes.pin();
        let mut freed = 0;
        let mut empty = Vec::new();
        for (key, index) in scopes.iter() {
            let _writer = index
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut chunks: Snapshot = (*index.snapshot.load_full()).clone();
            let mut changed = false;
            for shared in chunks.iter_mut() {
                let stale = |c: &Chunk| {
                    c.deadlines
                        .iter()
                        .zip(c.slots.iter())
                        .any(|(d, s)| *d != EMPTY && *d <= now && s.entry.is_some())
                };
                if !stale(shared) {
                    continue;
                }
                let chunk = Arc::make_mut(shared);
                for (d, slot) in chunk.deadlines.iter_mut().zip(chunk.slots.iter_mut()) {
                    if *d != EMPTY && *d <= now {
                        *d = EMPTY;
                        if slot.entry.take().is_some() {
                            freed += 1;
                        }
                    }
                }
                changed = true;
            }
            if chunks.iter().all(|c| c.live_count(now) == 0) {
                empty.push(*key);
            }
            if changed {
                index.snapshot.store(Arc::new(chunks));
            }
        }
        for key in empty {
            scopes.remove(&key);
        }
        freed
    }
}

/// Where the next entry goes: a free or expired slot (searched from flat position `hint`
/// first), else a new chunk, else the oldest entry. Returns (chunk, slot, flat position).
fn pick_slot(chunks: &Snapshot, capacity: usize, now: i64, hint: usize) -> (usize, usize, usize) {
    let mut flat = 0;
    for (ci, chunk) in chunks.iter().enumerate() {
        let len = chunk.slots.len();
        if flat + len > hint {
            for si in hint.saturating_sub(flat)..len {
                if flat + si >= capacity {
                    break;
                }
                if !chunk.live(si, now) {
                    return (ci, si, flat + si);
                }
            }
        }
        flat += len;
    }
    if flat < capacity {
        return (chunks.len(), 0, flat);
    }
    // Full: a free slot before the hint, else the oldest entry.
    let mut oldest = (0, 0, 0, u64::MAX);
    let mut flat = 0;
    for (ci, chunk) in chunks.iter().enumerate() {
        for (si, slot) in chunk.slots.iter().enumerate() {
            if flat >= capacity {
                return (oldest.0, oldest.1, oldest.2);
            }
            if !chunk.live(si, now) {
                return (ci, si, flat);
            }
            if slot.seq < oldest.3 {
                oldest = (ci, si, flat, slot.seq);
            }
            flat += 1;
        }
    }
    (oldest.0, oldest.1, oldest.2)
}

/// (similarity, chunk, slot) of the best live entry, by exact dot products.
fn exact_scan(snapshot: &Snapshot, query: &[f32], now: i64) -> Option<(f32, usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this function was compiled for.
            return unsafe { exact_scan_avx2(snapshot, query, now) };
        }
    }
    exact_scan_impl(snapshot, query, now)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exact_scan_avx2(
    snapshot: &Snapshot,
    query: &[f32],
    now: i64,
) -> Option<(f32, usize, usize)> {
    exact_scan_impl(snapshot, query, now)
}

#[inline(always)]
fn exact_scan_impl(snapshot: &Snapshot, query: &[f32], now: i64) -> Option<(f32, usize, usize)> {
    let mut best: Option<(f32, usize, usize)> = None;
    for (ci, chunk) in snapshot.iter().enumerate() {
        for (si, deadline) in chunk.deadlines.iter().enumerate() {
            if *deadline <= now {
                continue;
            }
            let sim = dot_portable(chunk.vector(si), query);
            if best.is_none_or(|(b, _, _)| sim > b) {
                best = Some((sim, ci, si));
            }
        }
    }
    best
}

/// (similarity, chunk, slot) of the best of the [`RERANK`] sketch-nearest live entries.
fn sketch_scan(snapshot: &Snapshot, query: &[f32], now: i64) -> Option<(f32, usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU supports the features this function was compiled for.
            return unsafe { sketch_scan_avx2(snapshot, query, now) };
        }
    }
    sketch_scan_impl(snapshot, query, now)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn sketch_scan_avx2(
    snapshot: &Snapshot,
    query: &[f32],
    now: i64,
) -> Option<(f32, usize, usize)> {
    sketch_scan_impl(snapshot, query, now)
}

#[inline(always)]
fn sketch_scan_impl(snapshot: &Snapshot, query: &[f32], now: i64) -> Option<(f32, usize, usize)> {
    let q = sign_sketch(query);
    // Max-heap of (distance, chunk, slot): the worst of the kept RERANK is on top.
    let mut heap: BinaryHeap<(u32, u32, u32)> = BinaryHeap::with_capacity(RERANK + 1);
    let mut worst = u32::MAX;
    let mut distances = [0u32; MAX_CHUNK_SLOTS];
    for (ci, chunk) in snapshot.iter().enumerate() {
        // Two passes per chunk: a branch-free distance loop the compiler can pipeline, then
        // a filter that rarely does anything once the heap is full.
        let sketches = chunk.sketches.chunks_exact(SKETCH_WORDS);
        for (d, s) in distances.iter_mut().zip(sketches) {
            *d = hamming(&q, s);
        }
        for (si, (d, deadline)) in distances.iter().zip(chunk.deadlines.iter()).enumerate() {
            if *d >= worst || *deadline <= now {
                continue;
            }
            heap.push((*d, ci as u32, si as u32));
            if heap.len() > RERANK {
                heap.pop();
            }
            if heap.len() == RERANK {
                worst = heap.peek().map_or(u32::MAX, |t| t.0);
            }
        }
    }
    let mut best: Option<(f32, usize, usize)> = None;
    for (_, ci, si) in heap {
        let (ci, si) = (ci as usize, si as usize);
        let Some(chunk) = snapshot.get(ci) else {
            continue;
        };
        let sim = dot_portable(chunk.vector(si), query);
        if best.is_none_or(|(b, _, _)| sim > b) {
            best = Some((sim, ci, si));
        }
    }
    best
}

fn sign_sketch(v: &[f32]) -> [u64; SKETCH_WORDS] {
    let mut out = [0u64; SKETCH_WORDS];
    for (word, part) in out.iter_mut().zip(v.chunks_exact(64)) {
        for (bit, x) in part.iter().enumerate() {
            if *x > 0.0 {
                *word |= 1 << bit;
            }
        }
    }
    out
}

#[inline(always)]
fn hamming(a: &[u64; SKETCH_WORDS], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Dot product of two equal-length slices, vectorized; picks AVX2+FMA at run time.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features this function was compiled for.
            return unsafe { dot_avx2_fma(a, b) };
        }
    }
    dot_portable(a, b)
}

/// The baseline dot product: 8 independent accumulators let LLVM keep them in vector lanes.
#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc = x.mul_add(*y, *acc);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn unit(seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let v: Vec<f32> = (0..DIM).map(|_| rng.f32() * 2.0 - 1.0).collect();
        let n = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    /// A unit vector at cosine ~`cos` from `base`.
    fn near(base: &[f32], cos: f32, seed: u64) -> Vec<f32> {
        let r = unit(seed);
        let along = dot(&r, base);
        let mut ortho: Vec<f32> = r.iter().zip(base).map(|(x, b)| x - along * b).collect();
        let n = dot(&ortho, &ortho).sqrt();
        ortho.iter_mut().for_each(|x| *x /= n);
        let s = (1.0 - cos * cos).sqrt();
        base.iter()
            .zip(&ortho)
            .map(|(b, o)| cos * b + s * o)
            .collect()
    }

    fn entry(p: &str) -> Arc<SemanticEntry> {
        Arc::new(SemanticEntry {
            prompt: p.into(),
            truncated: false,
            response: Arc::new(CachedResponse {
                status: 200,
                content_type: "application/json".into(),
                body: Bytes::from_static(b"{}"),
            }),
        })
    }

    fn index(per_scope: usize) -> SemanticIndex {
        SemanticIndex::new(SemanticIndexConfig {
            max_entries_per_scope: per_scope,
            max_scopes: 4,
            threshold: 0.8,
        })
    }

    const S: ScopeHash = ScopeHash([1; 16]);
    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn dot_matches_naive() {
        let a = unit(1);
        let b = unit(2);
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-5);
        assert!((dot_portable(&a, &b) - naive).abs() < 1e-5);
        assert!(
            (dot(&a[..13], &b[..13])
                - a[..13]
                    .iter()
                    .zip(&b[..13])
                    .map(|(x, y)| x * y)
                    .sum::<f32>())
            .abs()
                < 1e-5
        );
    }

    #[test]
    fn finds_nearest_above_threshold_in_its_scope_only() {
        let idx = index(100);
        let now = Instant::now();
        let base = unit(10);
        idx.insert(S, &base, entry("base"), TTL, now).unwrap();
        for s in 0..20 {
            idx.insert(S, &unit(100 + s), entry("other"), TTL, now)
                .unwrap();
        }
        let q = near(&base, 0.9, 7);
        let hit = idx.search(&S, &q, now).unwrap();
        assert_eq!(hit.entry.prompt, "base");
        assert!((hit.similarity - 0.9).abs() < 1e-3);
        assert!(idx.search(&ScopeHash([2; 16]), &q, now).is_none());
        let far = near(&base, 0.5, 8);
        assert!(idx.search(&S, &far, now).is_none());
        assert!(idx.nearest(&S, &far, now).is_some());
    }

    #[test]
    fn ttl_expires_and_slots_are_reused() {
        let idx = index(4);
        let now = Instant::now();
        let v = unit(1);
        idx.insert(S, &v, entry("old"), Duration::from_secs(1), now)
            .unwrap();
        let later = now + Duration::from_secs(2);
        assert!(idx.search(&S, &v, later).is_none());
        idx.insert(S, &v, entry("new"), TTL, later).unwrap();
        assert_eq!(idx.search(&S, &v, later).unwrap().entry.prompt, "new");
        assert_eq!(idx.live_entries(&S, later), 1);
        // Reused the expired slot: still one chunk with a single used slot.
        let snap = idx.scopes.pin().get(&S).unwrap().snapshot.load_full();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].deadlines.iter().filter(|d| **d != EMPTY).count(), 1);
    }

    #[test]
    fn purge_frees_expired_entries_and_empty_scopes() {
        let idx = index(8);
        let now = Instant::now();
        let other = ScopeHash([3; 16]);
        idx.insert(S, &unit(1), entry("short"), Duration::from_secs(1), now)
            .unwrap();
        idx.insert(S, &unit(2), entry("long"), TTL, now).unwrap();
        idx.insert(other, &unit(3), entry("short"), Duration::from_secs(1), now)
            .unwrap();
        let later = now + Duration::from_secs(2);
        assert_eq!(idx.purge_expired(later), 2);
        assert_eq!(idx.scope_count(), 1);
        assert_eq!(idx.live_entries(&S, later), 1);
        assert_eq!(
            idx.search(&S, &unit(2), later).unwrap().entry.prompt,
            "long"
        );
        assert_eq!(idx.purge_expired(later), 0);
    }

    #[test]
    fn capacity_replaces_oldest() {
        let idx = index(3);
        let now = Instant::now();
        let vs: Vec<_> = (0..4).map(|i| unit(50 + i)).collect();
        for (i, v) in vs.iter().enumerate() {
            idx.insert(S, v, entry(&format!("e{i}")), TTL, now).unwrap();
        }
        assert_eq!(idx.live_entries(&S, now), 3);
        assert!(idx
            .search(&S, &vs[0], now)
            .is_none_or(|c| c.entry.prompt != "e0"));
        assert_eq!(idx.search(&S, &vs[3], now).unwrap().entry.prompt, "e3");
    }

    #[test]
    fn scope_cap_reclaims_dead_scopes() {
        let idx = index(4);
        let now = Instant::now();
        let v = unit(3);
        for s in 0..4u8 {
            idx.insert(
                ScopeHash([s; 16]),
                &v,
                entry("x"),
                Duration::from_secs(1),
                now,
            )
            .unwrap();
        }
        assert_eq!(
            idx.insert(ScopeHash([9; 16]), &v, entry("x"), TTL, now),
            Err(IndexError::TooManyScopes(4))
        );
        let later = now + Duration::from_secs(2);
        idx.insert(ScopeHash([9; 16]), &v, entry("x"), TTL, later)
            .unwrap();
        assert_eq!(idx.scope_count(), 1);
    }

    #[test]
    fn rejects_bad_vectors() {
        let idx = index(4);
        let now = Instant::now();
        assert_eq!(
            idx.insert(S, &[1.0; 3], entry("x"), TTL, now),
            Err(IndexError::Dimension { got: 3 })
        );
        assert_eq!(
            idx.insert(S, &[0.0; DIM], entry("x"), TTL, now),
            Err(IndexError::NotNormalizable)
        );
    }

    #[test]
    fn sketch_prefilter_finds_near_duplicates_in_large_scope() {
        let idx = index(10_000);
        let now = Instant::now();
        let n = EXACT_SCAN_LIMIT + 1000;
        let targets: Vec<_> = (0..20).map(|i| unit(900_000 + i)).collect();
        let vectors: Vec<Vec<f32>> = (0..n as u64)
            .map(|i| match targets.get(i as usize) {
                Some(t) => t.clone(),
                None => unit(i + 1_000),
            })
            .collect();
        let items = vectors.iter().enumerate().map(|(i, v)| {
            let p = if i < targets.len() {
                format!("t{i}")
            } else {
                "noise".into()
            };
            (v.as_slice(), entry(&p))
        });
        idx.insert_many(S, items, TTL, now).unwrap();
        assert_eq!(idx.live_entries(&S, now), n);
        for (i, t) in targets.iter().enumerate() {
            let q = near(t, 0.82, 77 + i as u64);
            let hit = idx.search(&S, &q, now).expect("near duplicate found");
            assert_eq!(hit.entry.prompt, format!("t{i}"));
        }
    }

    #[test]
    fn concurrent_readers_and_writer() {
        let idx = Arc::new(index(1000));
        let now = Instant::now();
        let base = unit(5);
        idx.insert(S, &base, entry("base"), TTL, now).unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let idx = Arc::clone(&idx);
                let base = base.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        assert_eq!(idx.search(&S, &base, now).unwrap().entry.prompt, "base");
                    }
                })
            })
            .collect();
        for i in 0..200 {
            idx.insert(S, &unit(10_000 + i), entry("noise"), TTL, now)
                .unwrap();
        }
        for r in readers {
            r.join().unwrap();
        }
    }
}
