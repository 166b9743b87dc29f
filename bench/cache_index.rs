//! Cache lookup latency: semantic index search in one scope of 10k, 100k and 1M entries
//! (random unit vectors), the exact-scan path, the dot product, exact-cache lookups, request
//! hashing and one guard decision; and what a shard pays per lookup now that the semantic
//! decision runs on the embedder thread (exact key and lookup, enqueue, await) against that
//! decision itself (nearest + guard: the shard's cost before, the embedder thread's now).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use infergate::cache::decision::{decide, CacheDecision, SemanticQuery};
use infergate::cache::exact::{CachedResponse, ExactCache, ExactCacheConfig};
use infergate::cache::guard::guard_allows;
use infergate::cache::key::{ExactKey, ScopeHash};
use infergate::cache::semantic::{
    dot, SemanticEntry, SemanticIndex, SemanticIndexConfig, VectorIndex, DIM, EXACT_SCAN_LIMIT,
};
use infergate::cache::SemanticDecider;
use infergate::embed::{
    EmbedBackend, EmbedError, Embedder, EmbedderConfig, Embedding, TokenBatch, Tokenize, Tokens,
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

/// CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always supported
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Stands in for the tokenizer: the shard's cost does not depend on it.
struct NoTokenizer;

impl Tokenize for NoTokenizer {
    fn tokenize(&self, _: &str) -> Result<Tokens, EmbedError> {
        Ok(Tokens {
            ids: vec![101, 102],
            truncated: false,
        })
    }
}

/// Stands in for the model: every prompt embeds to the same vector.
struct FixedBackend(Vec<f32>);

impl EmbedBackend for FixedBackend {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn embed(&mut self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
        Ok(self.0.repeat(batch.batch))
    }
}

/// What one cache lookup costs the shard now, against what the shard paid before.
///
/// Each lookup finds a semantic candidate above the threshold, so the guard runs too.
/// * `embedder_decide/N`: nearest + threshold + guard on one embedded prompt in a scope of N
///   entries ([`decide`]): what the shard paid per semantic lookup before, and what the
///   embedder thread pays now, after the forward pass.
/// * `shard_cpu/N`: what the shard pays now for a lookup that misses the exact cache and goes
///   to the semantic cache: the exact key, the exact lookup (single-flight lead), queueing the
///   prompt with its decision job and awaiting the `CacheDecision`, in the shard thread's CPU
///   time (the time it is parked waiting is not counted: it serves other connections then).
/// * `shard_wall/N`: the same lookup's wall time, i.e. what the request waits: the embedder
///   thread's work plus the hand-offs.
///
/// The embedder has a stand-in model, so every figure leaves out the forward pass.
fn shard_lookup(c: &mut Criterion) {
    const STORED: &str = "How do I install Docker on Ubuntu 22.04 without sudo?";
    const ASKED: &str = "Steps to install Docker on Ubuntu 22.04 without using sudo";
    let now = Instant::now();
    let mut rng = fastrand::Rng::with_seed(11);
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": ASKED}],
        "temperature": 0
    });
    let scope = infergate::cache::key::CacheScope::new("tenant", "fast");
    let exact = ExactCache::new(ExactCacheConfig::default());
    let mut group = c.benchmark_group("shard_lookup");
    group.sample_size(20);
    for n in [10_000, 100_000] {
        let index = Arc::new(filled_index(n, now));
        let vector = unit(&mut rng);
        let entry = Arc::new(SemanticEntry {
            prompt: STORED.into(),
            truncated: false,
            response: response(),
        });
        if index.insert(SCOPE, &vector, entry, TTL, now).is_err() {
            return;
        }
        let query = SemanticQuery {
            scope: SCOPE,
            prompt: ASKED.into(),
            threshold: 0.8,
            search: true,
        };
        let embedding = Embedding {
            vector: vector.clone(),
            tokens: 14,
            truncated: false,
        };
        group.bench_with_input(BenchmarkId::new("embedder_decide", n), &n, |b, _| {
            b.iter(|| black_box(decide(&index, query.clone(), embedding.clone(), now)))
        });

        let config = EmbedderConfig {
            lookup_timeout_ms: 10_000,
            ..EmbedderConfig::default()
        };
        let Ok(handle) = Embedder::start_with(
            &config,
            Box::new(NoTokenizer),
            Box::new(FixedBackend(vector)),
        ) else {
            return;
        };
        let decider = SemanticDecider::new(handle, Arc::clone(&index));
        let Ok(mut rt) = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
        else {
            return;
        };
        // One lookup as the shard makes it (the JSON parse, unchanged by the move, is left
        // out); the leader is dropped unfilled, so the next lookup leads again.
        let (scope, body, exact, decider, query) = (&scope, &body, &exact, &decider, &query);
        let shard_lookup = move || async move {
            let key = scope.exact_key(black_box(body));
            let lead = exact.lookup(&key, Instant::now());
            let decision = decider.decide(query.clone()).await;
            black_box(lead);
            matches!(black_box(decision), Ok(CacheDecision::Hit(_)))
        };
        // Every lookup should be a semantic hit; anything else (a bypass) is not what is meant
        // to be measured, so say so next to the figures.
        let check = |misses: u64| {
            if misses > 0 {
                eprintln!("shard_lookup/{n}: {misses} lookups were not semantic hits");
            }
        };
        group.bench_with_input(BenchmarkId::new("shard_cpu", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut misses = 0;
                    let start = thread_cpu_time();
                    for _ in 0..iters {
                        misses += u64::from(!shard_lookup().await);
                    }
                    let spent = thread_cpu_time().saturating_sub(start);
                    check(misses);
                    spent
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("shard_wall", n), &n, |b, _| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut misses = 0;
                    let start = Instant::now();
                    for _ in 0..iters {
                        misses += u64::from(!shard_lookup().await);
                    }
                    let spent = start.elapsed();
                    check(misses);
                    spent
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, semantic, exact, guard, shard_lookup);
criterion_main!(benches);
