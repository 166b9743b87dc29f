//! [`CudaBackend`]: the all-MiniLM-L6-v2 forward pass on the GPU over the padded batch.
//!
//! Per layer: one GEMM for Q|K|V, per head one strided-batched GEMM (over the prompts) for
//! `QK^T` and one for `PV`, a masked softmax kernel between them, then the output projection
//! GEMM + `residual_bias_layernorm`, the up projection GEMM + `bias_gelu`, and the down
//! projection GEMM + `residual_bias_layernorm`. Padding is computed but never read: keys with
//! mask 0 get probability 0 and `mean_pool_normalize` averages masked tokens only, so the
//! result is the CPU backend's (which packs real tokens) up to fp32 rounding.
//!
//! Row-major `[rows, cols]` buffers are column-major `[cols, rows]` to cuBLAS, so
//! `Y = X W^T` (row-major) is `Y' = W' X'` with `W^T` stored `[d_in, d_out]` read as `W'`.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::device::{rows_config, KernelArg};
use super::kernels::EMBED;
use super::weights::{DeviceLinear, DeviceNorm, DeviceWeights};
use super::{plan, CudaDevice, CudaError};
use crate::embed::config::Precision;
use crate::embed::weights::{BertWeights, HEADS, HIDDEN, INTERMEDIATE, LN_EPS};
use crate::embed::{EmbedBackend, EmbedError, ModelDir, TokenBatch, EMBED_DIM};

const ROW_THREADS: u32 = 128;

/// Device buffers sized for the largest batch seen so far.
#[derive(Default)]
struct Buffers {
    tokens: usize,
    batch: usize,
    scores_len: usize,
    ids: Option<CudaSlice<u32>>,
    mask: Option<CudaSlice<u32>>,
    hidden: Option<CudaSlice<f32>>,
    qkv: Option<CudaSlice<f32>>,
    context: Option<CudaSlice<f32>>,
    projected: Option<CudaSlice<f32>>,
    intermediate: Option<CudaSlice<f32>>,
    scores: Option<CudaSlice<f32>>,
    out: Option<CudaSlice<f32>>,
}

/// Runs all-MiniLM-L6-v2 on a CUDA device: one context, stream and cuBLAS handle, owned by
/// the embedder thread.
pub struct CudaBackend {
    dev: CudaDevice,
    weights: DeviceWeights,
    buffers: Buffers,
}

impl CudaBackend {
    /// Loads the weights of `model` from disk and uploads them.
    pub fn load(model: &ModelDir, precision: Precision) -> Result<Self, EmbedError> {
        let weights = BertWeights::load(&model.weights())?;
        Ok(Self::from_weights(&weights, precision)?)
    }

    /// Opens the device, compiles the kernels (once per process) and uploads `weights`.
    pub fn from_weights(weights: &BertWeights, precision: Precision) -> Result<Self, CudaError> {
        let dev = CudaDevice::open(precision, &[EMBED])?;
        let weights = DeviceWeights::upload(&dev, weights)?;
        dev.synchronize()?;
        Ok(Self {
            dev,
            weights,
            buffers: Buffers::default(),
        })
    }

    /// The device this backend runs on.
    pub fn device(&self) -> &CudaDevice {
        &self.dev
    }

    fn ensure_buffers(&mut self, batch: usize, seq: usize) -> Result<(), CudaError> {
        let tokens = batch * seq;
        let scores_len = batch * HEADS * seq * seq;
        let b = &mut self.buffers;
        let d = &self.dev;
        if tokens > b.tokens || b.hidden.is_none() {
            b.ids = Some(d.zeros(tokens)?);
            b.mask = Some(d.zeros(tokens)?);
            b.hidden = Some(d.zeros(tokens * HIDDEN)?);
            b.qkv = Some(d.zeros(tokens * 3 * HIDDEN)?);
            b.context = Some(d.zeros(tokens * HIDDEN)?);
            b.projected = Some(d.zeros(tokens * HIDDEN)?);
            b.intermediate = Some(d.zeros(tokens * INTERMEDIATE)?);
            b.tokens = tokens;
        }
        if scores_len > b.scores_len || b.scores.is_none() {
            b.scores = Some(d.zeros(scores_len)?);
            b.scores_len = scores_len;
        }
        if batch > b.batch || b.out.is_none() {
            b.out = Some(d.zeros(batch * EMBED_DIM)?);
            b.batch = batch;
        }
        Ok(())
    }

    fn forward(&mut self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
        batch.validate()?;
        let (bsz, seq) = (batch.batch, batch.seq_len);
        if bsz == 0 {
            return Ok(Vec::new());
        }
        let w = &self.weights;
        // The GPU gathers embeddings at every position, padding included: bound all of them.
        if seq > w.max_positions {
            return Err(EmbedError::InvalidBatch(format!(
                "seq_len {seq} exceeds the model's {} positions",
                w.max_positions
            )));
        }
        if let Some(id) = batch.input_ids.iter().find(|&&id| id as usize >= w.vocab) {
            return Err(EmbedError::InvalidBatch(format!(
                "token id {id} outside vocab {}",
                w.vocab
            )));
        }
        for row in 0..bsz {
            let (ids, mask) = batch.row(row)?;
            let mut any = false;
            for (pos, (&id, &m)) in ids.iter().zip(mask).enumerate() {
                if m == 0 {
                    continue;
                }
                any = true;
                if id as usize >= w.vocab || pos >= w.max_positions {
                    return Err(EmbedError::InvalidBatch(format!(
                        "row {row}: token id {id} at position {pos} outside vocab {} / {} positions",
                        w.vocab, w.max_positions
                    )));
                }
            }
            if !any {
                return Err(EmbedError::InvalidBatch(format!("row {row} has no tokens")));
            }
        }
        self.dev.bind()?;
        self.ensure_buffers(bsz, seq)?;
        self.run(batch).map_err(EmbedError::from)
    }

    fn run(&mut self, batch: &TokenBatch) -> Result<Vec<f32>, CudaError> {
        let (bsz, seq) = (batch.batch, batch.seq_len);
        let tokens = bsz * seq;
        let d = &self.dev;
        let w = &self.weights;
        let b = &mut self.buffers;
        let missing = || CudaError::Shape("buffers not allocated".into());
        {
            let ids = b.ids.as_mut().ok_or_else(missing)?;
            d.upload_at(&batch.input_ids, ids, 0)?;
            let mask = b.mask.as_mut().ok_or_else(missing)?;
            d.upload_at(&batch.attention_mask, mask, 0)?;
        }
        let p = |s: &Option<CudaSlice<f32>>| s.as_ref().map(|s| d.ptr(s)).ok_or_else(missing);
        let ids = b.ids.as_ref().map(|s| d.ptr(s)).ok_or_else(missing)?;
        let mask = b.mask.as_ref().map(|s| d.ptr(s)).ok_or_else(missing)?;
        let hidden = p(&b.hidden)?;
        let qkv = p(&b.qkv)?;
        let context = p(&b.context)?;
        let projected = p(&b.projected)?;
        let intermediate = p(&b.intermediate)?;
        let scores = p(&b.scores)?;
        let out = p(&b.out)?;
        let seq_i = i32::try_from(seq).map_err(|_| CudaError::Shape(format!("seq {seq}")))?;
        let rows = rows_config(tokens, ROW_THREADS)?;
        use KernelArg::{Ptr, F32, I32, I64};

        // SAFETY (every launch and GEMM below): the buffers were sized by ensure_buffers for
        // this batch and seq_len, the weights by their shapes; the argument lists follow the
        // kernel signatures in kernels/embed.cu.
        unsafe {
            d.launch(
                "embed_layernorm",
                rows,
                &[
                    Ptr(ids),
                    Ptr(d.ptr(&w.word)),
                    Ptr(d.ptr(&w.position)),
                    Ptr(d.ptr(&w.token_type0)),
                    Ptr(d.ptr(&w.embed_norm.gamma)),
                    Ptr(d.ptr(&w.embed_norm.beta)),
                    F32(LN_EPS),
                    I32(seq_i),
                    Ptr(hidden),
                ],
            )?;
            for layer in &w.layers {
                linear(d, &layer.qkv, hidden, qkv, tokens)?;
                bias_add(d, &layer.qkv, qkv, tokens)?;
                let g = plan::scores(bsz, seq);
                for h in 0..HEADS {
                    let k_ptr = qkv + 4 * plan::key_offset(h) as u64;
                    let q_ptr = qkv + 4 * plan::query_offset(h) as u64;
                    let s_ptr = scores + 4 * plan::scores_offset(h, seq) as u64;
                    d.gemm(&g, k_ptr, q_ptr, s_ptr)?;
                }
                let att_rows = rows_config(bsz * HEADS * seq, 32)?;
                d.launch(
                    "attention_softmax",
                    att_rows,
                    &[Ptr(scores), Ptr(mask), I32(HEADS as i32), I32(seq_i)],
                )?;
                let g = plan::context(bsz, seq);
                for h in 0..HEADS {
                    let v_ptr = qkv + 4 * plan::value_offset(h) as u64;
                    let s_ptr = scores + 4 * plan::scores_offset(h, seq) as u64;
                    let c_ptr = context + 4 * plan::context_offset(h) as u64;
                    d.gemm(&g, v_ptr, s_ptr, c_ptr)?;
                }
                linear(d, &layer.attn_out, context, projected, tokens)?;
                add_norm(
                    d,
                    hidden,
                    projected,
                    &layer.attn_out,
                    &layer.attn_norm,
                    rows,
                )?;
                linear(d, &layer.ffn_up, hidden, intermediate, tokens)?;
                let n = tokens * INTERMEDIATE;
                d.launch(
                    "bias_gelu",
                    LaunchConfig::for_num_elems(
                        u32::try_from(n).map_err(|_| CudaError::Shape(format!("{n}")))?,
                    ),
                    &[
                        Ptr(intermediate),
                        Ptr(d.ptr(&layer.ffn_up.bias)),
                        I32(INTERMEDIATE as i32),
                        I64(n as i64),
                    ],
                )?;
                linear(d, &layer.ffn_down, intermediate, projected, tokens)?;
                add_norm(d, hidden, projected, &layer.ffn_down, &layer.ffn_norm, rows)?;
            }
            d.launch(
                "mean_pool_normalize",
                rows_config(bsz, ROW_THREADS)?,
                &[Ptr(hidden), Ptr(mask), I32(seq_i), Ptr(out)],
            )?;
        }
        let out = b.out.as_ref().ok_or_else(missing)?;
        d.download(out, bsz * EMBED_DIM)
    }
}

/// `y[tokens, d_out] = x[tokens, d_in] W^T` (bias fused into the next kernel).
///
/// # Safety
/// `x` and `y` must hold `tokens * d_in` and `tokens * d_out` floats.
unsafe fn linear(
    d: &CudaDevice,
    l: &DeviceLinear,
    x: u64,
    y: u64,
    tokens: usize,
) -> Result<(), CudaError> {
    let g = plan::linear(l.d_in, l.d_out, tokens);
    // SAFETY: upheld by the caller.
    unsafe { d.gemm(&g, d.ptr(&l.w_t), x, y) }
}

/// `y[r, :] += bias` for every token (the Q|K|V bias; attention follows, no norm).
///
/// # Safety
/// `y` must hold `tokens * d_out` floats.
unsafe fn bias_add(
    d: &CudaDevice,
    l: &DeviceLinear,
    y: u64,
    tokens: usize,
) -> Result<(), CudaError> {
    let n = tokens * l.d_out;
    let cfg = LaunchConfig::for_num_elems(
        u32::try_from(n).map_err(|_| CudaError::Shape(format!("{n} elements")))?,
    );
    // SAFETY: upheld by the caller; the argument list is bias_add's in kernels/embed.cu.
    unsafe {
        d.launch(
            "bias_add",
            cfg,
            &[
                KernelArg::Ptr(y),
                KernelArg::Ptr(d.ptr(&l.bias)),
                KernelArg::I32(l.d_out as i32),
                KernelArg::I64(n as i64),
            ],
        )
    }
}

/// `h = LayerNorm(h + y + bias)` per token.
///
/// # Safety
/// `h` and `y` must hold `rows * 384` floats.
unsafe fn add_norm(
    d: &CudaDevice,
    h: u64,
    y: u64,
    l: &DeviceLinear,
    n: &DeviceNorm,
    rows: LaunchConfig,
) -> Result<(), CudaError> {
    // SAFETY: upheld by the caller.
    unsafe {
        d.launch(
            "residual_bias_layernorm",
            rows,
            &[
                KernelArg::Ptr(h),
                KernelArg::Ptr(y),
                KernelArg::Ptr(d.ptr(&l.bias)),
                KernelArg::Ptr(d.ptr(&n.gamma)),
                KernelArg::Ptr(d.ptr(&n.beta)),
                KernelArg::F32(LN_EPS),
            ],
        )
    }
}

impl EmbedBackend for CudaBackend {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn embed(&mut self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError> {
        self.forward(batch)
    }
}
