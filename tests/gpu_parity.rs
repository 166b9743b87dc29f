//! The CUDA backend computes the CPU backend's function: against the reference vectors in
//! `shared/reference/minilm/dev.jsonl` (cosine >= 0.9999 in fp32, >= 0.999 in TF32/fp16) and
//! against the CPU backend itself on the same padded batches. Every GPU test prints
//! "skipped: no CUDA device" and returns where there is none; its CPU twin always runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod gpu_support;

use gpu_support::*;
use infergate::embed::cuda::probe;
use infergate::embed::{
    open_backend_with, BackendKind, CpuBackend, EmbedBackend, EmbedError, Precision, TokenBatch,
    EMBED_DIM,
};

#[test]
fn cpu_twin_matches_reference_in_padded_batches() {
    let (model, tokenizer) = open_model();
    let mut cpu = CpuBackend::load(&model, 1).unwrap();
    check_dev(&mut cpu, &tokenizer, 0.9999);
}

#[test]
fn cuda_fp32_matches_reference_and_cpu() {
    let (model, tokenizer) = open_model();
    let Some(mut cuda) = cuda_backend(&model, Precision::Fp32) else {
        return;
    };
    check_dev(&mut cuda, &tokenizer, 0.9999);
    // Same batches through both backends: per-component agreement, not just cosine.
    let dev: Vec<DevLine> = read_jsonl("dev.jsonl");
    let texts: Vec<&str> = dev.iter().map(|l| l.text.as_str()).collect();
    let mut cpu = CpuBackend::load(&model, 1).unwrap();
    let a = embed_all(&mut cuda, &tokenizer, &texts, 16);
    let b = embed_all(&mut cpu, &tokenizer, &texts, 16);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let max_abs = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(
            cosine(x, y) >= 0.9999 && max_abs <= 1e-4,
            "text {i}: max abs {max_abs}"
        );
    }
}

#[test]
fn cuda_tf32_matches_reference() {
    let (model, tokenizer) = open_model();
    let Some(mut cuda) = cuda_backend(&model, Precision::Tf32) else {
        return;
    };
    check_dev(&mut cuda, &tokenizer, 0.999);
}

#[test]
fn cuda_fp16_matches_reference() {
    let (model, tokenizer) = open_model();
    let Some(mut cuda) = cuda_backend(&model, Precision::Fp16) else {
        return;
    };
    check_dev(&mut cuda, &tokenizer, 0.999);
}

/// CPU twin of the batching checks below: a prompt's vector does not depend on its batch.
fn batch_independence(backend: &mut dyn EmbedBackend) {
    let short = vec![101u32, 7592, 102];
    let long: Vec<u32> = std::iter::once(101)
        .chain((0..60).map(|i| 2000 + i))
        .chain(std::iter::once(102))
        .collect();
    let alone = backend
        .embed(&TokenBatch::from_sequences(&[&short]))
        .unwrap();
    let mixed = backend
        .embed(&TokenBatch::from_sequences(&[&long, &short, &long]))
        .unwrap();
    let c = cosine(&alone, &mixed[EMBED_DIM..2 * EMBED_DIM]);
    assert!(
        c >= 0.99999,
        "{}: padded vs alone cosine {c}",
        backend.name()
    );
    let err = backend
        .embed(&TokenBatch {
            input_ids: vec![0; 4],
            attention_mask: vec![1, 1, 0, 0],
            batch: 2,
            seq_len: 2,
        })
        .unwrap_err();
    assert!(matches!(err, EmbedError::InvalidBatch(_)), "{err}");
    let err = backend
        .embed(&TokenBatch::from_sequences(&[vec![101u32, 999_999, 102]]))
        .unwrap_err();
    assert!(matches!(err, EmbedError::InvalidBatch(_)), "{err}");
}

#[test]
fn cpu_twin_padding_and_bad_batches() {
    let (model, _) = open_model();
    batch_independence(&mut CpuBackend::load(&model, 1).unwrap());
}

#[test]
fn cuda_padding_and_bad_batches() {
    let (model, _) = open_model();
    if let Some(mut cuda) = cuda_backend(&model, Precision::Fp32) {
        batch_independence(&mut cuda);
    }
}

#[test]
fn cuda_runs_on_another_thread_than_the_one_that_opened_it() {
    // The embedder opens its backend on the starting thread and runs it on its own thread.
    let (model, tokenizer) = open_model();
    let Some(mut cuda) = cuda_backend(&model, Precision::Fp32) else {
        return;
    };
    let ids = tokenizer.encode("hello from another thread").unwrap().ids;
    let here = cuda.embed(&TokenBatch::from_sequences(&[&ids])).unwrap();
    let there =
        std::thread::spawn(move || cuda.embed(&TokenBatch::from_sequences(&[&ids])).unwrap())
            .join()
            .unwrap();
    assert!(cosine(&here, &there) >= 0.999999);
}

#[test]
fn auto_picks_cuda_or_falls_back_to_cpu_with_a_reason() {
    let (model, _) = open_model();
    let opened = open_backend_with(BackendKind::Auto, Precision::Fp32, &model, 1).unwrap();
    println!("auto: {}", opened.reason);
    match probe::probe() {
        Ok(_) => assert_eq!(opened.backend.name(), "cuda", "{}", opened.reason),
        Err(e) => {
            assert_eq!(opened.backend.name(), "cpu");
            assert!(
                opened.reason.starts_with("cpu: backend = \"auto\""),
                "{}",
                opened.reason
            );
            assert!(opened.reason.contains(&e.0), "{}", opened.reason);
        }
    }
    let cpu = open_backend_with(BackendKind::Cpu, Precision::Fp32, &model, 1).unwrap();
    assert_eq!(cpu.backend.name(), "cpu");
}

#[test]
fn explicit_cuda_without_a_device_is_a_config_error_not_a_panic() {
    let (model, _) = open_model();
    if probe::probe().is_ok() {
        println!("a CUDA device is present: nothing to check here");
        return;
    }
    let err = open_backend_with(BackendKind::Cuda, Precision::Fp32, &model, 1).unwrap_err();
    assert!(matches!(err, EmbedError::Config(_)), "{err}");
    assert!(err.to_string().contains("cannot run here"), "{err}");
}
