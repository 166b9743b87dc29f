//! Helpers shared by the `tests/gpu_*.rs` files: reference data, the model, the CUDA skip rule.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::PathBuf;

use infergate::embed::cuda::{probe, CudaBackend};
use infergate::embed::{EmbedBackend, ModelDir, Precision, TextTokenizer, TokenBatch, EMBED_DIM};
use serde::Deserialize;

/// One line of `dev.jsonl`.
#[derive(Deserialize)]
pub struct DevLine {
    pub text: String,
    pub input_ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

/// One line of `pairs-dev.jsonl`.
#[derive(Deserialize)]
pub struct PairLine {
    pub a: String,
    pub b: String,
    pub label: String,
    pub cosine: f64,
}

/// `$INFERGATE_REFERENCE_DIR`, else `../shared/reference/minilm` from the checkout the test
/// was built in (set the variable when the prebuilt test runs on another machine).
pub fn reference_dir() -> PathBuf {
    std::env::var_os("INFERGATE_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/minilm")
        })
}

pub fn model_dir() -> PathBuf {
    std::env::var_os("INFERGATE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
        })
}

/// Reads a JSONL file split on `\n` only.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = reference_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// The model (a missing model is a failure: run scripts/fetch-model.sh).
pub fn open_model() -> (ModelDir, TextTokenizer) {
    let model =
        ModelDir::open(model_dir()).unwrap_or_else(|e| panic!("{e}\n(run scripts/fetch-model.sh)"));
    let tokenizer = TextTokenizer::from_file(&model.tokenizer()).unwrap();
    (model, tokenizer)
}

/// Says loudly that a GPU test did not run, and why.
pub fn skip(why: &str) {
    println!("skipped: no CUDA device ({why})");
    eprintln!("skipped: no CUDA device ({why})");
}

/// The CUDA backend, or `None` after printing the skip line when there is no device.
pub fn cuda_backend(model: &ModelDir, precision: Precision) -> Option<CudaBackend> {
    if let Err(e) = probe::probe() {
        skip(&e.to_string());
        return None;
    }
    // A device is there: from here on, any failure is a real failure.
    Some(CudaBackend::load(model, precision).unwrap())
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Embeds `texts` in padded batches of `batch`, grouped by length (less padding: the CPU
/// twin runs in debug builds); results come back in the order of `texts`.
pub fn embed_all(
    backend: &mut dyn EmbedBackend,
    tokenizer: &TextTokenizer,
    texts: &[&str],
    batch: usize,
) -> Vec<Vec<f32>> {
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tokenizer.encode(t).unwrap().ids)
        .collect();
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    for chunk in order.chunks(batch) {
        let seqs: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
        let v = backend.embed(&TokenBatch::from_sequences(&seqs)).unwrap();
        for (&i, e) in chunk.iter().zip(v.chunks_exact(EMBED_DIM)) {
            out[i] = e.to_vec();
        }
    }
    out
}

/// Checks every dev text against the reference: token ids equal, cosine >= `min_cos`,
/// unit norm. Returns the smallest cosine.
pub fn check_dev(backend: &mut dyn EmbedBackend, tokenizer: &TextTokenizer, min_cos: f64) -> f64 {
    let dev: Vec<DevLine> = read_jsonl("dev.jsonl");
    for line in &dev {
        assert_eq!(tokenizer.encode(&line.text).unwrap().ids, line.input_ids);
    }
    let texts: Vec<&str> = dev.iter().map(|l| l.text.as_str()).collect();
    let got = embed_all(backend, tokenizer, &texts, 16);
    let mut worst = 1.0f64;
    for (i, (g, line)) in got.iter().zip(&dev).enumerate() {
        let cos = cosine(g, &line.embedding);
        let norm = g.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!(
            cos >= min_cos,
            "{} line {i} {:?}: cosine {cos}",
            backend.name(),
            line.text
        );
        assert!(
            (norm - 1.0).abs() <= 1e-4,
            "{} line {i}: norm {norm}",
            backend.name()
        );
        worst = worst.min(cos);
    }
    println!(
        "{}: min cosine to the reference over {} dev texts: 1 - {:.2e}",
        backend.name(),
        dev.len(),
        1.0 - worst
    );
    worst
}
