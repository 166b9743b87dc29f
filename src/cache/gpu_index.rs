//! [`GpuVectorIndex`]: the semantic index with its vectors in GPU memory.
//!
//! Per scope, the vectors sit in one device buffer (`[capacity, 384]`, grown by doubling) with
//! a device array of deadlines, mirrored on the host. A query batch is one cuBLAS GEMM against
//! the scope's vectors and a two-stage exact top-[`SHORTLIST`] kernel (`kernels/index.cu`)
//! that skips dead slots. The shortlist is then re-scored on the host in fp32 against the host
//! copy with the same arithmetic as [`SemanticIndex`](super::SemanticIndex)'s exact scan, so
//! the GPU and CPU indexes return the same entry, the same similarity and the same hit/miss
//! decision (the GEMM only chooses which few candidates get re-scored; with TF32 or fp16
//! GEMMs the shortlist is coarser, the final score is still exact).
//!
//! Expired and purged entries just mark their slot dead (deadline in the past); inserts reuse
//! dead slots first, then append, then replace the oldest entry when the scope is full.
//!
//! All device work runs on the one stream of the index's own [`CudaDevice`], behind a mutex:
//! the index is meant to be searched from the embedder thread, next to the forward pass. Built
//! without a device ([`GpuVectorIndex::host_only`]), the shortlist comes from a host scan
//! instead: that is the CPU twin the tests run everywhere, and every other line is shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::key::ScopeHash;
use super::semantic::{
    Candidate, IndexError, SemanticEntry, SemanticIndexConfig, VectorIndex, DIM,
};
use crate::embed::cuda::device::KernelArg;
use crate::embed::cuda::kernels::INDEX;
use crate::embed::cuda::{CudaDevice, CudaError, Gemm, Transpose};
use crate::embed::Precision;

/// Candidates per query the GPU hands to the exact host re-score (`TOPK` in `index.cu`).
pub const SHORTLIST: usize = 8;
/// Slots one block of `topk_partial` scans.
const PART_LEN: usize = 8192;
/// Threads per block of the top-k kernels (`BLOCK` in `index.cu`).
const TOPK_THREADS: u32 = 256;
/// Deadline of an empty slot.
const EMPTY: i64 = i64::MIN;

/// One scope: host copy plus (with a device) its mirror.
#[derive(Default)]
struct Scope {
    /// `len * DIM` unit vectors.
    vectors: Vec<f32>,
    /// Expiry per slot (ns from the index epoch), [`EMPTY`] when free.
    deadlines: Vec<i64>,
    /// Insertion order per slot (to replace the oldest).
    seqs: Vec<u64>,
    entries: Vec<Option<Arc<SemanticEntry>>>,
    /// Where the next insert starts looking for a dead slot.
    cursor: usize,
    device: Option<DeviceScope>,
}

struct DeviceScope {
    vectors: CudaSlice<f32>,
    deadlines: CudaSlice<i64>,
    capacity: usize,
}

impl Scope {
    fn len(&self) -> usize {
        self.deadlines.len()
    }

    fn any_live(&self, now: i64) -> bool {
        self.deadlines.iter().any(|d| *d > now)
    }

    /// The slot for the next entry: a dead one from the cursor on, else a new one, else (full)
    /// a dead one before the cursor, else the oldest.
    fn pick_slot(&mut self, capacity: usize, now: i64) -> usize {
        let len = self.len();
        let dead = |d: &i64| *d <= now;
        if let Some(i) = self.deadlines.iter().skip(self.cursor).position(dead) {
            return self.cursor + i;
        }
        if len < capacity {
            self.vectors.resize((len + 1) * DIM, 0.0);
            self.deadlines.push(EMPTY);
            self.seqs.push(0);
            self.entries.push(None);
            return len;
        }
        if let Some(i) = self.deadlines.iter().take(self.cursor).position(dead) {
            return i;
        }
        // The first slot with the lowest sequence number.
        self.seqs
            .iter()
            .take(len)
            .enumerate()
            .min_by_key(|&(_, seq)| *seq)
            .map_or(0, |(i, _)| i)
    }

    fn vector(&self, i: usize) -> &[f32] {
        self.vectors.get(i * DIM..(i + 1) * DIM).unwrap_or(&[])
    }
}

/// Device state shared by every scope: the device and the scratch of a search.
struct DeviceSide {
    dev: CudaDevice,
    queries: Option<CudaSlice<f32>>,
    queries_len: usize,
    scores: Option<CudaSlice<f32>>,
    scores_len: usize,
    part_vals: Option<CudaSlice<f32>>,
    part_idx: Option<CudaSlice<i32>>,
    part_vals_len: usize,
    part_idx_len: usize,
    top_vals: Option<CudaSlice<f32>>,
    top_idx: Option<CudaSlice<i32>>,
    top_vals_len: usize,
    top_idx_len: usize,
}

struct Inner {
    device: Option<DeviceSide>,
    scopes: HashMap<ScopeHash, Scope>,
    seq: u64,
}

/// The semantic index on a CUDA device (or, built with [`GpuVectorIndex::host_only`], its CPU
/// twin): same [`VectorIndex`] contract and same decisions as [`super::SemanticIndex`].
pub struct GpuVectorIndex {
    cfg: SemanticIndexConfig,
    epoch: Instant,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for GpuVectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuVectorIndex")
            .field("cfg", &self.cfg)
            .field("gpu", &self.is_gpu())
            .finish()
    }
}

impl GpuVectorIndex {
    /// Opens device 0 (probing first: an error, never a panic, without CUDA) and compiles the
    /// top-k kernels. `precision` is the GEMM's; the final scores are exact fp32 anyway.
    pub fn open(cfg: SemanticIndexConfig, precision: Precision) -> Result<Self, CudaError> {
        let dev = CudaDevice::open(precision, &[INDEX])?;
        Ok(Self::with_device(
            cfg,
            Some(DeviceSide {
                dev,
                queries: None,
                queries_len: 0,
                scores: None,
                scores_len: 0,
                part_vals: None,
                part_idx: None,
                part_vals_len: 0,
                part_idx_len: 0,
                top_vals: None,
                top_idx: None,
                top_vals_len: 0,
                top_idx_len: 0,
            }),
        ))
    }

    /// The same index with the shortlist computed by a host scan: the CPU twin of the GPU path
    /// (tests) and a fallback with no device.
    pub fn host_only(cfg: SemanticIndexConfig) -> Self {
        Self::with_device(cfg, None)
    }

    fn with_device(cfg: SemanticIndexConfig, device: Option<DeviceSide>) -> Self {
        Self {
            cfg,
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                device,
                scopes: HashMap::new(),
                seq: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether searches run on a GPU.
    pub fn is_gpu(&self) -> bool {
        self.lock().device.is_some()
    }

    /// `t` in signed nanoseconds from the epoch (as `SemanticIndex` counts).
    fn ticks(&self, t: Instant) -> i64 {
        match t.checked_duration_since(self.epoch) {
            Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            None => {
                i64::try_from(self.epoch.duration_since(t).as_nanos()).map_or(EMPTY + 1, |n| -n)
            }
        }
    }

    /// Live entries of `scope` at `now`.
    pub fn live_entries(&self, scope: &ScopeHash, now: Instant) -> usize {
        let now = self.ticks(now);
        self.lock()
            .scopes
            .get(scope)
            .map_or(0, |s| s.deadlines.iter().filter(|d| **d > now).count())
    }

    /// The nearest live entry of `scope` for each of `queries` (`n * DIM` floats), whatever
    /// its similarity. One GEMM and one top-k pass for the whole batch on a GPU.
    pub fn nearest_batch(
        &self,
        scope: &ScopeHash,
        queries: &[f32],
        now: Instant,
    ) -> Result<Vec<Option<Candidate>>, CudaError> {
        if queries.len() % DIM != 0 {
            return Err(CudaError::Shape(format!(
                "{} query floats is not a multiple of {DIM}",
                queries.len()
            )));
        }
        let n = queries.len() / DIM;
        let now = self.ticks(now);
        let mut inner = self.lock();
        let Inner { device, scopes, .. } = &mut *inner;
        let Some(sc) = scopes.get(scope) else {
            return Ok(vec![None; n]);
        };
        if sc.len() == 0 || n == 0 {
            return Ok(vec![None; n]);
        }
        let shortlists = match device {
            Some(side) => device_shortlist(side, sc, queries, n, now)?,
            None => host_shortlist(sc, queries, n, now),
        };
        Ok(queries
            .chunks_exact(DIM)
            .zip(shortlists)
            .map(|(q, list)| rescore(sc, q, &list, now))
            .collect())
    }

    /// [`VectorIndex::search`] for a batch: the nearest entry per query above the threshold.
    pub fn search_batch(
        &self,
        scope: &ScopeHash,
        queries: &[f32],
        now: Instant,
    ) -> Result<Vec<Option<Candidate>>, CudaError> {
        Ok(self
            .nearest_batch(scope, queries, now)?
            .into_iter()
            .map(|c| c.filter(|c| c.similarity >= self.cfg.threshold))
            .collect())
    }

    /// Inserts several entries into one scope (one upload per scope). All or nothing on bad
    /// vectors.
    pub fn insert_many<'v>(
        &self,
        scope: ScopeHash,
        items: impl IntoIterator<Item = (&'v [f32], Arc<SemanticEntry>)>,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), IndexError> {
        let items: Vec<(&[f32], Arc<SemanticEntry>)> = items.into_iter().collect();
        let norms = super::semantic::vector_norms(&items)?;
        let deadline = self.ticks(now.checked_add(ttl).unwrap_or(now));
        let now = self.ticks(now);
        let mut inner = self.lock();
        let Inner {
            device,
            scopes,
            seq,
        } = &mut *inner;
        if !scopes.contains_key(&scope) && scopes.len() >= self.cfg.max_scopes {
            scopes.retain(|_, s| s.any_live(now));
            if scopes.len() >= self.cfg.max_scopes {
                return Err(IndexError::TooManyScopes(self.cfg.max_scopes));
            }
        }
        let sc = scopes.entry(scope).or_default();
        let mut touched = Vec::with_capacity(items.len());
        for ((vector, entry), norm) in items.into_iter().zip(norms) {
            *seq += 1;
            let i = sc.pick_slot(self.cfg.max_entries_per_scope.max(1), now);
            if let Some(dst) = sc.vectors.get_mut(i * DIM..(i + 1) * DIM) {
                for (d, s) in dst.iter_mut().zip(vector) {
                    *d = s / norm;
                }
            }
            // `pick_slot` returns an existing slot or the one it just pushed.
            if let (Some(d), Some(s), Some(e)) = (
                sc.deadlines.get_mut(i),
                sc.seqs.get_mut(i),
                sc.entries.get_mut(i),
            ) {
                *d = deadline;
                *s = *seq;
                *e = Some(entry);
            }
            sc.cursor = i + 1;
            touched.push(i);
        }
        if let Some(side) = device {
            // A failed upload leaves the device copy stale: drop it, the next search rebuilds.
            if sync_rows(&side.dev, sc, &touched).is_err() {
                sc.device = None;
            }
        }
        Ok(())
    }

    /// Marks expired slots free and drops what they hold; drops scopes left empty. Returns how
    /// many entries were freed. Periodic maintenance, off the request path.
    pub fn purge_expired(&self, now: Instant) -> usize {
        let now = self.ticks(now);
        let mut inner = self.lock();
        let Inner { device, scopes, .. } = &mut *inner;
        let mut freed = 0;
        for sc in scopes.values_mut() {
            let mut touched = Vec::new();
            for (i, (deadline, entry)) in sc.deadlines.iter_mut().zip(&mut sc.entries).enumerate() {
                if *deadline != EMPTY && *deadline <= now {
                    *deadline = EMPTY;
                    if entry.take().is_some() {
                        freed += 1;
                    }
                    touched.push(i);
                }
            }
            if let Some(side) = device.as_ref() {
                if !touched.is_empty() && sync_rows(&side.dev, sc, &touched).is_err() {
                    sc.device = None;
                }
            }
        }
        scopes.retain(|_, s| s.any_live(now));
        freed
    }
}

impl VectorIndex for GpuVectorIndex {
    fn search(&self, scope: &ScopeHash, query: &[f32], now: Instant) -> Option<Candidate> {
        if query.len() != DIM {
            return None;
        }
        match self.search_batch(scope, query, now) {
            Ok(mut v) => v.pop().flatten(),
            Err(e) => {
                tracing::warn!(error = %e, "gpu index search failed; answering miss");
                None
            }
        }
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

/// The dot product of `SemanticIndex`'s exact scan (8 accumulators, no FMA), so both indexes
/// compute bit-identical similarities.
fn exact_dot(a: &[f32], b: &[f32]) -> f32 {
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

/// Exact fp32 re-score of a shortlist on the host: the best live slot.
fn rescore(sc: &Scope, query: &[f32], list: &[usize], now: i64) -> Option<Candidate> {
    let mut best: Option<(f32, usize)> = None;
    for &i in list {
        if sc.deadlines.get(i).is_none_or(|d| *d <= now) {
            continue;
        }
        let sim = exact_dot(sc.vector(i), query);
        if best.is_none_or(|(b, bi)| sim > b || (sim == b && i < bi)) {
            best = Some((sim, i));
        }
    }
    let (similarity, i) = best?;
    let entry = sc.entries.get(i)?.as_ref()?;
    Some(Candidate {
        similarity,
        entry: Arc::clone(entry),
    })
}

/// Top-[`SHORTLIST`] live slots per query by a host scan (the CPU twin of the GPU kernels).
fn host_shortlist(sc: &Scope, queries: &[f32], n: usize, now: i64) -> Vec<Vec<usize>> {
    queries
        .chunks_exact(DIM)
        .take(n)
        .map(|q| {
            let mut top: Vec<(f32, usize)> = Vec::with_capacity(SHORTLIST + 1);
            for (i, &deadline) in sc.deadlines.iter().enumerate() {
                if deadline <= now {
                    continue;
                }
                let s = exact_dot(sc.vector(i), q);
                if top.len() < SHORTLIST || top.last().is_some_and(|(v, _)| s > *v) {
                    let at = top.partition_point(|(v, _)| *v >= s);
                    top.insert(at, (s, i));
                    top.truncate(SHORTLIST);
                }
            }
            top.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

/// Makes the device copy of `sc` current for rows `touched` (or rebuilds it when it must grow).
fn sync_rows(dev: &CudaDevice, sc: &mut Scope, touched: &[usize]) -> Result<(), CudaError> {
    dev.bind()?;
    let len = sc.len();
    let fits = sc.device.as_ref().is_some_and(|d| d.capacity >= len);
    if !fits {
        let capacity = len
            .max(1024)
            .max(sc.device.as_ref().map_or(0, |d| d.capacity * 2));
        let mut vectors = dev.zeros::<f32>(capacity * DIM)?;
        let mut deadlines = dev.zeros::<i64>(capacity)?;
        dev.upload_at(&sc.vectors, &mut vectors, 0)?;
        dev.upload_at(&sc.deadlines, &mut deadlines, 0)?;
        sc.device = Some(DeviceScope {
            vectors,
            deadlines,
            capacity,
        });
        return Ok(());
    }
    let Some(ds) = sc.device.as_mut() else {
        return Ok(());
    };
    // Upload the smallest range covering the touched rows (one copy for a bulk insert).
    let (Some(&lo), Some(&hi)) = (touched.iter().min(), touched.iter().max()) else {
        return Ok(());
    };
    let (Some(vectors), Some(deadlines)) = (
        sc.vectors.get(lo * DIM..(hi + 1) * DIM),
        sc.deadlines.get(lo..=hi),
    ) else {
        return Err(CudaError::Shape(format!(
            "rows {lo}..={hi} outside the scope's {} slots",
            sc.len()
        )));
    };
    dev.upload_at(vectors, &mut ds.vectors, lo * DIM)?;
    dev.upload_at(deadlines, &mut ds.deadlines, lo)?;
    Ok(())
}

fn grow<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    dev: &CudaDevice,
    buf: &mut Option<CudaSlice<T>>,
    have: &mut usize,
    need: usize,
) -> Result<u64, CudaError> {
    if buf.is_none() || *have < need {
        *buf = Some(dev.zeros(need)?);
        *have = need;
    }
    buf.as_ref()
        .map(|b| dev.ptr(b))
        .ok_or_else(|| CudaError::Shape("scratch not allocated".into()))
}

/// GEMM of the queries against the scope's vectors, then the two top-k kernels; returns the
/// shortlist of each query.
fn device_shortlist(
    side: &mut DeviceSide,
    sc: &Scope,
    queries: &[f32],
    n: usize,
    now: i64,
) -> Result<Vec<Vec<usize>>, CudaError> {
    let dev = &side.dev;
    dev.bind()?;
    let Some(ds) = sc.device.as_ref() else {
        return Err(CudaError::Shape(
            "scope has no device copy (a failed upload); re-insert to rebuild".into(),
        ));
    };
    let len = sc.len();
    let parts = len.div_ceil(PART_LEN).max(1);
    let q_ptr = grow(dev, &mut side.queries, &mut side.queries_len, n * DIM)?;
    if let Some(buf) = side.queries.as_mut() {
        dev.upload_at(queries, buf, 0)?;
    }
    let s_ptr = grow(dev, &mut side.scores, &mut side.scores_len, n * len)?;
    let listed = n * parts * SHORTLIST;
    let pv = grow(dev, &mut side.part_vals, &mut side.part_vals_len, listed)?;
    let pi = grow(dev, &mut side.part_idx, &mut side.part_idx_len, listed)?;
    let tv = grow(
        dev,
        &mut side.top_vals,
        &mut side.top_vals_len,
        n * SHORTLIST,
    )?;
    let ti = grow(dev, &mut side.top_idx, &mut side.top_idx_len, n * SHORTLIST)?;
    let shape = |v: usize, what: &str| {
        u32::try_from(v).map_err(|_| CudaError::Shape(format!("{what} = {v}")))
    };
    // scores (row-major [n, len]) = Q V^T, as column-major [len, n] = V' Q with V row-major
    // [len, DIM] read transposed.
    let g = Gemm::single(Transpose::Yes, Transpose::No, len, n, DIM, DIM, DIM, len);
    use KernelArg::{Ptr, I32, I64};
    // SAFETY: the vectors hold capacity >= len rows, the queries n rows, the scores n * len
    // floats, the partial lists n * parts * SHORTLIST, the final lists n * SHORTLIST; the
    // argument lists follow kernels/index.cu.
    unsafe {
        dev.gemm(&g, dev.ptr(&ds.vectors), q_ptr, s_ptr)?;
        dev.launch(
            "topk_partial",
            LaunchConfig {
                grid_dim: (shape(parts, "parts")?, shape(n, "queries")?, 1),
                block_dim: (TOPK_THREADS, 1, 1),
                shared_mem_bytes: 0,
            },
            &[
                Ptr(s_ptr),
                I64(len as i64),
                I64(len as i64),
                Ptr(dev.ptr(&ds.deadlines)),
                I64(now),
                I64(PART_LEN as i64),
                Ptr(pv),
                Ptr(pi),
            ],
        )?;
        dev.launch(
            "topk_merge",
            LaunchConfig {
                grid_dim: (shape(n, "queries")?, 1, 1),
                block_dim: (TOPK_THREADS, 1, 1),
                shared_mem_bytes: 0,
            },
            &[
                Ptr(pv),
                Ptr(pi),
                I32(i32::try_from(parts).map_err(|_| CudaError::Shape(format!("{parts}")))?),
                Ptr(tv),
                Ptr(ti),
            ],
        )?;
    }
    let idx = match side.top_idx.as_ref() {
        Some(buf) => dev.download(buf, n * SHORTLIST)?,
        None => return Err(CudaError::Shape("scratch not allocated".into())),
    };
    Ok(idx
        .chunks_exact(SHORTLIST)
        .map(|c| {
            c.iter()
                .filter_map(|&i| usize::try_from(i).ok())
                .filter(|&i| i < len)
                .collect()
        })
        .collect())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
mod tests {
    use super::super::exact::CachedResponse;
    use super::super::semantic::dot;
    use super::super::SemanticIndex;
    use super::*;
    use bytes::Bytes;

    fn unit(seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let v: Vec<f32> = (0..DIM).map(|_| rng.f32() * 2.0 - 1.0).collect();
        let n = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / n).collect()
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

    fn cfg(per_scope: usize) -> SemanticIndexConfig {
        SemanticIndexConfig {
            max_entries_per_scope: per_scope,
            max_scopes: 4,
            threshold: 0.8,
        }
    }

    const S: ScopeHash = ScopeHash([1; 16]);
    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn host_twin_agrees_with_semantic_index_exactly() {
        let now = Instant::now();
        let gpu = GpuVectorIndex::host_only(cfg(1000));
        let cpu = SemanticIndex::new(cfg(1000));
        for i in 0..300u64 {
            let v = unit(i);
            let e = entry(&format!("p{i}"));
            gpu.insert(S, &v, Arc::clone(&e), TTL, now).unwrap();
            cpu.insert(S, &v, e, TTL, now).unwrap();
        }
        for i in 0..300u64 {
            // Queries near stored vectors and random ones.
            let q = if i % 2 == 0 {
                unit(i)
            } else {
                unit(10_000 + i)
            };
            let a = gpu.nearest_batch(&S, &q, now).unwrap().pop().flatten();
            let b = cpu.nearest(&S, &q, now);
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.similarity.to_bits(), b.similarity.to_bits());
            assert_eq!(a.entry.prompt, b.entry.prompt);
            assert_eq!(
                gpu.search(&S, &q, now).is_some(),
                cpu.search(&S, &q, now).is_some()
            );
        }
    }

    #[test]
    fn ttl_purge_and_slot_reuse() {
        let now = Instant::now();
        let idx = GpuVectorIndex::host_only(cfg(2));
        let a = unit(1);
        idx.insert(S, &a, entry("a"), Duration::from_secs(1), now)
            .unwrap();
        assert!(idx.search(&S, &a, now).is_some());
        let later = now + Duration::from_secs(2);
        assert!(idx.search(&S, &a, later).is_none());
        assert_eq!(idx.purge_expired(later), 1);
        assert_eq!(idx.live_entries(&S, later), 0);
        // Full scope: the oldest is replaced.
        idx.insert(S, &unit(2), entry("b"), TTL, now).unwrap();
        idx.insert(S, &unit(3), entry("c"), TTL, now).unwrap();
        idx.insert(S, &unit(4), entry("d"), TTL, now).unwrap();
        assert_eq!(idx.live_entries(&S, now), 2);
        assert!(idx.search(&S, &unit(2), now).is_none());
        assert_eq!(idx.search(&S, &unit(4), now).unwrap().entry.prompt, "d");
    }

    #[test]
    fn batch_search_and_bad_input() {
        let now = Instant::now();
        let idx = GpuVectorIndex::host_only(cfg(100));
        for i in 0..10u64 {
            idx.insert(S, &unit(i), entry(&i.to_string()), TTL, now)
                .unwrap();
        }
        let mut qs = Vec::new();
        for i in [3u64, 7, 99] {
            qs.extend(unit(i));
        }
        let got = idx.search_batch(&S, &qs, now).unwrap();
        assert_eq!(got[0].as_ref().unwrap().entry.prompt, "3");
        assert_eq!(got[1].as_ref().unwrap().entry.prompt, "7");
        assert!(got[2].is_none());
        assert!(idx.search_batch(&S, &qs[..5], now).is_err());
        assert!(idx.search(&ScopeHash([9; 16]), &unit(1), now).is_none());
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
    fn gpu_index_matches_host_twin() {
        let idx = match GpuVectorIndex::open(cfg(5000), Precision::Fp32) {
            Ok(i) => i,
            Err(e) => {
                println!("skipped: no CUDA device ({e})");
                return;
            }
        };
        let twin = GpuVectorIndex::host_only(cfg(5000));
        let now = Instant::now();
        let vs: Vec<Vec<f32>> = (0..3000u64).map(unit).collect();
        idx.insert_many(S, vs.iter().map(|v| (v.as_slice(), entry("x"))), TTL, now)
            .unwrap();
        twin.insert_many(S, vs.iter().map(|v| (v.as_slice(), entry("x"))), TTL, now)
            .unwrap();
        let qs: Vec<f32> = (0..64u64).flat_map(|i| unit(i * 40)).collect();
        let a = idx.nearest_batch(&S, &qs, now).unwrap();
        let b = twin.nearest_batch(&S, &qs, now).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x.as_ref().map(|c| c.similarity.to_bits()),
                y.as_ref().map(|c| c.similarity.to_bits())
            );
        }
    }
}
