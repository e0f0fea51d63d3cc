//! The `evatag` binary: the desktop app with no subcommand, headless tools with one.

#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use std::process::ExitCode;

use clap::Parser;
use evatag::setup::{self, LogTo};
use evatag::{cli, gui};

/// Large tensors are allocated and freed several times per layer; mimalloc keeps the freed
/// memory mapped, where the system allocator returns it and pays page faults on every reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let options = args.model.options();
    match args.command {
        None => {
            setup::init_logging(LogTo::File);
            match gui::run(options, args.paths) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("evatag: error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(command) => {
            setup::init_logging(LogTo::Stderr);
            cli::run(command, &options)
        }
    }
}
