//! Embedder CPU benchmarks: batch-1 latency and batch-32 throughput for prompts of exactly
//! 16, 64 and 256 tokens, tokenization included (what `SentenceTransformer.encode` measures on
//! the PyTorch side, see `bench/pytorch_embed.py` and `bench/run-embed-bench.sh`).
//!
//! `INFERGATE_MODEL_DIR` picks the model (default `models/all-MiniLM-L6-v2`),
//! `INFERGATE_BENCH_THREADS` the GEMM threads (default 1). `INFERGATE_BENCH_CLOCK=cpu` times
//! with the thread's CPU clock instead of the wall clock: on a shared machine (ours has 2 cores
//! and other builds running) that leaves out the time the thread waits for a core. Only valid
//! with 1 thread, where all the work runs on the measuring thread.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use infergate::embed::{CpuBackend, EmbedBackend, ModelDir, TextTokenizer, TokenBatch};

/// Token counts measured, `[CLS]` and `[SEP]` included.
const LENGTHS: [usize; 3] = [16, 64, 256];

/// A text of exactly `tokens` tokens: single-token words (same generator as the Python side).
fn text_of(tokens: usize) -> String {
    const WORDS: [&str; 8] = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
    ];
    (0..tokens.saturating_sub(2))
        .map(|i| WORDS[i % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn embed_texts(
    tokenizer: &TextTokenizer,
    backend: &mut CpuBackend,
    texts: &[String],
) -> Option<Vec<f32>> {
    let ids: Option<Vec<Vec<u32>>> = texts
        .iter()
        .map(|t| tokenizer.encode(t).ok().map(|t| t.ids))
        .collect();
    backend.embed(&TokenBatch::from_sequences(&ids?)).ok()
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

fn benches(c: &mut Criterion) {
    let dir = std::env::var_os("INFERGATE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models/all-MiniLM-L6-v2"));
    let threads = std::env::var("INFERGATE_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let loaded = ModelDir::open(&dir).and_then(|model| {
        let tokenizer = TextTokenizer::from_file(&model.tokenizer())?;
        Ok((tokenizer, CpuBackend::load(&model, threads)?))
    });
    let (tokenizer, mut backend) = match loaded {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("embed bench: {e}");
            return;
        }
    };
    for n in LENGTHS {
        match tokenizer.encode(&text_of(n)) {
            Ok(t) if t.ids.len() == n => {}
            other => {
                eprintln!("embed bench: text_of({n}) does not tokenize to {n} tokens: {other:?}");
                return;
            }
        }
    }
    let cpu_clock = std::env::var("INFERGATE_BENCH_CLOCK").is_ok_and(|c| c == "cpu");
    eprintln!(
        "embed bench: {threads} GEMM thread(s), {} clock",
        if cpu_clock { "thread CPU" } else { "wall" }
    );

    let epoch = Instant::now();
    let mut group = c.benchmark_group("embed_b1");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    for n in LENGTHS {
        let texts = vec![text_of(n)];
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(n), &texts, |b, texts| {
            b.iter_custom(|iters| {
                let clock = || {
                    if cpu_clock {
                        thread_cpu_time()
                    } else {
                        Instant::now().duration_since(epoch)
                    }
                };
                let start = clock();
                for _ in 0..iters {
                    black_box(embed_texts(&tokenizer, &mut backend, texts));
                }
                clock() - start
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("embed_b32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for n in LENGTHS {
        let texts = vec![text_of(n); 32];
        group.throughput(Throughput::Elements(32));
        group.bench_with_input(BenchmarkId::from_parameter(n), &texts, |b, texts| {
            b.iter_custom(|iters| {
                let clock = || {
                    if cpu_clock {
                        thread_cpu_time()
                    } else {
                        Instant::now().duration_since(epoch)
                    }
                };
                let start = clock();
                for _ in 0..iters {
                    black_box(embed_texts(&tokenizer, &mut backend, texts));
                }
                clock() - start
            })
        });
    }
    group.finish();
}

criterion_group!(embed, benches);
criterion_main!(embed);
