//! The `[embedder]` section of the gateway config and the choice of backend it implies.

use std::path::PathBuf;

use serde::Deserialize;

use super::cuda::{probe, CudaBackend};
use super::{CpuBackend, EmbedBackend, EmbedError, ModelDir, DEFAULT_MODEL_DIR};

/// Which device runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// CUDA when a device and its libraries are there, else CPU (the reason is logged).
    #[default]
    Auto,
    /// The CPU forward pass.
    Cpu,
    /// The CUDA forward pass; an error where there is no usable device.
    Cuda,
}

/// Arithmetic of the CUDA backend's GEMMs (element-wise kernels are always fp32; the CPU
/// backend is always fp32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE fp32 GEMMs: the CPU backend's function up to rounding (cosine >= 0.9999).
    #[default]
    Fp32,
    /// TF32 tensor-core GEMMs (10-bit mantissa inputs, fp32 accumulation).
    Tf32,
    /// fp16 tensor-core GEMMs with fp32 accumulation (cosine >= 0.999 expected).
    Fp16,
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
    /// GEMM precision of the CUDA backend: `"fp32"` (default), `"tf32"` or `"fp16"`.
    #[serde(default)]
    pub precision: Precision,
    /// Most prompts waiting for the embedder thread. A lookup that finds the queue full
    /// bypasses the semantic cache at once (and is counted) instead of queueing behind work
    /// that would answer after its deadline; 0 is taken as 1.
    pub max_queue: usize,
    /// How long a request waits for the semantic cache's decision, in milliseconds, before it
    /// goes upstream without it: the most latency the semantic cache adds to a miss (an
    /// upstream completion takes hundreds of milliseconds or more). The default, 200, leaves
    /// the CPU backend room for a 256-token prompt (~55 ms) behind a few others; on CUDA the
    /// decision takes a few milliseconds and the deadline only cuts in under overload. 0 is
    /// taken as 1.
    pub lookup_timeout_ms: u64,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            model_dir: PathBuf::from(DEFAULT_MODEL_DIR),
            backend: BackendKind::Auto,
            max_batch: 32,
            max_wait_us: 500,
            cpu_threads: 1,
            precision: Precision::Fp32,
            max_queue: 1024,
            lookup_timeout_ms: 200,
        }
    }
}

/// A backend and why it was chosen, for the gateway's start-up log.
pub struct OpenedBackend {
    /// The backend, ready for the embedder thread.
    pub backend: Box<dyn EmbedBackend>,
    /// One line: which backend runs and why (e.g. `"cpu: no CUDA: cannot load libcuda"`).
    pub reason: String,
}

impl std::fmt::Debug for OpenedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedBackend")
            .field("backend", &self.backend.name())
            .field("reason", &self.reason)
            .finish()
    }
}

/// Opens the backend `kind` asks for on the model in `model` (fp32 GEMMs on CUDA); see
/// [`open_backend_with`] for the precision and the reason of the choice.
pub fn open_backend(
    kind: BackendKind,
    model: &ModelDir,
    cpu_threads: usize,
) -> Result<Box<dyn EmbedBackend>, EmbedError> {
    open_backend_with(kind, Precision::Fp32, model, cpu_threads).map(|o| o.backend)
}

/// Opens the backend of an `[embedder]` config section.
pub fn open_backend_for(
    config: &EmbedderConfig,
    model: &ModelDir,
) -> Result<OpenedBackend, EmbedError> {
    open_backend_with(config.backend, config.precision, model, config.cpu_threads)
}

/// Opens a backend: `Cpu` always works, `Cuda` fails where there is no usable device, `Auto`
/// probes CUDA (libraries first: nothing is called that could panic) and falls back to the
/// CPU with the probe's reason. Logs and returns which backend runs and why.
///
/// The CUDA context is created on the calling thread; the backend binds it to whichever thread
/// later calls `embed` (the embedder thread).
pub fn open_backend_with(
    kind: BackendKind,
    precision: Precision,
    model: &ModelDir,
    cpu_threads: usize,
) -> Result<OpenedBackend, EmbedError> {
    let cpu = |why: String| -> Result<OpenedBackend, EmbedError> {
        let backend: Box<dyn EmbedBackend> = Box::new(CpuBackend::load(model, cpu_threads.max(1))?);
        Ok(OpenedBackend {
            backend,
            reason: format!("cpu: {why}"),
        })
    };
    let opened = match kind {
        BackendKind::Cpu => cpu("backend = \"cpu\" in the config".into())?,
        BackendKind::Cuda => {
            let info = probe().map_err(|e| {
                EmbedError::Config(format!("backend \"cuda\" cannot run here: {e}"))
            })?;
            OpenedBackend {
                backend: Box::new(CudaBackend::load(model, precision)?),
                reason: format!(
                    "cuda: backend = \"cuda\" in the config; {} ({}), {precision:?} GEMMs",
                    info.name,
                    info.arch()
                ),
            }
        }
        BackendKind::Auto => match probe() {
            Err(e) => cpu(format!("backend = \"auto\" and {e}"))?,
            Ok(info) => match CudaBackend::load(model, precision) {
                Ok(b) => OpenedBackend {
                    backend: Box::new(b),
                    reason: format!(
                        "cuda: backend = \"auto\" found {} ({}), {precision:?} GEMMs",
                        info.name,
                        info.arch()
                    ),
                },
                Err(e) => cpu(format!(
                    "backend = \"auto\" found {} but the CUDA backend failed to start: {e}",
                    info.name
                ))?,
            },
        },
    };
    tracing::info!(backend = opened.backend.name(), reason = %opened.reason, "embedder backend");
    Ok(opened)
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
        assert_eq!(cfg.precision, Precision::Fp32);
        let cfg: EmbedderConfig = toml::from_str("precision = \"fp16\"").unwrap();
        assert_eq!(cfg.precision, Precision::Fp16);
        let cfg: EmbedderConfig = toml::from_str("precision = \"tf32\"").unwrap();
        assert_eq!(cfg.precision, Precision::Tf32);
        assert!(toml::from_str::<EmbedderConfig>("precision = \"bf16\"").is_err());
        assert_eq!((cfg.max_queue, cfg.lookup_timeout_ms), (1024, 200));
        let cfg: EmbedderConfig =
            toml::from_str("max_queue = 64\nlookup_timeout_ms = 120\n").unwrap();
        assert_eq!((cfg.max_queue, cfg.lookup_timeout_ms), (64, 120));
    }
}
