//! Build script: links Intel oneMKL for the `mkl` feature, and gives `evatag.exe` its icon
//! and version information on Windows.
//!
//! Needs `winresource` in `[build-dependencies]`. Whether to embed is decided by the
//! target (`CARGO_CFG_TARGET_OS`), not by `cfg!(windows)`, which describes the machine the
//! build script runs on; so cross builds from Linux work too, given a mingw-w64 `windres`.
//! Other targets do nothing here.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/icons/evatag.ico");

    if env::var_os("CARGO_FEATURE_MKL").is_some() {
        link_mkl();
    }

    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }

    let version = env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let mut res = winresource::WindowsResource::new();
    // Icon id 1: Explorer, the taskbar and shortcuts show the executable's first icon.
    res.set_icon("assets/icons/evatag.ico")
        .set("ProductName", "evatag")
        // Windows shows FileDescription as the program's name (Task Manager, "Open with").
        .set("FileDescription", "evatag")
        .set("CompanyName", "The evatag developers")
        .set("LegalCopyright", "Copyright (c) The evatag developers. MIT OR Apache-2.0.")
        .set("OriginalFilename", "evatag.exe")
        .set("InternalName", "evatag")
        .set("ProductVersion", &version)
        .set("FileVersion", &version);
    // Link the resources into the evatag binary only, not into tests or examples.
    if let Err(e) = res.compile_for("evatag") {
        panic!("embedding the Windows icon and version information failed: {e}");
    }
}

/// Links oneMKL's sequential BLAS statically (x86-64 Linux), so the binary needs no MKL at run
/// time. The static libraries come from `MKL_LIB_DIR`, or `$MKLROOT/lib`; the `mkl-static`
/// package on PyPI provides them.
fn link_mkl() {
    println!("cargo:rerun-if-env-changed=MKL_LIB_DIR");
    println!("cargo:rerun-if-env-changed=MKLROOT");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64")
    {
        panic!("the `mkl` feature is supported on x86-64 Linux only");
    }
    let candidates = env::var_os("MKL_LIB_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(env::var_os("MKLROOT").map(|root| PathBuf::from(root).join("lib")));
    let libraries = ["mkl_intel_lp64", "mkl_sequential", "mkl_core"];
    let Some(dir) = candidates.into_iter().find(|dir| dir.join("libmkl_core.a").is_file()) else {
        panic!(
            "the `mkl` feature needs oneMKL's static libraries (libmkl_core.a and others): set MKL_LIB_DIR to \
             their folder, e.g. after `pip install mkl-static` the `lib` folder of that Python environment"
        );
    };
    // The three archives refer to each other, so they are linked as one group.
    println!("cargo:rustc-link-arg=-Wl,--start-group");
    for library in libraries {
        println!("cargo:rustc-link-arg={}", dir.join(format!("lib{library}.a")).display());
    }
    println!("cargo:rustc-link-arg=-Wl,--end-group");
    for system in ["pthread", "m", "dl"] {
        println!("cargo:rustc-link-lib=dylib={system}");
    }
}
