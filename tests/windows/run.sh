#!/usr/bin/env bash
# The Windows build under wine: the command line, parity with the Linux build, and how paths
# and names come out on Windows.
#
#   tests/windows/run.sh WINDOWS_EXE LINUX_EXE
#
# WINDOWS_EXE is evatag.exe (cargo build --target x86_64-pc-windows-gnu), LINUX_EXE the
# Linux evatag of the same source. Runs in a fresh wine prefix under
# target/windows-check/tests. Checks:
#   - `--help` and `--version` (which says that no libheif was found: none is installed);
#   - `tag --embedding` on the fixture photos gives the Linux build's labels and embeddings,
#     and timm's top five (tests/windows/parity.py), with paths as Windows spells them:
#     drive letter and backslashes, in valid JSON;
#   - a HEIC photo without heif.dll gets an error line that says what to install;
#   - the cache goes to %LOCALAPPDATA%\evatag\evatag\cache by default, is used again, and
#     goes to EVATAG_CACHE_DIR when it is set;
#   - a photo whose path is longer than 260 characters is tagged and gets its XMP sidecar;
#   - XMP sidecars are named photo.jpg.xmp, or photo.xmp with --sidecar-name replace;
#   - a path holding an unpaired surrogate (valid on Windows, not UTF-16) gives a JSON line
#     with the lossy text and the exact (WTF-8) bytes in path_bytes;
#   - the window, on a virtual X server, tags a folder and keeps its photo list and log in
#     %APPDATA%\evatag\evatag\data and its settings in %APPDATA%\evatag\evatag\config.
# Needs wine (64-bit), mingw-w64 (gcc-posix), Xvfb and python3; packaging/windows/check.sh
# installs all but python3.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ $# -eq 2 ]] || { echo "usage: tests/windows/run.sh WINDOWS_EXE LINUX_EXE" >&2; exit 2; }
exe="$(realpath "$1")"
linux="$(realpath "$2")"
[[ -f $exe ]] || { echo "run.sh: no Windows executable at $1" >&2; exit 2; }
[[ -x $linux ]] || { echo "run.sh: no Linux executable at $2" >&2; exit 2; }
fixtures="$root/tests/fixtures"
work="$root/target/windows-check/tests"
# shellcheck source=tests/windows/wine.sh
source "$root/tests/windows/wine.sh"

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
# json_field FILE EXPR: EXPR evaluated in python with `lines` the JSON lines of FILE.
json_field() {
    python3 -c 'import json, sys; lines = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]; print(eval(sys.argv[2]))' "$1" "$2"
}

new_prefix "$work/prefix"
mkdir -p "$work/out"
out="$work/out"
top='C:\evatag-tests'
top_dir="$(in_prefix "$top")"
mkdir -p "$top_dir"
cp -r "$fixtures/photos" "$fixtures/formats" "$fixtures/models/eva_tiny" "$top_dir/"
model=(--model-dir "$top\\eva_tiny" --device cpu)
evatag() { wine "$exe" "$@"; }

# --- The command line -------------------------------------------------------------------
if evatag --help >"$out/help.txt" 2>&1 && grep -q '^Usage: evatag' "$out/help.txt" &&
    grep -q '^  tag ' "$out/help.txt"; then
    pass "--help"
else
    fail "--help: $(cat "$out/help.txt")"
fi
if evatag --version >"$out/version.txt" 2>&1 && grep -q '^evatag [0-9]' "$out/version.txt" &&
    grep -q 'HEIC, HEIF and AVIF: libheif was not found (tried .*heif\.dll' "$out/version.txt"; then
    pass "--version: $(tail -n1 "$out/version.txt" | cut -c1-80)..."
else
    fail "--version: $(cat "$out/version.txt")"
fi

# --- Parity with the Linux build and timm, and paths as Windows spells them ------------------
status=0
evatag tag "${model[@]}" --no-cache --embedding "$top\\photos" "$top\\formats" \
    >"$out/windows.jsonl" 2>"$out/windows.err" || status=$?
(cd "$fixtures" && "$linux" tag --model-dir models/eva_tiny --device cpu --no-cache --embedding photos formats \
    >"$out/linux.jsonl" 2>"$out/linux.err")
if [[ $status -ne 0 ]]; then
    fail "tag exited with $status: $(cat "$out/windows.err")"
elif python3 "$root/tests/windows/parity.py" "$out/windows.jsonl" "$out/linux.jsonl" \
    "$fixtures/expected/eva_tiny.safetensors" "$top\\photos" "$top\\formats"; then
    pass "tag: the Linux build's labels, in valid JSON with Windows paths ($(json_field "$out/windows.jsonl" 'lines[0]["path"]'))"
else
    fail "tag: parity (above)"
fi

# --- HEIC without libheif -----------------------------------------------------------------
cp "$fixtures/camera/cat_exif6.heic" "$top_dir/"
status=0
evatag tag "${model[@]}" --no-cache "$top\\cat_exif6.heic" >"$out/heic.jsonl" 2>"$out/heic.err" || status=$?
error="$(json_field "$out/heic.jsonl" 'lines[0].get("error", "")')"
if [[ $status -eq 1 && $error == *'heif.dll'* && $error == *'beside evatag.exe'* ]]; then
    pass "HEIC without heif.dll: $error"
else
    fail "HEIC without heif.dll: status $status, error '$error'"
fi

# --- The cache: default location, reuse, EVATAG_CACHE_DIR --------------------------------------
cat_photo="$top\\photos\\cat_landscape.jpg"
for run in 1 2; do
    env -u EVATAG_CACHE_DIR wine "$exe" tag "${model[@]}" "$cat_photo" >"$out/cache$run.jsonl" 2>"$out/cache$run.err" ||
        fail "tag with the default cache (run $run): $(cat "$out/cache$run.err")"
done
shopt -s nullglob
databases=("$WINEPREFIX"/drive_c/users/*/AppData/Local/evatag/evatag/cache/evatag.sqlite)
shopt -u nullglob
if [[ ${#databases[@]} -eq 1 ]] && grep -q '0 tagged by the model, 1 from the cache' "$out/cache2.err"; then
    pass "default cache: ${databases[0]#"$WINEPREFIX"/drive_c/}, used again"
else
    fail "default cache: found '${databases[*]}'; second run: $(cat "$out/cache2.err")"
fi
custom='C:\evatag-tests\my cache'
EVATAG_CACHE_DIR="$custom" wine "$exe" tag "${model[@]}" "$cat_photo" >/dev/null 2>"$out/cache3.err" ||
    fail "tag with EVATAG_CACHE_DIR: $(cat "$out/cache3.err")"
if [[ -f "$(in_prefix "$custom")/evatag.sqlite" ]]; then
    pass "EVATAG_CACHE_DIR=$custom"
else
    fail "EVATAG_CACHE_DIR=$custom: no evatag.sqlite there"
fi

# --- A path longer than 260 characters ---------------------------------------------------------
long="$top\\long"
for part in 1 2 3 4 5 6; do
    long="$long\\folder_$part-of-a-path-that-Windows-limits-to-260-characters"
done
long_photo="$long\\cat_landscape.jpg"
mkdir -p "$(in_prefix "$long")"
cp "$fixtures/photos/cat_landscape.jpg" "$(in_prefix "$long_photo")"
status=0
evatag tag "${model[@]}" --no-cache "$top\\long" >"$out/long.jsonl" 2>"$out/long.err" || status=$?
evatag export "${model[@]}" --no-cache --xmp "$long_photo" >/dev/null 2>"$out/long-export.err" || status=$?
shown="$(json_field "$out/long.jsonl" 'lines[0]["path"] if "labels" in lines[0] else lines[0]')"
if [[ $status -eq 0 && $shown == "$long_photo" && -f "$(in_prefix "$long_photo").xmp" ]]; then
    pass "a ${#long_photo}-character path: tagged, as given, with its sidecar"
else
    fail "a ${#long_photo}-character path: status $status, line '$shown', $(cat "$out/long.err" "$out/long-export.err")"
fi

# --- XMP sidecar names ------------------------------------------------------------------------
xmp="$top\\xmp"
mkdir -p "$(in_prefix "$xmp")"
cp "$fixtures/photos/cat_landscape.jpg" "$(in_prefix "$xmp")/Cat.JPG"
cp "$fixtures/photos/coffee_landscape.jpg" "$(in_prefix "$xmp")/coffee.jpg"
status=0
evatag export "${model[@]}" --no-cache --xmp "$xmp\\Cat.JPG" >/dev/null 2>"$out/xmp.err" || status=$?
evatag export "${model[@]}" --no-cache --xmp --sidecar-name replace "$xmp\\coffee.jpg" >/dev/null 2>>"$out/xmp.err" ||
    status=$?
sidecars="$(cd "$(in_prefix "$xmp")" && find . -name '*.xmp' -printf '%f ' | xargs -n1 | sort | xargs)"
if [[ $status -eq 0 && $sidecars == "Cat.JPG.xmp coffee.xmp" ]] &&
    grep -q '<rdf:li>' "$(in_prefix "$xmp")/Cat.JPG.xmp"; then
    pass "XMP sidecars: $sidecars"
else
    fail "XMP sidecars: status $status, found '$sidecars': $(cat "$out/xmp.err")"
fi

# --- A name that is not valid UTF-16 -------------------------------------------------------------
# Wine cannot make such a file on a Linux folder, but a Windows program can pass such a path.
rustc --edition 2024 --target x86_64-pc-windows-gnu -C linker=x86_64-w64-mingw32-gcc-posix \
    -C link-arg=-static -o "$work/spawn.exe" "$root/tests/windows/spawn.rs"
status=0
wine "$work/spawn.exe" "$exe" tag "${model[@]}" --no-cache "$top\\odd\\cat_<D800>.jpg" \
    >"$out/surrogate.jsonl" 2>"$out/surrogate.err" || status=$?
# C:\evatag-tests\odd\cat_ then U+D800 in WTF-8 (ed a0 80), then .jpg
want_bytes="$(printf '%s' 'C:\evatag-tests\odd\cat_' | od -An -tx1 | tr -d ' \n')eda080$(printf '.jpg' | od -An -tx1 | tr -d ' \n')"
line="$(json_field "$out/surrogate.jsonl" 'json.dumps(lines[0], ensure_ascii=True)' 2>&1 || true)"
if [[ $status -eq 1 && $line == *'"path": "C:\\evatag-tests\\odd\\cat_\ufffd.jpg"'* &&
    $line == *"\"path_bytes\": \"$want_bytes\""* && $line == *'does not exist'* ]]; then
    pass "an unpaired surrogate: $line"
else
    fail "an unpaired surrogate: status $status, line $line, $(cat "$out/surrogate.err")"
fi

# --- The window: where the app keeps its photo list, settings and log -----------------------------
xvfb_pid=""
cleanup() {
    wineserver --kill 2>/dev/null || true
    [[ -n $xvfb_pid ]] && kill "$xvfb_pid" 2>/dev/null
    return 0
}
trap cleanup EXIT
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$out/display" 2>"$out/xvfb.log" &
xvfb_pid=$!
for _ in $(seq 50); do [[ -s $out/display ]] && break; sleep 0.1; done
[[ -s $out/display ]] || { cat "$out/xvfb.log" >&2; echo "run.sh: Xvfb did not start" >&2; exit 1; }
# A new wine session, whose desktop process has the display (the one above had none).
wineserver --kill 2>/dev/null || true
wineserver --wait
DISPLAY=":$(cat "$out/display")"
export DISPLAY
wine "$exe" "${model[@]}" "$top\\photos" >"$out/window.log" 2>&1 &
appdata="$(in_prefix "$(wine cmd /c 'echo %APPDATA%' | tr -d '\r')")/evatag/evatag"
photo_list=""
for _ in $(seq 120); do
    # The saved list, once every photo has its labels.
    if [[ -f $appdata/data/library.json ]] && [[ -f $appdata/config/settings.json ]] &&
        photo_list="$(json_field "$appdata/data/library.json" \
            'sum(1 for p in lines[0]["photos"] if p.get("labels")) if len(lines[0]["photos"]) == 5 else 0' 2>/dev/null)" &&
        [[ $photo_list == 5 ]]; then
        break
    fi
    sleep 0.5
done
folders="$(json_field "$appdata/data/library.json" 'lines[0]["folders"]' 2>/dev/null || true)"
if [[ $photo_list == 5 && $folders == "['C:\\\\evatag-tests\\\\photos']" && -f $appdata/data/evatag.log ]]; then
    pass "the window: photo list and log in ${appdata#"$WINEPREFIX"/drive_c/}/data, settings in .../config"
else
    fail "the window: tagged photos in the saved list '$photo_list', folders $folders, files: $(find "$appdata" -type f 2>/dev/null); $(cat "$out/window.log")"
fi

if ((failures)); then
    echo "tests/windows/run.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "tests/windows/run.sh: all checks passed"
