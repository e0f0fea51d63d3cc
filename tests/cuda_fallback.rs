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
    let photo = fixtures().join("photos/cat_landscape.jpg");
    let mut args: Vec<std::ffi::OsString> =
        ["tag", "--device", "cuda", "--no-cache", "--model-dir"].map(Into::into).to_vec();
    args.extend([model_dir("eva_tiny").into_os_string(), photo.into_os_string()]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_evatag"))
        .args(&args)
        .env("LD_LIBRARY_PATH", std::env::join_paths(library_path).unwrap())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("CUDA")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("did not start") && warnings[0].contains("using the CPU"), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("stack"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().count() == 1 && stdout.contains("\"labels\""), "{stdout}");
}
