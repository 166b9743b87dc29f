//! GPU benchmarks for the lent H100 (prebuilt with `cargo bench --bench gpu --no-run`; see
//! `kernels/README.md`):
//!
//! * `gpu_embed_{precision}/{tokens}tok/b{batch}`: sentences/s of the CUDA embedder for
//!   16-, 64- and 256-token prompts at batch 1, 8, 64 and 256 (criterion's throughput is in
//!   elements = sentences). Token ids in, vectors out, host copies included, tokenization not.
//! * `gpu_index/{vectors}/q{queries}`: `GpuVectorIndex::search_batch` latency at 100k, 1M and
//!   5M vectors in one scope, for 1 and 64 queries (GEMM + top-k + exact host re-score).
//!
//! Without a CUDA device it prints "skipped: no CUDA device" and exits 0.
//!
//! Environment: `INFERGATE_MODEL_DIR` (default `models/all-MiniLM-L6-v2`); where the model is
//! not there, or `INFERGATE_BENCH_RANDOM_WEIGHTS=1`, random weights of the model's shapes are
//! used (same speed: the work does not depend on the values). `INFERGATE_BENCH_PRECISION`:
//! comma-separated `fp32,tf32,fp16` (default `fp32,fp16`). `INFERGATE_BENCH_INDEX_SIZES`:
//! comma-separated vector counts (default `100000,1000000,5000000`).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use infergate::cache::gpu_index::GpuVectorIndex;
use infergate::cache::{CachedResponse, ScopeHash, SemanticEntry, SemanticIndexConfig};
use infergate::embed::cuda::{probe, CudaBackend};
use infergate::embed::weights::{BertWeights, Layer, Linear, Norm, HIDDEN, INTERMEDIATE, LAYERS};
use infergate::embed::{EmbedBackend, ModelDir, Precision, TokenBatch};

const LENGTHS: [usize; 3] = [16, 64, 256];
const BATCHES: [usize; 4] = [1, 8, 64, 256];
const QUERIES: [usize; 2] = [1, 64];

fn random(rng: &mut fastrand::Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| (rng.f32() * 2.0 - 1.0) * scale).collect()
}

fn random_linear(rng: &mut fastrand::Rng, d_in: usize, d_out: usize) -> Linear {
    Linear {
        w_t: random(rng, d_in * d_out, 0.05),
        bias: random(rng, d_out, 0.01),
        d_in,
        d_out,
    }
}

fn random_norm(rng: &mut fastrand::Rng) -> Norm {
    Norm {
        gamma: random(rng, HIDDEN, 0.1).iter().map(|x| 1.0 + x).collect(),
        beta: random(rng, HIDDEN, 0.01),
    }
}

/// Weights of all-MiniLM-L6-v2's shapes with random values.
fn random_weights() -> BertWeights {
    let mut rng = fastrand::Rng::with_seed(7);
    let (vocab, max_positions) = (30522, 512);
    let layers = (0..LAYERS)
        .map(|_| Layer {
            qkv: random_linear(&mut rng, HIDDEN, 3 * HIDDEN),
            attn_out: random_linear(&mut rng, HIDDEN, HIDDEN),
            attn_norm: random_norm(&mut rng),
            ffn_up: random_linear(&mut rng, HIDDEN, INTERMEDIATE),
            ffn_down: random_linear(&mut rng, INTERMEDIATE, HIDDEN),
            ffn_norm: random_norm(&mut rng),
        })
        .collect();
    BertWeights {
        word: random(&mut rng, vocab * HIDDEN, 0.05),
        vocab,
        position: random(&mut rng, max_positions * HIDDEN, 0.05),
        max_positions,
        token_type0: random(&mut rng, HIDDEN, 0.05),
        embed_norm: random_norm(&mut rng),
        layers,
    }
}

fn load_weights() -> (BertWeights, &'static str) {
    let dir = std::env::var_os("INFERGATE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models/all-MiniLM-L6-v2"));
    let random_wanted = std::env::var("INFERGATE_BENCH_RANDOM_WEIGHTS").is_ok_and(|v| v == "1");
    if !random_wanted {
        if let Ok(model) = ModelDir::open(&dir) {
            if let Ok(w) = BertWeights::load(&model.weights()) {
                return (w, "model weights");
            }
        }
    }
    (random_weights(), "random weights (model not loaded)")
}

/// `batch` prompts of exactly `tokens` ids.
fn token_batch(batch: usize, tokens: usize) -> TokenBatch {
    let mut rng = fastrand::Rng::with_seed(tokens as u64);
    let seqs: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            std::iter::once(101)
                .chain((0..tokens - 2).map(|_| rng.u32(1000..29000)))
                .chain(std::iter::once(102))
                .collect()
        })
        .collect();
    TokenBatch::from_sequences(&seqs)
}

fn precisions() -> Vec<Precision> {
    let spec = std::env::var("INFERGATE_BENCH_PRECISION").unwrap_or_else(|_| "fp32,fp16".into());
    spec.split(',')
        .filter_map(|p| match p.trim() {
            "fp32" => Some(Precision::Fp32),
            "tf32" => Some(Precision::Tf32),
            "fp16" => Some(Precision::Fp16),
            _ => None,
        })
        .collect()
}

fn bench_embed(c: &mut Criterion) {
    let (weights, what) = load_weights();
    println!("gpu_embed: {what}");
    for precision in precisions() {
        let mut backend = CudaBackend::from_weights(&weights, precision).unwrap();
        let mut group = c.benchmark_group(format!("gpu_embed_{precision:?}").to_lowercase());
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        group.sample_size(20);
        for tokens in LENGTHS {
            for batch in BATCHES {
                let tb = token_batch(batch, tokens);
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_with_input(
                    BenchmarkId::new(format!("{tokens}tok"), format!("b{batch}")),
                    &tb,
                    |b, tb| b.iter(|| black_box(backend.embed(tb).unwrap())),
                );
            }
        }
        group.finish();
    }
}

fn bench_index(c: &mut Criterion) {
    let sizes: Vec<usize> = std::env::var("INFERGATE_BENCH_INDEX_SIZES")
        .unwrap_or_else(|_| "100000,1000000,5000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let entry = Arc::new(SemanticEntry {
        prompt: "p".into(),
        truncated: false,
        response: Arc::new(CachedResponse {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::from_static(b"{}"),
        }),
    });
    let mut rng = fastrand::Rng::with_seed(11);
    let queries = random(&mut rng, 64 * HIDDEN, 1.0);
    let mut group = c.benchmark_group("gpu_index");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(20);
    for n in sizes {
        let index = GpuVectorIndex::open(
            SemanticIndexConfig {
                max_entries_per_scope: n,
                max_scopes: 4,
                threshold: 0.8,
            },
            Precision::Fp32,
        )
        .unwrap();
        let scope = ScopeHash([3; 16]);
        let now = Instant::now();
        let t0 = Instant::now();
        // Insert in slices of 100k random vectors (one upload each).
        let mut left = n;
        while left > 0 {
            let m = left.min(100_000);
            let vs = random(&mut rng, m * HIDDEN, 1.0);
            index
                .insert_many(
                    scope,
                    vs.chunks_exact(HIDDEN).map(|v| (v, Arc::clone(&entry))),
                    Duration::from_secs(3600),
                    now,
                )
                .unwrap();
            left -= m;
        }
        println!("gpu_index: {n} vectors inserted in {:?}", t0.elapsed());
        for q in QUERIES {
            let qs = &queries[..q * HIDDEN];
            group.throughput(Throughput::Elements(q as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{n}"), format!("q{q}")),
                qs,
                |b, qs| b.iter(|| black_box(index.search_batch(&scope, qs, now).unwrap())),
            );
        }
    }
    group.finish();
}

fn main() {
    match probe::probe() {
        Err(e) => {
            println!("skipped: no CUDA device ({e}); the gpu bench measures nothing here");
        }
        Ok(info) => {
            println!("gpu bench on {} ({})", info.name, info.arch());
            let mut c = Criterion::default().configure_from_args();
            bench_embed(&mut c);
            bench_index(&mut c);
            c.final_summary();
        }
    }
}
