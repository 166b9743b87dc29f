//! The `[embedder]` section of the gateway config and the choice of backend it implies.

use std::path::PathBuf;

use serde::Deserialize;

use super::{CpuBackend, EmbedBackend, EmbedError, ModelDir, DEFAULT_MODEL_DIR};

/// Which device runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// CUDA when available, else CPU (today: always CPU, the CUDA backend is not built yet).
    #[default]
    Auto,
    /// The CPU forward pass.
    Cpu,
    /// The CUDA forward pass (a later issue).
    Cuda,
}

/// Settings of the embedder thread (`[embedder]` in the gateway's TOML config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// Directory with `model.safetensors` and `tokenizer.json` (see `scripts/fetch-model.sh`).
    pub model_dir: PathBuf,
    /// Which device runs the model.
    pub backend: BackendKind,
    /// Most prompts in one forward pass.
    #[serde(alias = "batch_size")]
    pub max_batch: usize,
    /// How long the thread waits for more prompts after the first one arrives, in
    /// microseconds: the latency a lone prompt may pay to let a batch form.
    pub max_wait_us: u64,
    /// Threads a CPU GEMM may use; the embedder shares the machine with the shards, so 1 or 2.
    pub cpu_threads: usize,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::from(DEFAULT_MODEL_DIR),
            backend: BackendKind::Auto,
            max_batch: 32,
            max_wait_us: 500,
            cpu_threads: 1,
        }
    }
}

/// Opens the backend `kind` asks for on the model in `model`.
pub fn open_backend(
    kind: BackendKind,
    model: &ModelDir,
    cpu_threads: usize,
) -> Result<Box<dyn EmbedBackend>, EmbedError> {
    match kind {
        BackendKind::Auto | BackendKind::Cpu => {
            Ok(Box::new(CpuBackend::load(model, cpu_threads.max(1))?))
        }
        BackendKind::Cuda => Err(EmbedError::Config(
            "backend \"cuda\" is not available in this build; use \"cpu\" or \"auto\"".into(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn toml_section_parses_with_defaults() {
        let cfg: EmbedderConfig =
            toml::from_str("model_dir = \"/m\"\nbackend = \"cpu\"\nmax_batch = 8\n").unwrap();
        assert_eq!(cfg.model_dir, PathBuf::from("/m"));
        assert_eq!(cfg.backend, BackendKind::Cpu);
        assert_eq!(cfg.max_batch, 8);
        assert_eq!(cfg.max_wait_us, 500);
        let cfg: EmbedderConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, EmbedderConfig::default());
        assert!(toml::from_str::<EmbedderConfig>("backend = \"tpu\"").is_err());
        assert!(toml::from_str::<EmbedderConfig>("max_batchh = 3").is_err());
    }
}
