//! [`CudaDevice`]: one CUDA context, one stream, one cuBLAS handle and the loaded kernels.
//!
//! Everything runs on that one stream, so cudarc's per-buffer event tracking is switched off
//! and buffers are passed to kernels and cuBLAS as raw device pointers. The context is bound
//! to the calling thread by [`CudaDevice::bind`], which the owners call at the top of every
//! operation: the embedder creates its backend on the thread that starts it, then uses it on
//! the embedder thread.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cublasStatus_t, cudaDataType,
};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg, ValidAsZeroBits,
};

use super::kernels::{cached_ptx, KernelSource};
use super::probe::{probe, DeviceInfo};
use super::CudaError;
use crate::embed::config::Precision;

/// Whether cuBLAS reads an operand transposed (column-major convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transpose {
    /// As stored.
    No,
    /// Transposed.
    Yes,
}

/// A strided-batched GEMM in cuBLAS's column-major terms:
/// `C[i] = alpha * op(A[i]) op(B[i])` with `C[i]` `m x n`, for `i < batch`.
#[derive(Debug, Clone, Copy)]
pub struct Gemm {
    /// op(A).
    pub ta: Transpose,
    /// op(B).
    pub tb: Transpose,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Leading dimension of A.
    pub lda: usize,
    /// Leading dimension of B.
    pub ldb: usize,
    /// Leading dimension of C.
    pub ldc: usize,
    /// Elements between consecutive A matrices.
    pub stride_a: usize,
    /// Elements between consecutive B matrices.
    pub stride_b: usize,
    /// Elements between consecutive C matrices.
    pub stride_c: usize,
    /// Number of matrices.
    pub batch: usize,
    /// Scale of the product.
    pub alpha: f32,
}

impl Gemm {
    /// A single (unbatched) GEMM.
    #[allow(clippy::too_many_arguments)]
    pub fn single(
        ta: Transpose,
        tb: Transpose,
        m: usize,
        n: usize,
        k: usize,
        lda: usize,
        ldb: usize,
        ldc: usize,
    ) -> Self {
        Self {
            ta,
            tb,
            m,
            n,
            k,
            lda,
            ldb,
            ldc,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
            batch: 1,
            alpha: 1.0,
        }
    }
}

/// One device's context, stream, cuBLAS handle and kernels.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    precision: Precision,
    functions: HashMap<&'static str, CudaFunction>,
    info: DeviceInfo,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("info", &self.info)
            .field("precision", &self.precision)
            .finish()
    }
}

fn blas_ok(status: cublasStatus_t, what: &str) -> Result<(), CudaError> {
    if status == cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(CudaError::Blas(format!("{what}: {status:?}")))
    }
}

fn int(v: usize, what: &str) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Shape(format!("{what} = {v} exceeds i32")))
}

impl CudaDevice {
    /// Probes, opens device 0, creates a stream and a cuBLAS handle, and loads `sources`
    /// (compiled by NVRTC for this device's architecture, once per process).
    pub fn open(precision: Precision, sources: &[KernelSource]) -> Result<Self, CudaError> {
        let info = probe()?;
        let ctx = CudaContext::new(0)?;
        ctx.bind_to_thread()?;
        // SAFETY: every buffer of this device is used on the one stream created below, so
        // ordering on that stream replaces per-buffer events.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let blas =
            CudaBlas::new(Arc::clone(&stream)).map_err(|e| CudaError::Blas(e.to_string()))?;
        let mut functions = HashMap::new();
        let arch = info.arch();
        for source in sources {
            let module = ctx.load_module(cached_ptx(source, &arch)?)?;
            for name in source.functions {
                functions.insert(*name, module.load_function(name)?);
            }
        }
        Ok(Self {
            ctx,
            stream,
            blas,
            precision,
            functions,
            info,
        })
    }

    /// What the probe found.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The GEMM precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Makes this device's context current on the calling thread.
    pub fn bind(&self) -> Result<(), CudaError> {
        Ok(self.ctx.bind_to_thread()?)
    }

    /// The stream every operation runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// A loaded kernel by name.
    pub fn function(&self, name: &str) -> Result<&CudaFunction, CudaError> {
        self.functions
            .get(name)
            .ok_or_else(|| CudaError::Shape(format!("kernel {name} not loaded")))
    }

    /// Allocates `len` zeroed elements.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> Result<CudaSlice<T>, CudaError> {
        Ok(self.stream.alloc_zeros(len.max(1))?)
    }

    /// Copies a host slice into a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>, CudaError> {
        Ok(self.stream.clone_htod(host)?)
    }

    /// Copies `host` into `dst` starting at element `offset`.
    pub fn upload_at<T: DeviceRepr>(
        &self,
        host: &[T],
        dst: &mut CudaSlice<T>,
        offset: usize,
    ) -> Result<(), CudaError> {
        let end = offset + host.len();
        let mut view = dst
            .try_slice_mut(offset..end)
            .ok_or_else(|| CudaError::Shape(format!("upload {offset}..{end} out of bounds")))?;
        Ok(self.stream.memcpy_htod(host, &mut view)?)
    }

    /// Copies the first `len` elements of `src` back to the host (synchronizes the stream).
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        src: &CudaSlice<T>,
        len: usize,
    ) -> Result<Vec<T>, CudaError> {
        let view = src
            .try_slice(..len)
            .ok_or_else(|| CudaError::Shape(format!("download of {len} out of bounds")))?;
        let mut out = vec![T::default(); len];
        self.stream.memcpy_dtoh(&view, &mut out)?;
        self.stream.synchronize()?;
        Ok(out)
    }

    /// The raw device address of `s` (valid while `s` lives; event tracking is off).
    pub fn ptr<T>(&self, s: &CudaSlice<T>) -> u64 {
        let (p, _sync) = s.device_ptr(&self.stream);
        p
    }

    /// Launches kernel `name` with `cfg` and the 8-byte or 4-byte scalar `args` in order.
    ///
    /// # Safety
    /// The arguments must match the kernel's parameter list, and every pointer must address
    /// device memory of this context large enough for what the kernel touches.
    pub unsafe fn launch(
        &self,
        name: &str,
        cfg: LaunchConfig,
        args: &[KernelArg],
    ) -> Result<(), CudaError> {
        let f = self.function(name)?;
        let mut builder = self.stream.launch_builder(f);
        for a in args {
            match a {
                KernelArg::Ptr(p) => builder.arg(p),
                KernelArg::I32(v) => builder.arg(v),
                KernelArg::I64(v) => builder.arg(v),
                KernelArg::F32(v) => builder.arg(v),
            };
        }
        // SAFETY: upheld by the caller (see above).
        unsafe { builder.launch(cfg) }?;
        Ok(())
    }

    /// Runs `g` on the device pointers `a`, `b`, `c` with this device's precision:
    /// fp32 (`CUBLAS_COMPUTE_32F`), TF32 tensor cores (`..._FAST_TF32`) or fp16 tensor cores
    /// with fp32 accumulation (`..._FAST_16F`: inputs rounded to fp16 inside cuBLAS).
    ///
    /// # Safety
    /// `a`, `b`, `c` must address fp32 device memory of this context covering every element
    /// `g` reads or writes.
    pub unsafe fn gemm(&self, g: &Gemm, a: u64, b: u64, c: u64) -> Result<(), CudaError> {
        let op = |t: Transpose| match t {
            Transpose::No => cublasOperation_t::CUBLAS_OP_N,
            Transpose::Yes => cublasOperation_t::CUBLAS_OP_T,
        };
        let compute = match self.precision {
            Precision::Fp32 => cublasComputeType_t::CUBLAS_COMPUTE_32F,
            Precision::Tf32 => cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
            Precision::Fp16 => cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_16F,
        };
        let beta = 0f32;
        let f32t = cudaDataType::CUDA_R_32F;
        let stride = |s: usize| i64::try_from(s).unwrap_or(i64::MAX);
        // SAFETY: pointers upheld by the caller; alpha/beta live across the call.
        let status = unsafe {
            cudarc::cublas::sys::cublasGemmStridedBatchedEx(
                *self.blas.handle(),
                op(g.ta),
                op(g.tb),
                int(g.m, "m")?,
                int(g.n, "n")?,
                int(g.k, "k")?,
                (&g.alpha as *const f32).cast(),
                a as *const std::ffi::c_void,
                f32t,
                int(g.lda, "lda")?,
                stride(g.stride_a),
                b as *const std::ffi::c_void,
                f32t,
                int(g.ldb, "ldb")?,
                stride(g.stride_b),
                (&beta as *const f32).cast(),
                c as *mut std::ffi::c_void,
                f32t,
                int(g.ldc, "ldc")?,
                stride(g.stride_c),
                int(g.batch, "batch")?,
                compute,
                cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        blas_ok(status, "cublasGemmStridedBatchedEx")
    }

    /// Waits for everything queued on the stream.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        Ok(self.stream.synchronize()?)
    }
}

/// A kernel argument for [`CudaDevice::launch`].
#[derive(Debug, Clone, Copy)]
pub enum KernelArg {
    /// A device pointer.
    Ptr(u64),
    /// `int`.
    I32(i32),
    /// `long long`.
    I64(i64),
    /// `float`.
    F32(f32),
}

/// One block of `threads` per row, `rows` rows.
pub fn rows_config(rows: usize, threads: u32) -> Result<LaunchConfig, CudaError> {
    let rows = u32::try_from(rows).map_err(|_| CudaError::Shape(format!("{rows} rows")))?;
    Ok(LaunchConfig {
        grid_dim: (rows.max(1), 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    })
}
