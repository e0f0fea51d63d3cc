//! The CUDA build without a GPU: its kernels are PTX that every supported driver loads, and with
//! the stub driver of `packaging/cuda/toolkit.sh --link` (every driver call fails, as where the
//! driver finds no GPU) `--device cuda` tags on the CPU after one line that says why, with no
//! backtrace.
#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used, reason = "a test that unwraps fails, which is what it should do")]

mod common;

use common::*;

#[test]
fn without_a_usable_gpu_the_cuda_build_tags_on_the_cpu_after_one_line() {
    let stub = std::env::var_os("EVATAG_CUDA_STUB")
        .expect("EVATAG_CUDA_STUB names the stub driver's folder: eval \"$(packaging/cuda/toolkit.sh --link)\"");
    let mut library_path = vec![std::path::PathBuf::from(stub)];
    library_path.extend(std::env::split_paths(&std::env::var_os("LD_LIBRARY_PATH").unwrap_or_default()));
    let library_path = std::env::join_paths(library_path).unwrap();
    let warning = cuda_fallback_line(&[("LD_LIBRARY_PATH", &library_path)]);
    assert!(warning.contains("did not start"), "{warning}");
}

/// The driver compiles the kernels' PTX at first use and refuses PTX of a newer ISA than its own
/// CUDA version knows: the oldest driver the package accepts, 580 (CUDA 13.0), knows ISA 9.0.
/// A toolkit newer than 13.0 writes a newer ISA, and every kernel would then fail to load there.
#[test]
fn the_kernels_ptx_loads_on_the_oldest_supported_driver() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_evatag")).unwrap();
    let mut versions: Vec<(u32, u32)> = binary
        .split(|&byte| byte == b'\n')
        .filter_map(|line| line.strip_prefix(b".version "))
        .filter_map(|rest| {
            let text = std::str::from_utf8(rest).ok()?;
            let (major, minor) = text.trim().split_once('.')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        })
        .collect();
    versions.sort_unstable();
    versions.dedup();
    assert!(!versions.is_empty(), "no PTX found in the CUDA build");
    let newest = versions.last().unwrap();
    assert!(*newest <= (9, 0), "PTX ISA {newest:?} is newer than driver 580 compiles (9.0): {versions:?}");
}
