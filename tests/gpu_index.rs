//! `GpuVectorIndex` makes the same hit/miss decisions as the CPU `SemanticIndex` on the
//! embeddings of the dev pairs (`shared/reference/minilm/pairs-dev.jsonl`): the GPU only
//! shortlists, the final score is the CPU's exact fp32 dot product. The GPU test prints
//! "skipped: no CUDA device" without one; its CPU twin (the index's host-only shortlist)
//! always runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod gpu_support;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gpu_support::*;
use infergate::cache::gpu_index::GpuVectorIndex;
use infergate::cache::{
    CachedResponse, ScopeHash, SemanticEntry, SemanticIndex, SemanticIndexConfig, VectorIndex,
    DEFAULT_THRESHOLD,
};
use infergate::embed::cuda::probe;
use infergate::embed::{CpuBackend, Precision};

/// Embeddings of a dev pair's `a` and `b`, and its label.
type Pair = (Vec<f32>, Vec<f32>, String);

/// (a, b, label) embeddings of every dev pair, by the CPU backend, computed once.
fn pairs() -> &'static Vec<Pair> {
    static PAIRS: OnceLock<Vec<Pair>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let (model, tokenizer) = open_model();
        let mut cpu = CpuBackend::load(&model, 2).unwrap();
        let lines: Vec<PairLine> = read_jsonl("pairs-dev.jsonl");
        let texts: Vec<&str> = lines
            .iter()
            .flat_map(|l| [l.a.as_str(), l.b.as_str()])
            .collect();
        let v = embed_all(&mut cpu, &tokenizer, &texts, 16);
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (v[2 * i].clone(), v[2 * i + 1].clone(), l.label.clone()))
            .collect()
    })
}

fn entry(p: String) -> Arc<SemanticEntry> {
    Arc::new(SemanticEntry {
        prompt: p,
        truncated: false,
        response: Arc::new(CachedResponse {
            status: 200,
            content_type: "application/json".into(),
            body: Bytes::from_static(b"{}"),
        }),
    })
}

fn cfg() -> SemanticIndexConfig {
    SemanticIndexConfig {
        max_entries_per_scope: 10_000,
        max_scopes: 1_000,
        threshold: DEFAULT_THRESHOLD,
    }
}

/// Per pair: `a` alone in its scope, `b` searched (the cache's decision on that pair); and
/// every `a` in one shared scope, each `b` searched (nearest entry among all of them).
fn same_decisions(index: &dyn VectorIndex, what: &str) {
    let cpu = SemanticIndex::new(cfg());
    let now = Instant::now();
    let ttl = Duration::from_secs(600);
    let shared = ScopeHash([0xee; 16]);
    let pairs = pairs();
    for (i, (a, _, _)) in pairs.iter().enumerate() {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&(i as u64).to_le_bytes());
        for idx in [index, &cpu as &dyn VectorIndex] {
            idx.insert(ScopeHash(s), a, entry(format!("a{i}")), ttl, now)
                .unwrap();
            idx.insert(shared, a, entry(format!("a{i}")), ttl, now)
                .unwrap();
        }
    }
    let (mut hits, mut agree) = (0, 0);
    for (i, (_, b, _)) in pairs.iter().enumerate() {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&(i as u64).to_le_bytes());
        for scope in [ScopeHash(s), shared] {
            let g = index.search(&scope, b, now);
            let c = cpu.search(&scope, b, now);
            assert_eq!(
                g.is_some(),
                c.is_some(),
                "{what}: pair {i}: hit/miss differs"
            );
            if let (Some(g), Some(c)) = (&g, &c) {
                assert_eq!(
                    g.entry.prompt, c.entry.prompt,
                    "{what}: pair {i}: other entry"
                );
                assert_eq!(
                    g.similarity.to_bits(),
                    c.similarity.to_bits(),
                    "{what}: pair {i}"
                );
                hits += 1;
            }
            agree += 1;
        }
    }
    println!("{what}: {agree} decisions identical to SemanticIndex ({hits} hits) at threshold {DEFAULT_THRESHOLD}");
}

#[test]
fn host_twin_makes_semantic_index_decisions_on_dev_pairs() {
    same_decisions(&GpuVectorIndex::host_only(cfg()), "host twin");
}

#[test]
fn gpu_index_makes_semantic_index_decisions_on_dev_pairs() {
    let index = match GpuVectorIndex::open(cfg(), Precision::Fp32) {
        Ok(i) => i,
        Err(e) => {
            assert!(
                probe::probe().is_err(),
                "a device is present but the index failed: {e}"
            );
            skip(&e.to_string());
            return;
        }
    };
    assert!(index.is_gpu());
    same_decisions(&index, "gpu fp32");
    let fp16 = GpuVectorIndex::open(cfg(), Precision::Fp16).unwrap();
    same_decisions(&fp16, "gpu fp16 shortlist + exact re-score");
}
