#!/usr/bin/env bash
# Build evatag.app, the macOS application bundle.
#
#   packaging/macos/build-app.sh                    # cargo build --release --features metal, then bundle
#   packaging/macos/build-app.sh --no-build --binary PATH --libheif PATH
#   packaging/macos/build-app.sh --target aarch64-apple-darwin
#
# Output: target/packaging/evatag.app
#   Contents/Info.plist           packaging/macos/Info.plist, versions set from Cargo.toml
#   Contents/MacOS/evatag         the release binary
#   Contents/Frameworks/          libheif.1.dylib and the libraries it links
#   Contents/Resources/evatag.icns
#   Contents/Resources/licenses/  the licence files of those libraries, and SOURCES
#
# Runs on macOS with the Rust toolchain and the Xcode command line tools. evatag reads
# HEIC, HEIF and AVIF with libheif, which it loads at run time (dlopen), first from
# Contents/Frameworks/libheif.1.dylib. The app carries Homebrew's libheif
# (brew install libheif; or --libheif PATH) there, with the libraries it links (libde265,
# aom, x265, ...) copied beside it by dylibbundler (brew install dylibbundler), so it does
# not need Homebrew to run. Homebrew builds them for the macOS it runs on: the script warns
# when one needs a newer macOS than LSMinimumSystemVersion.
# The bundle is signed ad hoc (enough to run it on the machine that built it); set
# MACOS_SIGNING_IDENTITY="Developer ID Application: ..." to sign for distribution
# (notarization is a separate step: xcrun notarytool submit ... after make-dmg.sh).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: build-app.sh [--no-build] [--binary PATH] [--libheif PATH] [--target TRIPLE] [--features LIST] [--out DIR]

  --no-build        do not run cargo; bundle an existing binary
  --binary PATH     the evatag executable (default: target[/TRIPLE]/release/evatag)
  --libheif PATH    the libheif.1.dylib to carry (default: $(brew --prefix libheif)/lib/libheif.1.dylib)
  --target TRIPLE   cargo --target, e.g. aarch64-apple-darwin or x86_64-apple-darwin
  --features LIST   cargo features (default: metal)
  --out DIR         where to write evatag.app (default: target/packaging)
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build=1
binary=""
target=""
features="metal"
libheif=""
out="$root/target/packaging"

while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0; shift ;;
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --libheif) libheif="${2:?--libheif needs a path}"; shift 2 ;;
        --target) target="${2:?--target needs a triple}"; shift 2 ;;
        --features) features="${2?--features needs a list}"; shift 2 ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-app.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

version="$(awk '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && /^version[[:space:]]*=/ { gsub(/.*=[[:space:]]*"|".*/, ""); print; exit }
' "$root/Cargo.toml")"
[ -n "$version" ] || { echo "build-app.sh: could not read the version from Cargo.toml" >&2; exit 1; }

if [ "$build" -eq 1 ]; then
    # Match LSMinimumSystemVersion in Info.plist.
    export MACOSX_DEPLOYMENT_TARGET="${MACOSX_DEPLOYMENT_TARGET:-12.0}"
    args=(build --release --manifest-path "$root/Cargo.toml")
    [ -n "$features" ] && args+=(--features "$features")
    [ -n "$target" ] && args+=(--target "$target")
    cargo "${args[@]}"
fi
if [ -z "$binary" ]; then
    if [ -n "$target" ]; then
        binary="$root/target/$target/release/evatag"
    else
        binary="$root/target/release/evatag"
    fi
fi
[ -f "$binary" ] || { echo "build-app.sh: binary not found: $binary" >&2; exit 1; }

app="$out/evatag.app"
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
install -m755 "$binary" "$app/Contents/MacOS/evatag"
install -m644 "$root/assets/icons/evatag.icns" "$app/Contents/Resources/evatag.icns"

# libheif goes into Contents/Frameworks as libheif.1.dylib, the first name evatag tries.
# The app promises HEIC, HEIF and AVIF, so it is not built without it.
frameworks="$app/Contents/Frameworks"
if [ -z "$libheif" ]; then
    if heif_prefix="$(brew --prefix libheif 2>/dev/null)" && [ -f "$heif_prefix/lib/libheif.1.dylib" ]; then
        libheif="$heif_prefix/lib/libheif.1.dylib"
    else
        echo "build-app.sh: libheif not found (brew install libheif, or pass --libheif PATH)" >&2
        exit 1
    fi
fi
[ -f "$libheif" ] || { echo "build-app.sh: --libheif $libheif: no such file" >&2; exit 1; }
if ! command -v dylibbundler >/dev/null; then
    echo "build-app.sh: bundling libheif and the libraries it links needs dylibbundler" \
        "(brew install dylibbundler)" >&2
    exit 1
fi
mkdir -p "$frameworks"
# -L: Homebrew's libheif.1.dylib is a link to the versioned file.
cp -L "$libheif" "$frameworks/libheif.1.dylib"
chmod 644 "$frameworks/libheif.1.dylib"
install_name_tool -id @executable_path/../Frameworks/libheif.1.dylib "$frameworks/libheif.1.dylib"
# dylibbundler copies what libheif and the binary link outside macOS (and what those link)
# into Contents/Frameworks and points them and the copies there; the binary itself links
# only macOS's libraries and frameworks. Libraries named through @rpath are looked up in
# libheif's own folder and in Homebrew's lib. When it cannot find a library it asks for a
# folder on standard input; "quit" makes it stop with an error instead. Frameworks exists
# already, so it is neither created nor emptied.
search=(--search-path "$(dirname "$libheif")")
if brew_prefix="$(brew --prefix 2>/dev/null)"; then
    search+=(--search-path "$brew_prefix/lib")
fi
dylibbundler --bundle-deps --fix-file "$frameworks/libheif.1.dylib" \
    --fix-file "$app/Contents/MacOS/evatag" --dest-dir "$frameworks" --install-path @executable_path/../Frameworks/ \
    "${search[@]}" <<<quit

# Homebrew builds for the macOS it runs on, which may be newer than the app's minimum.
min_macos="$(awk '/<key>LSMinimumSystemVersion<\/key>/ {
    getline; gsub(/.*<string>|<\/string>.*/, ""); print; exit
}' "$root/packaging/macos/Info.plist")"
for lib in "$frameworks"/*; do
    [ -f "$lib" ] || continue
    # LC_BUILD_VERSION's minos, or LC_VERSION_MIN_MACOSX's version in older files.
    lib_min="$(otool -l "$lib" | awk '
        $2 == "LC_BUILD_VERSION" || $2 == "LC_VERSION_MIN_MACOSX" { found = 1 }
        found && ($1 == "minos" || $1 == "version") { print $2; exit }
    ')"
    if [ -n "$lib_min" ] && awk -v a="$lib_min" -v b="$min_macos" 'BEGIN {
        split(a, x, "."); split(b, y, ".")
        for (i = 1; i <= 3; i++) if (x[i] + 0 != y[i] + 0) exit !(x[i] + 0 > y[i] + 0)
        exit 1
    }'; then
        echo "build-app.sh: warning: $(basename "$lib") needs macOS $lib_min, newer than" \
            "LSMinimumSystemVersion $min_macos; build it with MACOSX_DEPLOYMENT_TARGET=$min_macos" \
            "or the app may not start on older macOS" >&2
    fi
done

# Licence texts of the bundled libraries: Homebrew keeps each formula's COPYING, LICENSE
# and similar files at the top of its keg. A formula counts when one of its lib/*.dylib
# files is in Contents/Frameworks. SOURCES names each formula, its version and the URL of
# its source archive.
licenses="$app/Contents/Resources/licenses"
if command -v brew >/dev/null; then
    mkdir -p "$licenses"
    for formula in libheif $(brew deps --installed libheif 2>/dev/null); do
        keg="$(brew --prefix "$formula" 2>/dev/null)" || continue
        keg="$(cd "$keg" 2>/dev/null && pwd -P)" || continue
        bundled=0
        for dylib in "$keg"/lib/*.dylib; do
            if [ -f "$frameworks/$(basename "$dylib")" ]; then
                bundled=1
                break
            fi
        done
        [ "$bundled" -eq 1 ] || continue
        for text in "$keg"/COPYING* "$keg"/LICENSE* "$keg"/LICENCE* "$keg"/NOTICE* "$keg"/PATENTS*; do
            if [ -f "$text" ]; then
                install -m644 "$text" "$licenses/$formula-$(basename "$text")"
            fi
        done
        # The source archive: the first "url" of the formula's JSON is urls.stable.url.
        url="$({ brew info --json=v1 "$formula" 2>/dev/null || true; } | grep -o '"url": *"[^"]*"' |
            sed -n '1s/.*"\([^"]*\)"$/\1/p' || true)"
        echo "$(brew list --versions "$formula"): ${url:-https://formulae.brew.sh/formula/$formula}" >>"$licenses/SOURCES"
    done
else
    echo "build-app.sh: warning: brew not found; copy the licence texts of the libraries in" \
        "Contents/Frameworks into Contents/Resources/licenses by hand" >&2
fi

# Copy Info.plist, replacing the <string> after both version keys.
awk -v v="$version" '
    { print }
    /<key>CFBundle(ShortVersionString|Version)<\/key>/ {
        if ((getline line) > 0) { sub(/<string>[^<]*<\/string>/, "<string>" v "</string>", line); print line }
    }
' "$root/packaging/macos/Info.plist" >"$app/Contents/Info.plist"
printf 'APPL????' >"$app/Contents/PkgInfo"

if command -v plutil >/dev/null; then
    plutil -lint "$app/Contents/Info.plist"
fi
if command -v codesign >/dev/null; then
    # The bundled libraries are signed first, with the same identity as the app.
    signed=("$app")
    for lib in "$frameworks"/*; do
        if [ -f "$lib" ]; then
            signed=("$lib" "${signed[@]}")
        fi
    done
    for file in "${signed[@]}"; do
        if [ -n "${MACOS_SIGNING_IDENTITY:-}" ]; then
            # Hardened runtime and a secure timestamp: both required for notarization.
            codesign --force --options runtime --timestamp --sign "$MACOS_SIGNING_IDENTITY" "$file"
        else
            codesign --force --sign - "$file"
        fi
    done
    codesign --verify --strict "$app"
fi

echo "$app"
