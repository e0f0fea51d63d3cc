#!/usr/bin/env bash
# Compile-checks the macOS builds (Apple silicon and Intel, with Metal) on Linux, without
# Apple's SDK: `cargo check --features metal` for aarch64-apple-darwin and x86_64-apple-darwin
# in one invocation. The C and C++ that build scripts compile (usearch and its cxx bridge,
# mozjpeg, SQLite, mimalloc, ...) go through Zig's clang, which carries macOS's libc and libc++
# headers. Nothing is linked: linking, the app bundle, signing and notarisation need a Mac
# (packaging/README.md, "macOS", gives the commands).
#
#   packaging/macos/check.sh
#
# Installs what it lacks: the two Rust targets (rustup) and Zig (the `ziglang` wheel, pinned,
# in a virtual environment under target/macos-check/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

zig_version=0.17.1
work="$PWD/target/macos-check"
venv="$work/venv"
targets=(aarch64-apple-darwin x86_64-apple-darwin)

rustup target add "${targets[@]}" >/dev/null
if ! "$venv/bin/python" -m ziglang version 2>/dev/null | grep -qx "$zig_version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "ziglang==$zig_version"
fi
export ZIG_GLOBAL_CACHE_DIR="$work/zig-cache"

# One wrapper per target and tool. The cc crate passes `-arch arm64` and
# `--target=arm64-apple-macosx`, which Zig does not take (its -target says it), so the wrapper
# drops them.
mkdir -p "$work/bin"
cargo_target=()
for triple in "${targets[@]}"; do
    zig_target="${triple%%-*}-macos"
    for tool in cc c++; do
        cat >"$work/bin/$triple-$tool" <<WRAPPER
#!/usr/bin/env bash
args=()
while ((\$#)); do
    if [[ \$1 == -arch ]]; then shift 2; continue; fi
    if [[ \$1 == --target=* ]]; then shift; continue; fi
    args+=("\$1"); shift
done
exec "$venv/bin/python" -m ziglang $tool -target $zig_target "\${args[@]}"
WRAPPER
    done
    cat >"$work/bin/$triple-ar" <<WRAPPER
#!/usr/bin/env bash
exec "$venv/bin/python" -m ziglang ar "\$@"
WRAPPER
    chmod +x "$work/bin/$triple"-*
    env_triple="${triple//-/_}"
    export "CC_$env_triple=$work/bin/$triple-cc" "CXX_$env_triple=$work/bin/$triple-c++" \
        "AR_$env_triple=$work/bin/$triple-ar"
    cargo_target+=(--target "$triple")
done

# What the release build for macOS requires (packaging/macos/build-app.sh).
export MACOSX_DEPLOYMENT_TARGET=12.0
# A check generates no code for the targets, so the dependencies' optimisation (Cargo.toml) would
# only slow down what runs here: build scripts, derive macros and the C and C++ that build scripts
# compile (SQLite alone took 51 s of CPU per target at -O3).
cargo check --locked --features metal --bin evatag "${cargo_target[@]}" \
    --config 'profile.dev.package."*".opt-level=0'
