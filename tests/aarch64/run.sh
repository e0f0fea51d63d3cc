#!/usr/bin/env bash
# The 64-bit ARM build, checked on an x86-64 Linux machine: cross-compiles the model's unit
# tests and its parity tests for aarch64-unknown-linux-gnu and runs them under
# qemu-user, where the CPU kernels take their ARM paths: the level detected is NEON, the matrix
# products run on the gemm crate's NEON kernels, and evatag's vector loops are compiled for
# NEON (every aarch64 CPU has it). The fixture models' outputs must stay within timm's bounds at
# every level (tests/model_parity.rs), as on x86-64.
#
#   tests/aarch64/run.sh
#
# Builds under target/ (target/aarch64-unknown-linux-gnu/). Installs what it lacks: the
# cross compilers and qemu-user (apt), and the Rust target (rustup). The full-size EVA-giant
# bf16 check is left out: it takes a minute natively, tens of minutes under emulation.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
triple=aarch64-unknown-linux-gnu

source tests/checks.sh
start_steps aarch64

if command -v apt-get >/dev/null; then
    missing=()
    command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
    if ((${#missing[@]})); then
        apt_install --no-install-recommends "${missing[@]}"
    fi
fi
rustup target add "$triple" >/dev/null
step "toolchain"

# Set here rather than in .cargo/config.toml, where they would also apply to a native build on
# an ARM Linux machine (its host triple is the same).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
# Code that only x86-64 uses must say so: a warning of evatag's own fails the ARM build too
# (dependencies' warnings are capped, as always).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-D warnings"
# Unoptimised but for the code the fixture models run hot, as for the Windows build
# (packaging/windows/check.sh), which keeps the build short on a CI machine's two cores.
# gemm-f16 keeps Cargo.toml's level: unoptimised, its NEON half-precision kernels do not
# assemble ("instruction requires: fullfp16", github.com/sarah-quinones/gemm/issues/31), as
# their inline assembly is only accepted once inlined into the functions that enable fp16.
levels=(--config 'profile.dev.package."*".opt-level=0' --config 'profile.dev.package.evatag.opt-level=1'
    --config 'profile.dev.package.candle-core.opt-level=1' --config 'profile.dev.package.gemm-common.opt-level=1'
    --config 'profile.dev.package.gemm-f32.opt-level=1' --config 'profile.dev.package.gemm-f16.opt-level=3')
cross_test() { CARGO_PROFILE_DEV_DEBUG=0 cargo test --locked --target "$triple" "${levels[@]}" "$@"; }
parity_tests=(--test model_parity --test model_parity_eva02 --test bf16)
cross_test --lib "${parity_tests[@]}" --no-run
step "tests built"
# Of the library's own tests, the model's and its kernels': the rest (the window, the cache,
# files) runs the same code on every architecture and is tested natively.
cross_test --lib -- model::
cross_test "${parity_tests[@]}" -- --skip bf16_weights_keep_eva_giant_at_full_size
step "tests under qemu"
