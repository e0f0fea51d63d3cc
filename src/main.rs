//! The `evatag` binary: the desktop app with no subcommand, headless tools with one.

#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use std::process::ExitCode;

use clap::Parser;

/// Large tensors are allocated and freed several times per layer; mimalloc keeps the freed
/// memory mapped, where the system allocator returns it and pays page faults on every reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = evatag::cli::Args::parse();
    evatag::cli::init_logging(args.command.is_none());
    evatag::cli::run(args)
}
