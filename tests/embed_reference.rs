//! Checks the CPU embedder against the sentence-transformers reference in
//! `../shared/reference/minilm/`: identical token ids, cosine >= 0.9999, max abs diff <= 1e-4,
//! unit norm, pair cosines within 1e-4; alone, in padded batches, through the embedder thread
//! and through the CLI function.
//!
//! Needs the model (`scripts/fetch-model.sh`); the dir is `$INFERGATE_MODEL_DIR` or
//! `models/all-MiniLM-L6-v2`. A missing model is a failure, not a skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use infergate::embed::{
    embed_lines, CpuBackend, EmbedBackend, Embedder, EmbedderConfig, ModelDir, TextTokenizer,
    TokenBatch, EMBED_DIM,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct DevLine {
    text: String,
    input_ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct PairLine {
    a: String,
    b: String,
    cosine: f64,
}

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/minilm")
}

fn model_dir() -> PathBuf {
    std::env::var_os("INFERGATE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
        })
}

/// Reads a JSONL file split on `\n` only, as the reference README asks.
fn read_jsonl<T: for<'de> Deserialize<'de>>(name: &str) -> Vec<T> {
    let path = reference_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn open_model() -> (ModelDir, TextTokenizer) {
    let dir = model_dir();
    let model = ModelDir::open(&dir).unwrap_or_else(|e| {
        panic!("{e}\n(the embedder reference test needs the model: run scripts/fetch-model.sh)")
    });
    let tokenizer = TextTokenizer::from_file(&model.tokenizer()).unwrap();
    (model, tokenizer)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[derive(Default)]
struct Stats {
    min_cos: f64,
    max_abs: f32,
    max_norm_err: f64,
}

impl Stats {
    fn new() -> Self {
        Self {
            min_cos: 1.0,
            ..Self::default()
        }
    }

    fn check(&mut self, what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), EMBED_DIM, "{what}");
        let cos = cosine(got, want);
        let max_abs = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let norm = got.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        assert!(cos >= 0.9999, "{what}: cosine {cos}");
        assert!(max_abs <= 1e-4, "{what}: max abs diff {max_abs}");
        assert!((norm - 1.0).abs() <= 1e-5, "{what}: norm {norm}");
        self.min_cos = self.min_cos.min(cos);
        self.max_abs = self.max_abs.max(max_abs);
        self.max_norm_err = self.max_norm_err.max((norm - 1.0).abs());
    }

    fn report(&self, what: &str) {
        eprintln!(
            "{what}: min cosine 1 - {:.2e}, max abs diff {:.2e}, max |norm - 1| {:.2e}",
            1.0 - self.min_cos,
            self.max_abs,
            self.max_norm_err
        );
    }
}

#[test]
fn dev_texts_one_by_one_match_reference() {
    let (model, tokenizer) = open_model();
    let mut backend = CpuBackend::load(&model, 1).unwrap();
    let dev: Vec<DevLine> = read_jsonl("dev.jsonl");
    assert_eq!(dev.len(), 120);
    let mut stats = Stats::new();
    let mut truncated = 0;
    for (i, line) in dev.iter().enumerate() {
        let tokens = tokenizer.encode(&line.text).unwrap();
        assert_eq!(
            tokens.ids, line.input_ids,
            "line {i}: token ids for {:?}",
            line.text
        );
        if tokens.truncated {
            truncated += 1;
            assert_eq!(tokens.ids.len(), 256, "line {i}");
        }
        let got = backend
            .embed(&TokenBatch::from_sequences(&[&tokens.ids]))
            .unwrap();
        stats.check(&format!("line {i} {:?}", line.text), &got, &line.embedding);
    }
    assert_eq!(truncated, 8, "the README lists 8 truncated texts");
    stats.report("dev, batch 1");
}

#[test]
fn dev_texts_in_padded_batches_match_reference() {
    let (model, _) = open_model();
    let mut backend = CpuBackend::load(&model, 1).unwrap();
    let dev: Vec<DevLine> = read_jsonl("dev.jsonl");
    let mut stats = Stats::new();
    let mut padded = 0;
    // Batches of 7 mix short and long texts, so most rows carry padding.
    for (c, chunk) in dev.chunks(7).enumerate() {
        let ids: Vec<&[u32]> = chunk.iter().map(|l| l.input_ids.as_slice()).collect();
        let mut batch = TokenBatch::from_sequences(&ids);
        // Put a real word under the padding: a backend that doesn't mask would change.
        for (id, m) in batch.input_ids.iter_mut().zip(&batch.attention_mask) {
            if *m == 0 {
                *id = 2023;
                padded += 1;
            }
        }
        let got = backend.embed(&batch).unwrap();
        for (j, (line, v)) in chunk.iter().zip(got.chunks_exact(EMBED_DIM)).enumerate() {
            stats.check(&format!("batch {c} row {j}"), v, &line.embedding);
        }
    }
    assert!(padded > 1000, "the batches should carry padding");
    stats.report("dev, batches of 7");
}

#[test]
fn pair_cosines_match_reference() {
    let (model, tokenizer) = open_model();
    let mut backend = CpuBackend::load(&model, 1).unwrap();
    let pairs: Vec<PairLine> = read_jsonl("pairs-dev.jsonl");
    assert_eq!(pairs.len(), 150);
    let mut worst = 0f64;
    for chunk in pairs.chunks(16) {
        let ids: Vec<Vec<u32>> = chunk
            .iter()
            .flat_map(|p| [&p.a, &p.b])
            .map(|t| tokenizer.encode(t).unwrap().ids)
            .collect();
        let got = backend.embed(&TokenBatch::from_sequences(&ids)).unwrap();
        let mut rows = got.chunks_exact(EMBED_DIM);
        for p in chunk {
            let (a, b) = (rows.next().unwrap(), rows.next().unwrap());
            let delta = (cosine(a, b) - p.cosine).abs();
            assert!(
                delta <= 1e-4,
                "{:?} / {:?}: cosine {} vs {}",
                p.a,
                p.b,
                cosine(a, b),
                p.cosine
            );
            worst = worst.max(delta);
        }
    }
    eprintln!("pairs: max |cos - reference| {worst:.2e}");
}

#[test]
fn embedder_thread_batches_real_prompts_correctly() {
    let (model, _) = open_model();
    let backend = CpuBackend::load(&model, 1).unwrap();
    let config = EmbedderConfig {
        model_dir: model.path().to_path_buf(),
        max_batch: 16,
        max_wait_us: 20_000,
        ..EmbedderConfig::default()
    };
    let handle = Embedder::start(config, Box::new(backend)).unwrap();
    let dev: Vec<DevLine> = read_jsonl("dev.jsonl");
    // Every 4th line: short and long (truncated) texts land in the same batches.
    let picked: Vec<&DevLine> = dev.iter().step_by(4).collect();
    let futures: Vec<_> = picked
        .iter()
        .map(|l| handle.embed(l.text.clone()))
        .collect();
    let mut stats = Stats::new();
    for (line, f) in picked.iter().zip(futures) {
        let got = futures_executor::block_on(f).unwrap();
        assert_eq!(got.tokens, line.input_ids.len());
        assert_eq!(got.truncated, got.tokens == 256 && line.text.len() > 256);
        stats.check(&format!("{:?}", line.text), &got.vector, &line.embedding);
    }
    stats.report("dev via embedder thread");
}

#[test]
fn cli_lines_match_reference() {
    let (model, tokenizer) = open_model();
    let mut backend = CpuBackend::load(&model, 1).unwrap();
    let dev: Vec<DevLine> = read_jsonl("dev.jsonl");
    let subset = &dev[..24];
    let mut input = Vec::new();
    for line in subset {
        serde_json::to_writer(&mut input, &serde_json::json!({ "text": line.text })).unwrap();
        input.push(b'\n');
    }
    let mut output = Vec::new();
    embed_lines(&tokenizer, &mut backend, 5, input.as_slice(), &mut output).unwrap();
    let out: Vec<serde_json::Value> = output
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(out.len(), subset.len());
    let mut stats = Stats::new();
    for (line, o) in subset.iter().zip(&out) {
        let ids: Vec<u32> = serde_json::from_value(o["input_ids"].clone()).unwrap();
        let emb: Vec<f32> = serde_json::from_value(o["embedding"].clone()).unwrap();
        assert_eq!(ids, line.input_ids);
        stats.check(&format!("cli {:?}", line.text), &emb, &line.embedding);
    }
}

#[test]
fn missing_model_dir_says_how_to_fix_it() {
    let err = ModelDir::open("/nonexistent/model")
        .unwrap_err()
        .to_string();
    assert!(err.contains("scripts/fetch-model.sh"), "{err}");
    assert!(
        err.contains("model.safetensors") && err.contains("tokenizer.json"),
        "{err}"
    );
}
