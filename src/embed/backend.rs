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
        // Rows of `seq_len` (no row when it is 0: every sequence is empty, nothing to copy).
        let rows = input_ids
            .chunks_exact_mut(seq_len.max(1))
            .zip(attention_mask.chunks_exact_mut(seq_len.max(1)));
        for ((ids, mask), seq) in rows.zip(sequences) {
            for ((id, m), &token) in ids.iter_mut().zip(mask).zip(seq.as_ref()) {
                *id = token;
                *m = 1;
            }
        }
        Self {
            input_ids,
            attention_mask,
            batch,
            seq_len,
        }
    }

    /// The token ids and mask of row `row`; an error past the end of the vectors (which a
    /// batch that passed [`TokenBatch::validate`] has for no row below `batch`).
    pub(crate) fn row(&self, row: usize) -> Result<(&[u32], &[u32]), EmbedError> {
        let cols = row * self.seq_len..(row + 1) * self.seq_len;
        match (
            self.input_ids.get(cols.clone()),
            self.attention_mask.get(cols),
        ) {
            (Some(ids), Some(mask)) => Ok((ids, mask)),
            _ => Err(EmbedError::InvalidBatch(format!(
                "row {row} is outside a batch of {} ids and {} mask entries",
                self.input_ids.len(),
                self.attention_mask.len()
            ))),
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
