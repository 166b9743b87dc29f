//! The GEMMs of the CUDA forward pass as plain data: shapes, leading dimensions, strides and
//! element offsets into the row-major activation buffers. [`super::forward`] issues exactly
//! these to cuBLAS; [`gemm_reference`] computes what cuBLAS computes for one of them, so the
//! whole plan (the part of the GPU pass where layout mistakes hide) is checked on the CPU
//! against the CPU backend (`tests/gpu_plan.rs`).
//!
//! Row-major `[rows, cols]` is column-major `[cols, rows]` to cuBLAS.

use super::{CudaError, Gemm, Transpose};
use crate::embed::weights::{HEADS, HEAD_DIM, HIDDEN};

/// Width of a fused Q|K|V row.
pub const QKV_WIDTH: usize = 3 * HIDDEN;

/// `y[tokens, d_out] = x[tokens, d_in] W^T` with `W^T` stored `[d_in, d_out]` (A = `W^T`,
/// B = `x`, C = `y`).
pub fn linear(d_in: usize, d_out: usize, tokens: usize) -> Gemm {
    Gemm::single(
        Transpose::No,
        Transpose::No,
        d_out,
        tokens,
        d_in,
        d_out,
        d_in,
        d_out,
    )
}

/// Attention scores of one head for every prompt: `scores[b, h, i, j] = scale * q_i . k_j`
/// (A = qkv + [`key_offset`], B = qkv + [`query_offset`], C = scores + [`scores_offset`]).
pub fn scores(batch: usize, seq: usize) -> Gemm {
    Gemm {
        ta: Transpose::Yes,
        tb: Transpose::No,
        m: seq,
        n: seq,
        k: HEAD_DIM,
        lda: QKV_WIDTH,
        ldb: QKV_WIDTH,
        ldc: seq,
        stride_a: seq * QKV_WIDTH,
        stride_b: seq * QKV_WIDTH,
        stride_c: HEADS * seq * seq,
        batch,
        alpha: 1.0 / (HEAD_DIM as f32).sqrt(),
    }
}

/// One head's attention output for every prompt: `context[b, i, h*32..] = sum_j P[i, j] v_j`
/// (A = qkv + [`value_offset`], B = scores + [`scores_offset`], C = context + [`context_offset`]).
pub fn context(batch: usize, seq: usize) -> Gemm {
    Gemm {
        ta: Transpose::No,
        tb: Transpose::No,
        m: HEAD_DIM,
        n: seq,
        k: seq,
        lda: QKV_WIDTH,
        ldb: seq,
        ldc: HIDDEN,
        stride_a: seq * QKV_WIDTH,
        stride_b: HEADS * seq * seq,
        stride_c: seq * HIDDEN,
        batch,
        alpha: 1.0,
    }
}

/// Element offset of head `h`'s queries in a Q|K|V row.
pub fn query_offset(h: usize) -> usize {
    h * HEAD_DIM
}

/// Element offset of head `h`'s keys in a Q|K|V row.
pub fn key_offset(h: usize) -> usize {
    HIDDEN + h * HEAD_DIM
}

/// Element offset of head `h`'s values in a Q|K|V row.
pub fn value_offset(h: usize) -> usize {
    2 * HIDDEN + h * HEAD_DIM
}

/// Element offset of head `h`'s first score matrix (`[batch, heads, seq, seq]`).
pub fn scores_offset(h: usize, seq: usize) -> usize {
    h * seq * seq
}

/// Element offset of head `h`'s columns in a context row.
pub fn context_offset(h: usize) -> usize {
    h * HEAD_DIM
}

/// What cuBLAS's `gemmStridedBatched` computes for `g` (beta = 0), on host slices with
/// element offsets: the CPU reference of the plan. A plan that reads or writes outside a
/// buffer (a layout mistake) is a [`CudaError::Shape`] naming the element.
pub fn gemm_reference(
    g: &Gemm,
    a: &[f32],
    a_off: usize,
    b: &[f32],
    b_off: usize,
    c: &mut [f32],
    c_off: usize,
) -> Result<(), CudaError> {
    fn outside(what: &str, at: usize, len: usize) -> CudaError {
        CudaError::Shape(format!(
            "gemm_reference: {what}[{at}] is outside its {len} elements"
        ))
    }
    let c_len = c.len();
    for batch in 0..g.batch {
        let (ao, bo, co) = (
            a_off + batch * g.stride_a,
            b_off + batch * g.stride_b,
            c_off + batch * g.stride_c,
        );
        for col in 0..g.n {
            for row in 0..g.m {
                let mut acc = 0f32;
                for p in 0..g.k {
                    let ai = match g.ta {
                        Transpose::No => ao + row + p * g.lda,
                        Transpose::Yes => ao + p + row * g.lda,
                    };
                    let bi = match g.tb {
                        Transpose::No => bo + p + col * g.ldb,
                        Transpose::Yes => bo + col + p * g.ldb,
                    };
                    let av = a.get(ai).ok_or_else(|| outside("A", ai, a.len()))?;
                    let bv = b.get(bi).ok_or_else(|| outside("B", bi, b.len()))?;
                    acc += av * bv;
                }
                let ci = co + row + col * g.ldc;
                *c.get_mut(ci).ok_or_else(|| outside("C", ci, c_len))? = g.alpha * acc;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn reference_gemm_is_row_major_linear() {
        // x [2, 3], W [4, 3] -> y = x W^T [2, 4]; W^T stored [3, 4].
        let x = [1.0, 2.0, 3.0, -1.0, 0.5, 2.0];
        let w = [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [1.0, 1.0, 1.0],
            [2.0, -1.0, 0.5],
        ];
        let mut w_t = vec![0f32; 12];
        for (o, row) in w.iter().enumerate() {
            for (i, v) in row.iter().enumerate() {
                w_t[i * 4 + o] = *v;
            }
        }
        let mut y = vec![0f32; 8];
        gemm_reference(&linear(3, 4, 2), &w_t, 0, &x, 0, &mut y, 0).unwrap();
        for t in 0..2 {
            for (o, row) in w.iter().enumerate() {
                let want: f32 = (0..3).map(|i| x[t * 3 + i] * row[i]).sum();
                assert!((y[t * 4 + o] - want).abs() < 1e-6);
            }
        }
    }
}
