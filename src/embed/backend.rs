//! The seam between the embedder thread and the code that runs the model: the CPU forward pass
//! here, a CUDA one in `cuda/`. Both compute the same function on the same [`TokenBatch`].

use super::EmbedError;

/// Width of an all-MiniLM-L6-v2 sentence embedding.
pub const EMBED_DIM: usize = 384;

/// A batch of tokenized prompts padded to its longest member (row-major `[batch, seq_len]`).
///
/// Padding positions have `attention_mask == 0`; backends must keep them out of attention and
/// pooling so an embedding does not depend on which prompts shared its batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, `batch * seq_len`, padding filled with `[PAD]` (0).
    pub input_ids: Vec<u32>,
    /// 1 for a real token, 0 for padding, `batch * seq_len`.
    pub attention_mask: Vec<u32>,
    /// Number of prompts.
    pub batch: usize,
    /// Length of every row (the longest prompt's token count).
    pub seq_len: usize,
}

impl TokenBatch {
    /// Pads token id sequences (each with `[CLS]`/`[SEP]` already) into one batch.
    pub fn from_sequences<S: AsRef<[u32]>>(sequences: &[S]) -> Self {
        let batch = sequences.len();
        let seq_len = sequences
            .iter()
            .map(|s| s.as_ref().len())
            .max()
            .unwrap_or(0);
        let mut input_ids = vec![0u32; batch * seq_len];
        let mut attention_mask = vec![0u32; batch * seq_len];
        for (row, seq) in sequences.iter().enumerate() {
            let seq = seq.as_ref();
            let start = row * seq_len;
            input_ids[start..start + seq.len()].copy_from_slice(seq);
            attention_mask[start..start + seq.len()].fill(1);
        }
        Self {
            input_ids,
            attention_mask,
            batch,
            seq_len,
        }
    }

    /// Checks that the vectors have `batch * seq_len` entries.
    pub fn validate(&self) -> Result<(), EmbedError> {
        let n = self.batch * self.seq_len;
        if self.input_ids.len() != n || self.attention_mask.len() != n {
            return Err(EmbedError::InvalidBatch(format!(
                "batch {} x seq_len {} needs {n} ids and mask entries, got {} and {}",
                self.batch,
                self.seq_len,
                self.input_ids.len(),
                self.attention_mask.len()
            )));
        }
        Ok(())
    }
}

/// A device that turns token batches into sentence embeddings.
///
/// Implemented by the CPU and CUDA backends; the embedder thread owns exactly
/// one and never shares it, hence `Send` but not `Sync` and `&mut self`.
pub trait EmbedBackend: Send {
    /// Short name for logs and metrics (`"cpu"`, `"cuda"`).
    fn name(&self) -> &'static str;

    /// Embeds every row of `batch`: returns `batch.batch * EMBED_DIM` floats, row-major, each
    /// row mean-pooled over its mask and L2-normalized.
    fn embed(&mut self, batch: &TokenBatch) -> Result<Vec<f32>, EmbedError>;
}
