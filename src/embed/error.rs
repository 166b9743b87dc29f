//! The one error type of the embedder, so callers (the cache, the CLI, the HTTP layer) can map
//! each failure to a status in one place.

use std::path::PathBuf;

/// Everything that can go wrong between a prompt and its embedding.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model directory lacks files; the message lists them and says how to get them.
    #[error("model directory {dir} is missing {missing}: run scripts/fetch-model.sh {dir}")]
    MissingModelFiles {
        /// The directory that was checked.
        dir: PathBuf,
        /// The missing files, comma separated.
        missing: String,
    },
    /// A model file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `tokenizer.json` could not be loaded or a text could not be tokenized.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// `model.safetensors` is not the model we expect (missing tensor, wrong shape or dtype).
    #[error("weights: {0}")]
    Weights(String),
    /// A batch handed to a backend is malformed (lengths disagree, token id out of range).
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The configuration asks for something this build cannot do (e.g. `backend = "cuda"`).
    #[error("config: {0}")]
    Config(String),
    /// The backend failed on a batch; every prompt of that batch gets this message.
    #[error("backend: {0}")]
    Backend(String),
    /// The embedder's queue already holds this many prompts; the new one was refused at once
    /// rather than left to wait behind them (`[embedder] max_queue`).
    #[error("embedder queue is full ({0} prompts waiting)")]
    QueueFull(usize),
    /// The embedder thread is gone (stopped or crashed), so no answer will come.
    #[error("embedder thread is not running")]
    Stopped,
    /// The embedder thread could not be started.
    #[error("cannot start embedder thread: {0}")]
    Spawn(std::io::Error),
    /// The CLI could not read its input or write its output.
    #[error("cli: {0}")]
    Cli(String),
}
