//! The checkpoint in device memory, in the CPU backend's layout (Linear weights as `W^T`,
//! `[d_in, d_out]` row-major, which cuBLAS reads as `W` column-major with `ld = d_out`).

use cudarc::driver::CudaSlice;

use super::{CudaDevice, CudaError};
use crate::embed::weights::{BertWeights, Linear, Norm};

/// A dense layer on the device.
pub struct DeviceLinear {
    /// `W^T`, `d_in * d_out`.
    pub w_t: CudaSlice<f32>,
    /// Bias, `d_out`.
    pub bias: CudaSlice<f32>,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

/// LayerNorm parameters on the device.
pub struct DeviceNorm {
    /// Scale.
    pub gamma: CudaSlice<f32>,
    /// Shift.
    pub beta: CudaSlice<f32>,
}

/// One transformer layer on the device.
pub struct DeviceLayer {
    /// Fused Q, K, V projection (1152 outputs).
    pub qkv: DeviceLinear,
    /// Attention output projection.
    pub attn_out: DeviceLinear,
    /// LayerNorm after attention.
    pub attn_norm: DeviceNorm,
    /// Feed-forward up projection.
    pub ffn_up: DeviceLinear,
    /// Feed-forward down projection.
    pub ffn_down: DeviceLinear,
    /// LayerNorm after the feed-forward block.
    pub ffn_norm: DeviceNorm,
}

/// Every weight of the model on the device (about 90 MB in fp32).
pub struct DeviceWeights {
    /// Word embeddings, `vocab * 384`.
    pub word: CudaSlice<f32>,
    /// Rows of `word`.
    pub vocab: usize,
    /// Position embeddings.
    pub position: CudaSlice<f32>,
    /// Rows of `position`.
    pub max_positions: usize,
    /// Token type 0 embedding.
    pub token_type0: CudaSlice<f32>,
    /// LayerNorm of the embeddings.
    pub embed_norm: DeviceNorm,
    /// The layers in order.
    pub layers: Vec<DeviceLayer>,
}

impl DeviceWeights {
    /// Uploads `w`.
    pub fn upload(dev: &CudaDevice, w: &BertWeights) -> Result<Self, CudaError> {
        let linear = |l: &Linear| -> Result<DeviceLinear, CudaError> {
            Ok(DeviceLinear {
                w_t: dev.upload(&l.w_t)?,
                bias: dev.upload(&l.bias)?,
                d_in: l.d_in,
                d_out: l.d_out,
            })
        };
        let norm = |n: &Norm| -> Result<DeviceNorm, CudaError> {
            Ok(DeviceNorm {
                gamma: dev.upload(&n.gamma)?,
                beta: dev.upload(&n.beta)?,
            })
        };
        let layers = w
            .layers
            .iter()
            .map(|l| {
                Ok(DeviceLayer {
                    qkv: linear(&l.qkv)?,
                    attn_out: linear(&l.attn_out)?,
                    attn_norm: norm(&l.attn_norm)?,
                    ffn_up: linear(&l.ffn_up)?,
                    ffn_down: linear(&l.ffn_down)?,
                    ffn_norm: norm(&l.ffn_norm)?,
                })
            })
            .collect::<Result<Vec<_>, CudaError>>()?;
        Ok(Self {
            word: dev.upload(&w.word)?,
            vocab: w.vocab,
            position: dev.upload(&w.position)?,
            max_positions: w.max_positions,
            token_type0: dev.upload(&w.token_type0)?,
            embed_norm: norm(&w.embed_norm)?,
            layers,
        })
    }
}
