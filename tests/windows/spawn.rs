//! Runs a program with arguments that are not valid UTF-16, for tests/windows/run.sh (built
//! for Windows, run under wine, whose own command line is UTF-8 and cannot carry them):
//!
//!   spawn.exe PROGRAM ARG...
//!
//! runs PROGRAM with the ARGs, in which each `<D800>` becomes the unpaired surrogate U+D800,
//! and exits with its status.

use std::ffi::OsString;
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::process::{Command, exit};

/// `arg` with each `<D800>` replaced by an unpaired surrogate.
fn with_surrogates(arg: &OsString) -> OsString {
    let marker: Vec<u16> = "<D800>".encode_utf16().collect();
    let units: Vec<u16> = arg.encode_wide().collect();
    let mut out = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        if units[i..].starts_with(&marker) {
            out.push(0xD800);
            i += marker.len();
        } else {
            out.push(units[i]);
            i += 1;
        }
    }
    OsString::from_wide(&out)
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: spawn.exe PROGRAM ARG...");
        exit(2);
    };
    match Command::new(&program).args(args.map(|a| with_surrogates(&a))).status() {
        Ok(status) => exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("spawn: cannot run {}: {e}", program.to_string_lossy());
            exit(1);
        }
    }
}
