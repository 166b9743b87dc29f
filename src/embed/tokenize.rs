//! Text to token ids exactly as sentence-transformers feeds all-MiniLM-L6-v2.
//!
//! The shipped `tokenizer.json` truncates at 128 and pads to a fixed 128; sentence-transformers
//! overrides both (truncate at 256, pad per batch). Loading the file as is would cut long prompts
//! and change their embeddings, so both settings are replaced here.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use super::EmbedError;

/// Longest model input in tokens, `[CLS]` and `[SEP]` included (the model's `max_seq_length`).
pub const MAX_TOKENS: usize = 256;

/// One tokenized prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// Ids fed to the model, with `[CLS]`/`[SEP]`, at most [`MAX_TOKENS`].
    pub ids: Vec<u32>,
    /// Whether the prompt was longer than [`MAX_TOKENS`] and was cut: prompts that differ only
    /// after the cut get identical embeddings.
    pub truncated: bool,
}

/// The WordPiece tokenizer of all-MiniLM-L6-v2, set up for 256-token truncation, no padding.
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and replaces its truncation (128) and fixed padding.
    pub fn from_file(path: &Path) -> Result<Self, EmbedError> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| EmbedError::Tokenizer(format!("{}: {e}", path.display())))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Tokenizes one text as is (no trimming or normalization beyond the tokenizer's own).
    pub fn encode(&self, text: &str) -> Result<Tokens, EmbedError> {
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(Tokens {
            truncated: !encoding.get_overflowing().is_empty(),
            ids: encoding.get_ids().to_vec(),
        })
    }
}
