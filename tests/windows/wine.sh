# shellcheck shell=bash
# Wine helpers shared by tests/windows/run.sh and packaging/windows/check.sh (sourced).

# Quiet wine, and no offer to install Mono or Gecko into a new prefix.
export WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="

# new_prefix DIR: a fresh 64-bit wine prefix in DIR, made WINEPREFIX. Rust's standard
# library imports ProcessPrng from bcryptprimitives.dll, which every Windows 10 and 11 has
# and wine 8 (Debian 12) lacks: where the prefix has none, a stub built from
# tests/windows/processprng.c goes into its system32 (test prefixes only; it never ships).
new_prefix() {
    local dir="$1" here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    export WINEPREFIX="$dir" WINEARCH=win64
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    wineboot --init >/dev/null 2>&1
    wineserver --wait
    local system32="$dir/drive_c/windows/system32"
    [[ -d $system32 ]] || { echo "wine did not create the prefix $dir" >&2; return 1; }
    if [[ ! -e $system32/bcryptprimitives.dll ]]; then
        x86_64-w64-mingw32-gcc-posix -shared -O2 -o "$system32/bcryptprimitives.dll" \
            "$here/processprng.c" -ladvapi32
    fi
}

# in_prefix PATH: the Linux path of Windows path PATH on the prefix's drive C:
# (C:\a\b -> $WINEPREFIX/drive_c/a/b).
in_prefix() {
    local path="${1#[Cc]:}"
    printf '%s/drive_c%s\n' "$WINEPREFIX" "${path//\\//}"
}
