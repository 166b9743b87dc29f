//! The embedder: all-MiniLM-L6-v2 sentence embeddings for the semantic cache.
//!
//! * [`tokenize`]: text to token ids, exactly as sentence-transformers does (256-token cut).
//! * [`weights`]: the checkpoint from `model.safetensors`, laid out for the CPU pass.
//! * [`cpu`]: the BERT forward pass on the CPU ([`CpuBackend`]).
//! * [`backend`]: the [`EmbedBackend`] trait both backends implement.
//! * [`cuda`]: the forward pass on a CUDA GPU ([`CudaBackend`]: NVRTC kernels + cuBLAS).
//! * [`batcher`]: the thread that owns the backend and batches prompts from the shards, behind
//!   a bounded queue.
//! * [`job`]: what the thread does with each embedding ([`EmbedJob`]), so callers such as the
//!   semantic cache run their work on that thread without this module depending on them.
//! * [`cli`]: `infergate embed`, JSON lines in, token ids and vectors out.
//!
//! The model files come from `scripts/fetch-model.sh`; the port is checked against the
//! reference vectors in `shared/reference/minilm/` by `tests/embed_reference.rs`.

pub mod backend;
pub mod batcher;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod cuda;
mod error;
#[cfg(test)]
pub(crate) mod fakes;
pub mod job;
pub mod model_dir;
mod ops;
pub mod tokenize;
pub mod weights;

pub use backend::{EmbedBackend, TokenBatch, EMBED_DIM};
pub use batcher::{
    Embedder, EmbedderHandle, EmbedderStats, Embedding, Tokenize, BATCH_SIZE_BUCKETS,
};
pub use cli::{embed_lines, run_embed_cli, EmbedCliArgs};
pub use config::{
    open_backend, open_backend_for, open_backend_with, BackendKind, EmbedderConfig, OpenedBackend,
    Precision,
};
pub use cpu::CpuBackend;
pub use cuda::CudaBackend;
pub use error::EmbedError;
pub use job::EmbedJob;
pub use model_dir::{ModelDir, DEFAULT_MODEL_DIR};
pub use tokenize::{TextTokenizer, Tokens, MAX_TOKENS};
