//! all-MiniLM-L6-v2's BERT weights from `model.safetensors`, checked and laid out for the CPU
//! forward pass: Linear weights transposed to `[in, out]` (measured faster in `gemm` than
//! multiplying by the transposed `[out, in]` view) and Q, K, V fused into one `[384, 1152]`.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::{EmbedError, EMBED_DIM};

/// Hidden width.
pub const HIDDEN: usize = EMBED_DIM;
/// Attention heads per layer.
pub const HEADS: usize = 12;
/// Width of one head.
pub const HEAD_DIM: usize = HIDDEN / HEADS;
/// Feed-forward width.
pub const INTERMEDIATE: usize = 1536;
/// Transformer layers.
pub const LAYERS: usize = 6;
/// LayerNorm epsilon of the checkpoint.
pub const LN_EPS: f32 = 1e-12;

/// A dense layer `y = x W^T + b`, stored as `W^T` (`[d_in, d_out]`, row-major).
pub struct Linear {
    /// Transposed weight, `d_in * d_out`.
    pub w_t: Vec<f32>,
    /// Bias, `d_out`.
    pub bias: Vec<f32>,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

/// LayerNorm scale and shift.
pub struct Norm {
    /// Scale (`weight`).
    pub gamma: Vec<f32>,
    /// Shift (`bias`).
    pub beta: Vec<f32>,
}

/// One transformer layer.
pub struct Layer {
    /// Q, K and V projections fused: output columns `[q | k | v]`, 1152 wide.
    pub qkv: Linear,
    /// Attention output projection.
    pub attn_out: Linear,
    /// LayerNorm after attention + residual.
    pub attn_norm: Norm,
    /// Feed-forward up projection (GELU follows).
    pub ffn_up: Linear,
    /// Feed-forward down projection.
    pub ffn_down: Linear,
    /// LayerNorm after feed-forward + residual.
    pub ffn_norm: Norm,
}

/// Every weight the forward pass reads.
pub struct BertWeights {
    /// Word embeddings, `vocab * HIDDEN`.
    pub word: Vec<f32>,
    /// Number of rows of `word`.
    pub vocab: usize,
    /// Position embeddings, `max_positions * HIDDEN`.
    pub position: Vec<f32>,
    /// Number of rows of `position`.
    pub max_positions: usize,
    /// Token type 0 embedding (all inputs are single sentences), `HIDDEN`.
    pub token_type0: Vec<f32>,
    /// LayerNorm over the summed embeddings.
    pub embed_norm: Norm,
    /// The transformer layers, in order.
    pub layers: Vec<Layer>,
}

impl BertWeights {
    /// Reads and checks every tensor of `model.safetensors`.
    pub fn load(path: &Path) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(path).map_err(|source| EmbedError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| EmbedError::Weights(format!("{}: {e}", path.display())))?;
        let prefix = if st.tensor("bert.embeddings.word_embeddings.weight").is_ok() {
            "bert."
        } else {
            ""
        };
        let get = |name: &str, shape: &[usize]| tensor(&st, &format!("{prefix}{name}"), shape);

        let word_shape = st
            .tensor(&format!("{prefix}embeddings.word_embeddings.weight"))
            .map(|t| t.shape().to_vec())
            .map_err(|e| EmbedError::Weights(format!("word embeddings: {e}")))?;
        let vocab = word_shape.first().copied().unwrap_or(0);
        let pos_shape = st
            .tensor(&format!("{prefix}embeddings.position_embeddings.weight"))
            .map(|t| t.shape().to_vec())
            .map_err(|e| EmbedError::Weights(format!("position embeddings: {e}")))?;
        let max_positions = pos_shape.first().copied().unwrap_or(0);

        let word = get("embeddings.word_embeddings.weight", &[vocab, HIDDEN])?;
        let position = get(
            "embeddings.position_embeddings.weight",
            &[max_positions, HIDDEN],
        )?;
        let token_types = get("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?;
        let token_type0 = token_types
            .get(..HIDDEN)
            .ok_or_else(|| EmbedError::Weights("token type embeddings: no row 0".into()))?
            .to_vec();
        let embed_norm = norm(&get, "embeddings.LayerNorm")?;

        let mut layers = Vec::with_capacity(LAYERS);
        for i in 0..LAYERS {
            let p = format!("encoder.layer.{i}");
            let q = linear(&get, &format!("{p}.attention.self.query"), HIDDEN, HIDDEN)?;
            let k = linear(&get, &format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?;
            let v = linear(&get, &format!("{p}.attention.self.value"), HIDDEN, HIDDEN)?;
            layers.push(Layer {
                qkv: concat_outputs(&[q, k, v]),
                attn_out: linear(&get, &format!("{p}.attention.output.dense"), HIDDEN, HIDDEN)?,
                attn_norm: norm(&get, &format!("{p}.attention.output.LayerNorm"))?,
                ffn_up: linear(
                    &get,
                    &format!("{p}.intermediate.dense"),
                    HIDDEN,
                    INTERMEDIATE,
                )?,
                ffn_down: linear(&get, &format!("{p}.output.dense"), INTERMEDIATE, HIDDEN)?,
                ffn_norm: norm(&get, &format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word,
            vocab,
            position,
            max_positions,
            token_type0,
            embed_norm,
            layers,
        })
    }
}

/// Reads one f32 tensor and checks its shape.
fn tensor(st: &SafeTensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
    let view = st
        .tensor(name)
        .map_err(|e| EmbedError::Weights(format!("{name}: {e}")))?;
    if view.dtype() != Dtype::F32 {
        return Err(EmbedError::Weights(format!(
            "{name}: dtype {:?}, expected F32",
            view.dtype()
        )));
    }
    if view.shape() != shape {
        return Err(EmbedError::Weights(format!(
            "{name}: shape {:?}, expected {shape:?}",
            view.shape()
        )));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        // Every chunk of `chunks_exact(4)` is 4 bytes: none is skipped.
        .filter_map(|b| b.first_chunk().copied().map(f32::from_le_bytes))
        .collect())
}

fn norm<F>(get: &F, name: &str) -> Result<Norm, EmbedError>
where
    F: Fn(&str, &[usize]) -> Result<Vec<f32>, EmbedError>,
{
    Ok(Norm {
        gamma: get(&format!("{name}.weight"), &[HIDDEN])?,
        beta: get(&format!("{name}.bias"), &[HIDDEN])?,
    })
}

/// Loads a torch Linear (`weight` is `[out, in]`) and stores its transpose.
fn linear<F>(get: &F, name: &str, d_in: usize, d_out: usize) -> Result<Linear, EmbedError>
where
    F: Fn(&str, &[usize]) -> Result<Vec<f32>, EmbedError>,
{
    let w = get(&format!("{name}.weight"), &[d_out, d_in])?;
    let bias = get(&format!("{name}.bias"), &[d_out])?;
    // Row i of `w_t` is column i of `w` (row-major `[d_out, d_in]`).
    let mut w_t = Vec::with_capacity(d_in * d_out);
    for i in 0..d_in {
        w_t.extend(w.iter().skip(i).step_by(d_in).take(d_out));
    }
    Ok(Linear {
        w_t,
        bias,
        d_in,
        d_out,
    })
}

/// Places several Linears with the same input side by side (`[d_in, sum d_out]`).
fn concat_outputs(parts: &[Linear]) -> Linear {
    let d_in = parts.first().map_or(0, |p| p.d_in);
    let d_out: usize = parts.iter().map(|p| p.d_out).sum();
    let mut w_t = Vec::with_capacity(d_in * d_out);
    for i in 0..d_in {
        for p in parts {
            // Each part's `w_t` is `[d_in, p.d_out]` (built by `linear`).
            let row = p.w_t.get(i * p.d_out..(i + 1) * p.d_out);
            w_t.extend_from_slice(row.unwrap_or_default());
        }
    }
    let bias = parts.iter().flat_map(|p| p.bias.iter().copied()).collect();
    Linear {
        w_t,
        bias,
        d_in,
        d_out,
    }
}
