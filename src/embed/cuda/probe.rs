//! Finds out, without panicking, whether this process can use a CUDA device.
//!
//! cudarc 0.19 with dynamic loading panics on the first call into a library it cannot load, so
//! every library is checked with its `is_culib_present` first; only then is the driver asked
//! for devices.

use cudarc::driver::CudaContext;

/// Why the CUDA backend cannot run here; the message goes into the start-up log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CudaUnavailable(pub String);

/// The device the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device name from the driver (e.g. "NVIDIA H100 80GB HBM3").
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Number of CUDA devices visible.
    pub device_count: i32,
}

impl DeviceInfo {
    /// The NVRTC architecture flag for this device, e.g. `"sm_90"`.
    pub fn arch(&self) -> String {
        format!(
            "sm_{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }
}

/// Whether the NVRTC library can be loaded (what the kernel compile needs, GPU or not).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries dlopen on the candidate names; no symbol is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Loads NVRTC from `dir` (e.g. the `nvidia/cu13/lib` folder of the `nvidia-cuda-nvrtc` PyPI
/// wheel) so that cudarc, which loads libraries by name, finds it without `LD_LIBRARY_PATH`.
///
/// Every `libnvrtc*.so*` of `dir` is opened by full path with `RTLD_GLOBAL`, builtins first;
/// the dynamic loader then answers cudarc's `dlopen("libnvrtc.so.13")` with the library already
/// loaded under that soname. The handles stay open for the life of the process. Returns the
/// files loaded.
pub fn preload_nvrtc_from(
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, CudaUnavailable> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CudaUnavailable(format!("cannot list {}: {e}", dir.display())))?;
    let mut libs: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc") && n.contains(".so"))
        })
        .collect();
    // Builtins first: libnvrtc opens them when it compiles.
    libs.sort_by_key(|p| !p.to_string_lossy().contains("builtins"));
    if !libs
        .iter()
        .any(|p| !p.to_string_lossy().contains("builtins"))
    {
        return Err(CudaUnavailable(format!(
            "no libnvrtc.so* in {}",
            dir.display()
        )));
    }
    for lib in &libs {
        let c = std::ffi::CString::new(lib.as_os_str().as_encoded_bytes())
            .map_err(|_| CudaUnavailable(format!("bad path {}", lib.display())))?;
        // SAFETY: dlopen of a shared library by path; the handle is deliberately kept open.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            return Err(CudaUnavailable(format!("dlopen {} failed", lib.display())));
        }
    }
    Ok(libs)
}

/// Checks the driver, NVRTC and cuBLAS libraries, then asks for device 0.
pub fn probe() -> Result<DeviceInfo, CudaUnavailable> {
    // SAFETY: each check only tries to dlopen the library; nothing is called through it.
    let (driver, nvrtc, cublas) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
        )
    };
    let missing: Vec<&str> = [
        (driver, "libcuda (NVIDIA driver)"),
        (nvrtc, "libnvrtc"),
        (cublas, "libcublas"),
    ]
    .iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, name)| *name)
    .collect();
    if !missing.is_empty() {
        return Err(CudaUnavailable(format!(
            "no CUDA: cannot load {}",
            missing.join(", ")
        )));
    }
    let count = CudaContext::device_count()
        .map_err(|e| CudaUnavailable(format!("no CUDA: driver error counting devices: {e}")))?;
    if count < 1 {
        return Err(CudaUnavailable("no CUDA device".into()));
    }
    let ctx = CudaContext::new(0)
        .map_err(|e| CudaUnavailable(format!("no CUDA: cannot open device 0: {e}")))?;
    let name = ctx.name().unwrap_or_else(|_| "unknown CUDA device".into());
    let compute_capability = ctx
        .compute_capability()
        .map_err(|e| CudaUnavailable(format!("no CUDA: compute capability: {e}")))?;
    Ok(DeviceInfo {
        name,
        compute_capability,
        device_count: count,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn probe_never_panics_and_names_the_reason() {
        match probe() {
            Ok(info) => assert!(info.device_count >= 1 && info.arch().starts_with("sm_")),
            Err(e) => assert!(e.0.contains("CUDA"), "{e}"),
        }
    }

    #[test]
    fn arch_string() {
        let info = DeviceInfo {
            name: "x".into(),
            compute_capability: (9, 0),
            device_count: 1,
        };
        assert_eq!(info.arch(), "sm_90");
    }
}
