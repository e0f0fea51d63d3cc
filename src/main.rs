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

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e`, which libmimalloc-sys does
/// not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays mapped before mimalloc hands it back to the system. With its
/// default of one second, buffers freed in one layer of a forward pass were handed back before
/// later layers asked for as much again, and faulted back in page by page: on EVA-giant at batch
/// 4 (two threads, Zen 4) clearing those pages took 1.3 % of the threads' time, and with ten
/// seconds 0.3 %. Memory still goes back to the system ten seconds after the work stops.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn main() -> ExitCode {
    // SAFETY: setting an option is safe at any time; the option is read when memory is freed.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reading and setting options is safe at any time.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000, "mimalloc's default purge delay");
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
        }
    }
}
