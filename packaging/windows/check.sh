#!/usr/bin/env bash
# The Windows build, checked on Linux: cross-compiles evatag.exe, runs the Windows tests under
# wine (tests/windows/run.sh), builds the NSIS installer, and installs and uninstalls it in a
# fresh wine prefix.
#
#   packaging/windows/check.sh [LINUX_EXE]
#
# LINUX_EXE (default target/debug/evatag, which `cargo test` builds) is the Linux build the
# Windows one is compared with. Everything goes under target/: the executable to
# target/x86_64-pc-windows-gnu/debug/evatag.exe, the installer to
# target/packaging/evatag-VERSION-x64-setup.exe, the wine prefixes to target/windows-check/.
#
# The target is x86_64-pc-windows-gnu (mingw-w64), not x86_64-pc-windows-msvc: Debian has
# the whole mingw-w64 toolchain (C, C++ for usearch, windres for the icon) in its archive,
# whereas msvc needs Microsoft's SDK and CRT (cargo-xwin downloads them, under Microsoft's
# licence, on every fresh machine). The executable is built in the dev profile, whose
# dependencies are optimised (Cargo.toml), without debug information: one build serves the
# tests and the installer. It is a console program (a release build is a GUI-subsystem one,
# whose output a terminal does not show), which the tests need; the installer it goes into
# is a test of the installer, not a release.
#
# The installer carries no libheif here (makensis -DNO_LIBHEIF): vcpkg's DLLs are built on
# Windows. Installs what it lacks: mingw-w64, wine, NSIS, Xvfb (apt) and the Rust target
# (rustup).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$PWD"
linux_exe="${1:-target/debug/evatag}"
triple=x86_64-pc-windows-gnu
work="$root/target/windows-check"

source tests/checks.sh
start_steps check.sh

if command -v apt-get >/dev/null; then
    missing=()
    command -v x86_64-w64-mingw32-gcc-posix >/dev/null || missing+=(gcc-mingw-w64-x86-64-posix)
    command -v x86_64-w64-mingw32-g++-posix >/dev/null || missing+=(g++-mingw-w64-x86-64-posix)
    command -v x86_64-w64-mingw32-windres >/dev/null || missing+=(binutils-mingw-w64-x86-64)
    command -v wine64 >/dev/null || [[ -x /usr/lib/wine/wine64 ]] || missing+=(wine wine64)
    command -v makensis >/dev/null || missing+=(nsis)
    command -v Xvfb >/dev/null || missing+=(xvfb libgl1-mesa-dri)
    if ((${#missing[@]})); then
        apt_install --no-install-recommends "${missing[@]}"
    fi
fi
rustup target add "$triple" >/dev/null
step "toolchain"

# .cargo/config.toml names the compilers and links the C and C++ runtimes in statically.
# Unoptimised but for the code the test model runs hot (evatag's own kernels, candle's operations
# and the matrix products of the gemm crate, at level 1): built cold on 2 cores in 291 s, against
# 629 s with everything at level 1 (and more at Cargo.toml's 3 and 2); the tests under wine take
# 28 s instead of 23.
CARGO_PROFILE_DEV_DEBUG=0 cargo build --locked --target "$triple" --bin evatag \
    --config 'profile.dev.package."*".opt-level=0' --config 'profile.dev.package.evatag.opt-level=1' \
    --config 'profile.dev.package.candle-core.opt-level=1' \
    --config 'profile.dev.package.gemm-common.opt-level=1' \
    --config 'profile.dev.package.gemm-f32.opt-level=1'
exe="$root/target/$triple/debug/evatag.exe"
step "evatag.exe built"

# The executable must run on a bare Windows: no mingw-w64 DLL (libstdc++, libgcc,
# winpthread) may be imported.
imports="$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p')"
if grep -Ei 'libstdc|libgcc|winpthread' <<<"$imports"; then
    echo "check.sh: evatag.exe needs the mingw-w64 DLLs above, which Windows does not have" >&2
    exit 1
fi
echo "check.sh: evatag.exe imports only $(sort -uf <<<"$imports" | tr '\n' ' ')"

bash tests/windows/run.sh "$exe" "$linux_exe"
step "tests under wine"

# --- The installer ---------------------------------------------------------------------------
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
# zlib rather than LZMA: the same installer, built in a fifth of the time.
makensis -V2 -DVERSION="$version" -DNO_LIBHEIF -DCOMPRESSOR=zlib -DBINARY="$exe" packaging/windows/evatag.nsi
setup="$root/target/packaging/evatag-$version-x64-setup.exe"
[[ -f $setup ]] || { echo "check.sh: makensis wrote no $setup" >&2; exit 1; }
step "installer built ($(du -k "$setup" | cut -f1) KiB)"

# shellcheck source=tests/windows/wine.sh
source tests/windows/wine.sh
new_prefix "$work/install-prefix"
# hklm FILE: HKLM\Software as text (reg export writes UTF-16 with CRLF).
hklm() {
    wine reg export 'HKLM\Software' "$1.reg" /y >/dev/null
    iconv -f UTF-16 -t UTF-8 "$1.reg" | tr -d '\r' >"$1"
}
hklm "$work/hklm-before.txt"
wine "$setup" /S
wineserver --wait
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
installed='C:\Program Files\evatag'
for file in evatag.exe uninstall.exe; do
    [[ -f "$(in_prefix "$installed")/$file" ]] || fail "the installer did not put $file in $installed"
done
wine "$(in_prefix "$installed")/evatag.exe" --version >"$work/installed-version.txt" 2>&1 ||
    fail "the installed evatag.exe --version: $(cat "$work/installed-version.txt")"
shortcut="$(in_prefix 'C:\ProgramData\Microsoft\Windows\Start Menu\Programs')/evatag.lnk"
[[ -f $shortcut ]] || fail "no Start-menu shortcut at $shortcut"
query() { # KEY [VALUE]: =DATA for a registry value, nothing where there is none
    local args=("$1")
    if [[ $# -gt 1 ]]; then args+=(/v "$2"); else args+=(/ve); fi
    wine reg query "${args[@]}" 2>/dev/null | tr -d '\r' | sed -n 's/^ *[^ ].*REG_[A-Z_]* *\(.*\)$/=\1/p'
}
open_command="\"$installed\\evatag.exe\" \"%1\""
for expect in \
    'HKLM\Software\Classes\.jpg\OpenWithProgids|org.evatag.Evatag.Image|' \
    'HKLM\Software\Classes\.heic\OpenWithProgids|org.evatag.Evatag.Image|' \
    'HKLM\Software\Classes\.cr3\OpenWithProgids|org.evatag.Evatag.Image|' \
    "HKLM\\Software\\Classes\\org.evatag.Evatag.Image\\shell\\open\\command||$open_command" \
    "HKLM\\Software\\Classes\\Applications\\evatag.exe\\shell\\open\\command||$open_command" \
    'HKLM\Software\evatag\Capabilities\FileAssociations|.png|org.evatag.Evatag.Image' \
    'HKLM\Software\RegisteredApplications|evatag|Software\evatag\Capabilities' \
    "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\App Paths\\evatag.exe||$installed\\evatag.exe" \
    'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\evatag|DisplayVersion|'"$version"; do
    IFS='|' read -r key value want <<<"$expect"
    if [[ -n $value ]]; then got="$(query "$key" "$value")"; else got="$(query "$key")"; fi
    [[ $got == "=$want" ]] || fail "registry $key ${value:-(default)}: '$got', expected '$want'"
done
((failures)) || echo "check.sh: installed: files, Start-menu shortcut, file associations, App Paths, uninstall entry"
step "installed under wine"

wine "$(in_prefix "$installed")/uninstall.exe" /S
wineserver --wait
[[ -e "$(in_prefix "$installed")" ]] && fail "uninstalling left $installed: $(find "$(in_prefix "$installed")")"
[[ -e $shortcut ]] && fail "uninstalling left the Start-menu shortcut"
# Everything evatag wrote is gone: HKLM\Software reads as before the installation.
hklm "$work/hklm-after.txt"
if ! diff "$work/hklm-before.txt" "$work/hklm-after.txt" >"$work/hklm.diff"; then
    fail "uninstalling left registry entries: $(head -c 2000 "$work/hklm.diff")"
fi
wineserver --kill || true
((failures)) && { echo "check.sh: $failures installer check(s) failed" >&2; exit 1; }
echo "check.sh: uninstalled: no file, shortcut or registry key of evatag left"
step "uninstalled under wine"
