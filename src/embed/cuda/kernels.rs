//! The CUDA sources in `kernels/`, embedded in the binary, and their NVRTC compilation.

use std::sync::{Mutex, OnceLock};

use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

use super::CudaError;

/// One `kernels/*.cu` file and the `extern "C"` kernels it defines.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// File name under `kernels/`.
    pub file: &'static str,
    /// The source text.
    pub source: &'static str,
    /// Kernel entry points the host code loads from it.
    pub functions: &'static [&'static str],
}

/// The embedder's element-wise kernels.
pub const EMBED: KernelSource = KernelSource {
    file: "embed.cu",
    source: include_str!("../../../kernels/embed.cu"),
    functions: &[
        "embed_layernorm",
        "residual_bias_layernorm",
        "bias_gelu",
        "bias_add",
        "attention_softmax",
        "mean_pool_normalize",
    ],
};

/// The index search's top-k kernels.
pub const INDEX: KernelSource = KernelSource {
    file: "index.cu",
    source: include_str!("../../../kernels/index.cu"),
    functions: &["topk_partial", "topk_merge"],
};

/// Every kernel source; the CI check compiles all of them.
pub const KERNEL_SOURCES: &[KernelSource] = &[EMBED, INDEX];

/// Compiles one source to PTX for `arch` (e.g. `"sm_90"`). Needs libnvrtc (check
/// [`super::probe::nvrtc_present`] first: cudarc panics when it is missing).
pub fn compile(source: &KernelSource, arch: &'static str) -> Result<Ptx, CudaError> {
    let opts = CompileOptions {
        arch: Some(arch),
        // Exact division and sqrt, no flush-to-zero: the CPU backend's function up to rounding.
        prec_div: Some(true),
        prec_sqrt: Some(true),
        ftz: Some(false),
        use_fast_math: Some(false),
        name: Some(source.file.into()),
        ..Default::default()
    };
    compile_ptx_with_opts(source.source, opts).map_err(|e| CudaError::Compile {
        file: source.file,
        message: e.to_string(),
    })
}

/// Compiles every source for `arch`.
pub fn compile_all(arch: &'static str) -> Result<Vec<(KernelSource, Ptx)>, CudaError> {
    KERNEL_SOURCES
        .iter()
        .map(|s| compile(s, arch).map(|p| (*s, p)))
        .collect()
}

/// Compiled PTX text, keyed by (file, arch).
type PtxCache = Mutex<Vec<(&'static str, String, String)>>;

/// PTX text per (file, arch), compiled once per process and shared by every device user.
pub fn cached_ptx(source: &KernelSource, arch: &str) -> Result<Ptx, CudaError> {
    static CACHE: OnceLock<PtxCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, _, ptx)) = cache
        .iter()
        .find(|(f, a, _)| *f == source.file && a == arch)
    {
        return Ok(Ptx::from_src(ptx.clone()));
    }
    let arch_static = static_arch(arch);
    let ptx = compile(source, arch_static)?;
    cache.push((source.file, arch.to_string(), ptx.to_src()));
    Ok(ptx)
}

/// NVRTC wants a `&'static str`; map the architectures we know, else the Hopper baseline.
fn static_arch(arch: &str) -> &'static str {
    match arch {
        "sm_70" => "sm_70",
        "sm_75" => "sm_75",
        "sm_80" => "sm_80",
        "sm_86" => "sm_86",
        "sm_87" => "sm_87",
        "sm_89" => "sm_89",
        "sm_90" => "sm_90",
        "sm_100" => "sm_100",
        "sm_103" => "sm_103",
        "sm_120" => "sm_120",
        _ => "compute_75",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_function_is_defined_extern_c() {
        for s in KERNEL_SOURCES {
            for f in s.functions {
                let decl = format!("extern \"C\" __global__ void {f}(");
                assert!(s.source.contains(&decl), "{} lacks {f}", s.file);
            }
        }
    }

    #[test]
    fn unknown_arch_falls_back_to_portable_ptx() {
        assert_eq!(static_arch("sm_90"), "sm_90");
        assert_eq!(static_arch("sm_999"), "compute_75");
    }
}
