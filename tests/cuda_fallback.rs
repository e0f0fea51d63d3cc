//! The CUDA build where no GPU can be used. Run with the stub driver of
//! `packaging/cuda/toolkit.sh --link` (every driver call fails, as where the driver finds no
//! GPU): `--device cuda` tags on the CPU after one line that says why, with no backtrace.
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
