//! CPU twin of the CUDA forward pass: runs the exact GEMM plan the CUDA backend hands to cuBLAS
//! (`infergate::embed::cuda::plan`, computed by its CPU reference of `gemmStridedBatched`) with
//! host versions of the `kernels/embed.cu` kernels over the padded batch, and checks the result
//! against the CPU backend. This pins down every shape, leading dimension, stride and offset of
//! the GPU pass without a GPU; what it cannot check is the CUDA code itself (see
//! tests/gpu_parity.rs for that, on a device).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod gpu_support;

use gpu_support::*;
use infergate::embed::cuda::plan;
use infergate::embed::weights::{BertWeights, Norm, HEADS, HIDDEN, INTERMEDIATE, LN_EPS};
use infergate::embed::{CpuBackend, EmbedBackend, TokenBatch, EMBED_DIM};

fn layernorm_row(x: &mut [f32], n: &Norm) {
    let mean = x.iter().sum::<f32>() / HIDDEN as f32;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / HIDDEN as f32;
    let inv = 1.0 / (var + LN_EPS).sqrt();
    for (c, v) in x.iter_mut().enumerate() {
        *v = (*v - mean) * inv * n.gamma[c] + n.beta[c];
    }
}

fn erf(x: f64) -> f64 {
    // Maclaurin series in f64 (accurate for |x| <= 5), +-1 beyond.
    if x.abs() > 5.0 {
        return x.signum();
    }
    let mut term = x;
    let mut sum = x;
    for n in 1..120 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

/// The CUDA pass, step for step, on the host.
fn emulate(w: &BertWeights, batch: &TokenBatch) -> Vec<f32> {
    let (bsz, seq) = (batch.batch, batch.seq_len);
    let tokens = bsz * seq;
    let mut hidden = vec![0f32; tokens * HIDDEN];
    // embed_layernorm
    for t in 0..tokens {
        let (id, pos) = (batch.input_ids[t] as usize, t % seq);
        let row = &mut hidden[t * HIDDEN..(t + 1) * HIDDEN];
        for (c, v) in row.iter_mut().enumerate() {
            *v = w.word[id * HIDDEN + c] + w.position[pos * HIDDEN + c] + w.token_type0[c];
        }
        layernorm_row(row, &w.embed_norm);
    }
    let mut qkv = vec![0f32; tokens * plan::QKV_WIDTH];
    let mut scores = vec![0f32; bsz * HEADS * seq * seq];
    let mut context = vec![0f32; tokens * HIDDEN];
    let mut projected = vec![0f32; tokens * HIDDEN];
    let mut inter = vec![0f32; tokens * INTERMEDIATE];
    let add_norm = |h: &mut [f32], y: &[f32], bias: &[f32], n: &Norm| {
        for t in 0..tokens {
            let row = &mut h[t * HIDDEN..(t + 1) * HIDDEN];
            for (c, v) in row.iter_mut().enumerate() {
                *v += y[t * HIDDEN + c] + bias[c];
            }
            layernorm_row(row, n);
        }
    };
    for layer in &w.layers {
        plan::gemm_reference(
            &plan::linear(HIDDEN, plan::QKV_WIDTH, tokens),
            &layer.qkv.w_t,
            0,
            &hidden,
            0,
            &mut qkv,
            0,
        )
        .unwrap();
        for (i, v) in qkv.iter_mut().enumerate() {
            *v += layer.qkv.bias[i % plan::QKV_WIDTH]; // bias_add
        }
        for h in 0..HEADS {
            plan::gemm_reference(
                &plan::scores(bsz, seq),
                &qkv,
                plan::key_offset(h),
                &qkv,
                plan::query_offset(h),
                &mut scores,
                plan::scores_offset(h, seq),
            )
            .unwrap();
        }
        // attention_softmax
        for (r, row) in scores.chunks_exact_mut(seq).enumerate() {
            let b = r / (HEADS * seq);
            let mask = &batch.attention_mask[b * seq..(b + 1) * seq];
            let mx = row
                .iter()
                .zip(mask)
                .filter(|(_, m)| **m != 0)
                .map(|(v, _)| *v)
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (v, m) in row.iter_mut().zip(mask) {
                *v = if *m != 0 { (*v - mx).exp() } else { 0.0 };
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
        for h in 0..HEADS {
            plan::gemm_reference(
                &plan::context(bsz, seq),
                &qkv,
                plan::value_offset(h),
                &scores,
                plan::scores_offset(h, seq),
                &mut context,
                plan::context_offset(h),
            )
            .unwrap();
        }
        plan::gemm_reference(
            &plan::linear(HIDDEN, HIDDEN, tokens),
            &layer.attn_out.w_t,
            0,
            &context,
            0,
            &mut projected,
            0,
        )
        .unwrap();
        add_norm(
            &mut hidden,
            &projected,
            &layer.attn_out.bias,
            &layer.attn_norm,
        );
        plan::gemm_reference(
            &plan::linear(HIDDEN, INTERMEDIATE, tokens),
            &layer.ffn_up.w_t,
            0,
            &hidden,
            0,
            &mut inter,
            0,
        )
        .unwrap();
        for (i, v) in inter.iter_mut().enumerate() {
            let t = (*v + layer.ffn_up.bias[i % INTERMEDIATE]) as f64;
            *v = (0.5 * t * (1.0 + erf(t / std::f64::consts::SQRT_2))) as f32; // bias_gelu
        }
        plan::gemm_reference(
            &plan::linear(INTERMEDIATE, HIDDEN, tokens),
            &layer.ffn_down.w_t,
            0,
            &inter,
            0,
            &mut projected,
            0,
        )
        .unwrap();
        add_norm(
            &mut hidden,
            &projected,
            &layer.ffn_down.bias,
            &layer.ffn_norm,
        );
    }
    // mean_pool_normalize
    let mut out = vec![0f32; bsz * EMBED_DIM];
    for b in 0..bsz {
        let o = &mut out[b * EMBED_DIM..(b + 1) * EMBED_DIM];
        let mut rows = 0;
        for p in 0..seq {
            if batch.attention_mask[b * seq + p] == 0 {
                continue;
            }
            rows += 1;
            for (c, v) in o.iter_mut().enumerate() {
                *v += hidden[(b * seq + p) * HIDDEN + c];
            }
        }
        o.iter_mut().for_each(|v| *v /= rows as f32);
        let norm = o.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        o.iter_mut().for_each(|v| *v /= norm);
    }
    out
}

#[test]
fn cuda_gemm_plan_computes_the_cpu_backends_function() {
    let (model, tokenizer) = open_model();
    let weights = BertWeights::load(&model.weights()).unwrap();
    let texts = [
        "How do I reset my password?",
        "hi",
        "The quick brown fox jumps over the lazy dog near the river bank at dawn.",
    ];
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tokenizer.encode(t).unwrap().ids)
        .collect();
    let batch = TokenBatch::from_sequences(&ids); // mixed lengths: padding is exercised
    let got = emulate(&weights, &batch);
    let want = CpuBackend::from_weights(weights, 1).embed(&batch).unwrap();
    for (i, (g, w)) in got
        .chunks_exact(EMBED_DIM)
        .zip(want.chunks_exact(EMBED_DIM))
        .enumerate()
    {
        let cos = cosine(g, w);
        let max_abs = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "text {i}: cosine 1 - {:.2e}, max abs {max_abs:.2e}",
            1.0 - cos
        );
        assert!(
            cos >= 0.99999 && max_abs <= 1e-4,
            "text {i}: cosine {cos}, max abs {max_abs}"
        );
    }
}
