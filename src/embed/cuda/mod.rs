//! The CUDA backend of the embedder, and the device plumbing the GPU index shares.
//!
//! * [`probe`]: is there a usable CUDA device? (checks the libraries before any call, since
//!   cudarc panics instead of erroring when one is missing).
//! * [`kernels`]: the `kernels/*.cu` sources, embedded and compiled once per process by NVRTC.
//! * [`device`]: [`CudaDevice`], the owner of one context, stream, cuBLAS handle and the loaded
//!   kernels, with the GEMM wrapper (fp32, TF32 or fp16 tensor-core math).
//! * [`weights`]: the checkpoint uploaded to device memory.
//! * [`plan`]: the forward pass's GEMMs as data, with a CPU reference of what cuBLAS computes.
//! * [`forward`]: [`CudaBackend`], the forward pass over the padded batch.

pub mod device;
pub mod forward;
pub mod kernels;
pub mod plan;
pub mod probe;
pub mod weights;

pub use device::{CudaDevice, Gemm, Transpose};
pub use forward::CudaBackend;
pub use kernels::{compile, compile_all, KernelSource, KERNEL_SOURCES};
pub use probe::{probe, CudaUnavailable, DeviceInfo};

/// What can fail on the CUDA side; turned into [`super::EmbedError::Backend`] at the seam.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// No usable device or library (the reason says which).
    #[error("{0}")]
    Unavailable(#[from] CudaUnavailable),
    /// NVRTC rejected a kernel source.
    #[error("nvrtc compiling {file}: {message}")]
    Compile {
        /// The `kernels/` file.
        file: &'static str,
        /// NVRTC's log.
        message: String,
    },
    /// A CUDA driver call failed.
    #[error("cuda driver: {0}")]
    Driver(#[from] cudarc::driver::DriverError),
    /// A cuBLAS call failed.
    #[error("cublas: {0}")]
    Blas(String),
    /// Shapes that do not fit the buffers or 32-bit launch limits.
    #[error("shape: {0}")]
    Shape(String),
}

impl From<CudaError> for super::EmbedError {
    fn from(e: CudaError) -> Self {
        super::EmbedError::Backend(format!("cuda: {e}"))
    }
}
