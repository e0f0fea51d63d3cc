#!/usr/bin/env bash
# Build evatag.app, the macOS application bundle.
#
#   packaging/macos/build-app.sh                    # cargo build --release --features metal, then bundle
#   packaging/macos/build-app.sh --no-build --binary PATH
#   packaging/macos/build-app.sh --target aarch64-apple-darwin
#
# Output: target/packaging/evatag.app
#   Contents/Info.plist           packaging/macos/Info.plist, versions set from Cargo.toml
#   Contents/MacOS/evatag         the release binary
#   Contents/Resources/evatag.icns
#
# Runs on macOS with the Rust toolchain and the Xcode command line tools. The bundle is
# signed ad hoc (enough to run it on the machine that built it); set
# MACOS_SIGNING_IDENTITY="Developer ID Application: ..." to sign for distribution
# (notarization is a separate step: xcrun notarytool submit ... after make-dmg.sh).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: build-app.sh [--no-build] [--binary PATH] [--target TRIPLE] [--features LIST] [--out DIR]

  --no-build        do not run cargo; bundle an existing binary
  --binary PATH     the evatag executable (default: target[/TRIPLE]/release/evatag)
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
out="$root/target/packaging"

while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0; shift ;;
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
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
    if [ -n "${MACOS_SIGNING_IDENTITY:-}" ]; then
        # Hardened runtime and a secure timestamp: both required for notarization.
        codesign --force --options runtime --timestamp --sign "$MACOS_SIGNING_IDENTITY" "$app"
    else
        codesign --force --sign - "$app"
    fi
    codesign --verify --strict "$app"
fi

echo "$app"
