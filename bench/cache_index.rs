//! Cache lookup latency: semantic index search in one scope of 10k, 100k and 1M entries
//! (random unit vectors), the exact-scan path, the dot product, exact-cache lookups, request
//! hashing and one guard decision.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use infergate::cache::exact::{CachedResponse, ExactCache, ExactCacheConfig};
use infergate::cache::guard::guard_allows;
use infergate::cache::key::{ExactKey, ScopeHash};
use infergate::cache::semantic::{
    dot, SemanticEntry, SemanticIndex, SemanticIndexConfig, VectorIndex, DIM, EXACT_SCAN_LIMIT,
};

const SCOPE: ScopeHash = ScopeHash([7; 16]);
const TTL: Duration = Duration::from_secs(3600);

fn unit(rng: &mut fastrand::Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let n = dot(&v, &v).sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn response() -> Arc<CachedResponse> {
    Arc::new(CachedResponse {
        status: 200,
        content_type: "application/json".into(),
        body: Bytes::from(vec![b'x'; 1024]),
    })
}

fn filled_index(n: usize, now: Instant) -> SemanticIndex {
    let index = SemanticIndex::new(SemanticIndexConfig {
        max_entries_per_scope: n,
        max_scopes: 16,
        threshold: 0.8,
    });
    let entry = Arc::new(SemanticEntry {
        prompt: "cached prompt".into(),
        truncated: false,
        response: response(),
    });
    let mut rng = fastrand::Rng::with_seed(42);
    let mut left = n;
    while left > 0 {
        let batch = left.min(10_000);
        let vectors: Vec<Vec<f32>> = (0..batch).map(|_| unit(&mut rng)).collect();
        let items = vectors.iter().map(|v| (v.as_slice(), Arc::clone(&entry)));
        if index.insert_many(SCOPE, items, TTL, now).is_err() {
            return index;
        }
        left -= batch;
    }
    index
}

fn semantic(c: &mut Criterion) {
    let now = Instant::now();
    let mut rng = fastrand::Rng::with_seed(7);
    let query = unit(&mut rng);
    let mut group = c.benchmark_group("semantic_search");
    group.sample_size(20);
    for n in [EXACT_SCAN_LIMIT, 10_000, 100_000, 1_000_000] {
        let index = filled_index(n, now);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(index.nearest(&SCOPE, black_box(&query), now)))
        });
        group.bench_with_input(BenchmarkId::new("search_threshold", n), &n, |b, _| {
            b.iter(|| black_box(index.search(&SCOPE, black_box(&query), now)))
        });
    }
    group.finish();

    let a = unit(&mut rng);
    c.bench_function("dot_384", |b| {
        b.iter(|| black_box(dot(black_box(&a), black_box(&query))))
    });
}

fn exact(c: &mut Criterion) {
    let now = Instant::now();
    let cache = ExactCache::new(ExactCacheConfig {
        max_bytes: 1 << 30,
        max_entry_bytes: 1 << 20,
    });
    let keys: Vec<ExactKey> = (0..100_000u32)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            ExactKey(k)
        })
        .collect();
    let resp = response();
    for k in &keys {
        cache.insert(*k, Arc::clone(&resp), TTL, now);
    }
    cache.run_maintenance();
    let mut i = 0usize;
    c.bench_function("exact_lookup_hit_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            black_box(cache.lookup_no_flight(&keys[i], now))
        })
    });
    let missing = ExactKey([0xff; 16]);
    c.bench_function("exact_lookup_miss", |b| {
        b.iter(|| black_box(cache.lookup_no_flight(black_box(&missing), now)))
    });
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "What is the capital of Canada?"}],
        "temperature": 0
    });
    let scope = infergate::cache::key::CacheScope::new("tenant", "fast");
    c.bench_function("exact_key_small_request", |b| {
        b.iter(|| black_box(scope.exact_key(black_box(&body))))
    });
}

fn guard(c: &mut Criterion) {
    let a = "How do I install Docker on Ubuntu 22.04 without sudo?";
    let b = "Steps to install Docker on Ubuntu 22.04 without using sudo";
    c.bench_function("guard_allows_pair", |bench| {
        bench.iter(|| black_box(guard_allows(black_box(a), black_box(b), false, false)))
    });
}

criterion_group!(benches, semantic, exact, guard);
criterion_main!(benches);
