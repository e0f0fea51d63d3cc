//! The `evatag` binary: the desktop app with no subcommand, headless tools with one.

#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = evatag::cli::Args::parse();
    evatag::cli::init_logging(args.command.is_none());
    evatag::cli::run(args)
}
