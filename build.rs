//! Build script: gives `evatag.exe` its icon and version information on Windows.
//!
//! Needs `winresource` in `[build-dependencies]`. Whether to embed is decided by the
//! target (`CARGO_CFG_TARGET_OS`), not by `cfg!(windows)`, which describes the machine the
//! build script runs on; so cross builds from Linux work too, given a mingw-w64 `windres`.
//! Other targets do nothing here.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/icons/evatag.ico");

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
