//! The element-wise parts of the forward pass (bias, GELU, LayerNorm, softmax, pooling) as
//! plain loops the compiler vectorizes.
//!
//! The crate is built for baseline x86-64 (SSE2), so each kernel is compiled twice: once for
//! the baseline and once with AVX2+FMA, picked at run time. `exp` and `erf` are branch-free
//! polynomial versions so those loops vectorize too (libm's are scalar calls).

use super::weights::Norm;

/// Defines `pub fn $name(args)` that runs an AVX2+FMA build of `$body` when the CPU has it.
macro_rules! multiversion {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

/// `e^x` for `x <= 88`, relative error about 2e-7 (Cephes `expf`), without branches.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_2e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let y = p.mul_add(r * r, r) + 1.0;
    // 2^n through the exponent bits; n is in [-126, 128) after the clamp.
    let pow2n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    y * pow2n
}

/// `erf(x)`, absolute error a few 1e-7, as a rational polynomial (the one Eigen and XLA use).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_6e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

multiversion! {
    /// `x[r, :] += bias` for every row, then the exact (erf) GELU: `0.5 x (1 + erf(x / sqrt 2))`.
    pub fn bias_gelu(x: &mut [f32], bias: &[f32]) {
        const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                let t = *v + b;
                *v = 0.5 * t * (1.0 + erf(t * FRAC_1_SQRT_2));
            }
        }
    }
}

multiversion! {
    /// `x[r, :] += bias` for every row.
    pub fn add_bias(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

multiversion! {
    /// `h = LayerNorm(h + y + bias)` row by row (BERT's "add & norm"); `y` is a GEMM output.
    pub fn residual_bias_layernorm(h: &mut [f32], y: &[f32], bias: &[f32], norm: &Norm, eps: f32) {
        let width = bias.len();
        for (hr, yr) in h.chunks_exact_mut(width).zip(y.chunks_exact(width)) {
            for ((hv, yv), b) in hr.iter_mut().zip(yr).zip(bias) {
                *hv += yv + b;
            }
            normalize_row(hr, norm, eps);
        }
    }
}

multiversion! {
    /// LayerNorm of every `width`-wide row of `h`, in place.
    pub fn layernorm(h: &mut [f32], norm: &Norm, eps: f32) {
        for row in h.chunks_exact_mut(norm.gamma.len()) {
            normalize_row(row, norm, eps);
        }
    }
}

/// Lanes of the partial sums in [`sum`] and [`max`]: one AVX-512 register or two AVX2 ones.
const LANES: usize = 16;

/// Sum with `LANES` independent partial sums. A plain `iter().sum()` is a strictly ordered
/// chain that the compiler may not reorder, so it stays scalar and latency bound.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest value (NaN-free input assumed), in lanes like [`sum`].
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = if *v > *a { *v } else { *a };
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

#[inline(always)]
fn normalize_row(row: &mut [f32], norm: &Norm, eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    for v in row.iter_mut() {
        *v -= mean;
    }
    let mut sq = [0f32; LANES];
    for c in row.chunks_exact(LANES) {
        for (a, v) in sq.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let tail: f32 = row
        .chunks_exact(LANES)
        .remainder()
        .iter()
        .map(|v| v * v)
        .sum();
    let var = (sq.iter().sum::<f32>() + tail) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *v = *v * inv * g + b;
    }
}

multiversion! {
    /// Softmax of every `width`-wide row of `x`, in place.
    pub fn softmax_rows(x: &mut [f32], width: usize) {
        for row in x.chunks_exact_mut(width) {
            let max = max(row);
            for v in row.iter_mut() {
                *v = exp(*v - max);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// Mean of the rows of `h` into `out`, then L2-normalized (sentence-transformers' Pooling
    /// with `mean` followed by Normalize).
    pub fn mean_pool_normalize(h: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        let mut rows = 0usize;
        for row in h.chunks_exact(out.len()) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
            rows += 1;
        }
        let inv_rows = 1.0 / (rows.max(1) as f32);
        let mut sq = 0.0;
        for o in out.iter_mut() {
            *o *= inv_rows;
            sq += *o * *o;
        }
        let inv_norm = 1.0 / sq.sqrt().max(1e-12);
        for o in out.iter_mut() {
            *o *= inv_norm;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn erf_series(x: f64) -> f64 {
        // Maclaurin series; fine in f64 for |x| <= 4 at the accuracy checked here.
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f64;
        for i in -8700..=880 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "max relative error {worst}");
    }

    #[test]
    fn erf_matches_series() {
        let mut worst = 0f64;
        for i in -600..=600 {
            let x = i as f32 * 0.01;
            let want = if x.abs() > 4.0 {
                x.signum() as f64
            } else {
                erf_series(x as f64)
            };
            worst = worst.max((erf(x) as f64 - want).abs());
        }
        assert!(worst < 1e-6, "max abs error {worst}");
    }

    #[test]
    fn softmax_sums_to_one_and_is_shift_invariant() {
        let mut a = vec![1.0, 2.0, 3.0, -1000.0, 0.5, 0.5, 0.5, 0.5];
        softmax_rows(&mut a, 4);
        let s0: f32 = a[..4].iter().sum();
        assert!((s0 - 1.0).abs() < 1e-6);
        assert!(a[3] < 1e-30);
        assert!(a[4..].iter().all(|v| (v - 0.25).abs() < 1e-7));
        assert!((a[2] / a[1] - std::f32::consts::E).abs() < 1e-5);
    }

    #[test]
    fn layernorm_and_pooling() {
        let norm = Norm {
            gamma: vec![1.0, 1.0, 2.0],
            beta: vec![0.0, 0.0, 1.0],
        };
        let mut h = vec![1.0, 2.0, 3.0];
        layernorm(&mut h, &norm, 1e-12);
        let s = (2.0f32 / 3.0).sqrt();
        assert!((h[0] + 1.0 / s).abs() < 1e-5 && h[1].abs() < 1e-6);
        assert!((h[2] - (2.0 / s + 1.0)).abs() < 1e-5);

        let mut out = vec![0.0; 2];
        mean_pool_normalize(&[3.0, 0.0, 3.0, 8.0], &mut out);
        assert!((out[0] - 0.6).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn lane_reductions_cover_the_tail() {
        let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(sum(&x), (0..37).sum::<i32>() as f32);
        assert_eq!(max(&x), 36.0);
        assert_eq!(max(&x[..5]), 4.0);
        let mut y = x.clone();
        y[3] = 100.0;
        assert_eq!(max(&y), 100.0);
    }

    #[test]
    fn gelu_known_values() {
        let mut x = vec![-1.0, 0.0, 1.0, 3.0];
        bias_gelu(&mut x, &[0.0, 0.0, 0.0, 0.0]);
        // torch.nn.functional.gelu on these inputs.
        let want = [-0.158_655_25, 0.0, 0.841_344_7, 2.995_950_4];
        for (g, w) in x.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
