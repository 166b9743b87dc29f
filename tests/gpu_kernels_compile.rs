//! CI check without a GPU: every `kernels/*.cu` file compiles to PTX for sm_90 with NVRTC.
//!
//! NVRTC comes from the `nvidia-cuda-nvrtc` PyPI wheel that `scripts/test-deps.sh` installs
//! (or a CUDA toolkit). The library is found, in order, through `INFERGATE_NVRTC_DIR`, the
//! Python `nvidia` package (`nvidia/cu13/lib`), then the system loader path. When none loads,
//! the test FAILS: this check must never pass silently.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::path::PathBuf;
use std::process::Command;

use infergate::embed::cuda::{kernels, probe};

/// Folders that may hold libnvrtc.so.13, best first.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("INFERGATE_NVRTC_DIR") {
        dirs.push(PathBuf::from(d));
    }
    let py = Command::new("python3")
        .args([
            "-c",
            "import nvidia, os; [print(os.path.join(p, 'cu13', 'lib')) for p in nvidia.__path__]",
        ])
        .output();
    if let Ok(out) = py {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            dirs.push(PathBuf::from(line.trim()));
        }
    }
    dirs.push(PathBuf::from("/usr/local/cuda/lib64"));
    dirs
}

fn load_nvrtc() -> String {
    if probe::nvrtc_present() {
        return "system loader path".into();
    }
    let mut tried = Vec::new();
    for dir in candidate_dirs() {
        match probe::preload_nvrtc_from(&dir) {
            Ok(libs) if probe::nvrtc_present() => return format!("{libs:?}"),
            Ok(libs) => tried.push(format!(
                "{}: loaded {libs:?} but cudarc still misses it",
                dir.display()
            )),
            Err(e) => tried.push(e.to_string()),
        }
    }
    panic!(
        "NVRTC cannot be loaded, so the CUDA kernels cannot be checked. Install it with \
         scripts/test-deps.sh (pip install nvidia-cuda-nvrtc) or set INFERGATE_NVRTC_DIR. Tried: {tried:#?}"
    );
}

#[test]
fn every_kernel_compiles_to_ptx_for_sm_90() {
    let from = load_nvrtc();
    println!("nvrtc loaded from {from}");
    let (mut major, mut minor) = (0, 0);
    // SAFETY: nvrtc is loaded (checked above); the call writes two ints.
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    println!("nvrtc version {major}.{minor}");
    let mut failures = Vec::new();
    for source in kernels::KERNEL_SOURCES {
        match kernels::compile(source, "sm_90") {
            Ok(ptx) => {
                let text = ptx.to_src();
                for f in source.functions {
                    if !text.contains(&format!(".entry {f}(")) {
                        failures.push(format!("{}: no .entry {f} in the PTX", source.file));
                    }
                }
                println!(
                    "{}: {} bytes of PTX, entries {:?}",
                    source.file,
                    text.len(),
                    source.functions
                );
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "kernel compile failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_broken_kernel_is_reported_not_swallowed() {
    load_nvrtc();
    let broken = kernels::KernelSource {
        file: "broken.cu",
        source: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        functions: &["k"],
    };
    let err = kernels::compile(&broken, "sm_90").unwrap_err().to_string();
    assert!(
        err.contains("broken.cu") && err.contains("undefined_name"),
        "{err}"
    );
}
