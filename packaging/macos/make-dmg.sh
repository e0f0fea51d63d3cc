#!/usr/bin/env bash
# Pack evatag.app into a disk image with an /Applications shortcut for drag-and-drop install.
#
#   packaging/macos/build-app.sh
#   packaging/macos/make-dmg.sh                     # uses target/packaging/evatag.app
#   packaging/macos/make-dmg.sh --app PATH/evatag.app
#
# Output: target/packaging/evatag-<version>-<arch>.dmg (compressed, read-only UDZO),
# arch from the bundled binary: arm64, x86_64 or universal. macOS only (hdiutil).
set -euo pipefail

usage() {
    echo "usage: make-dmg.sh [--app PATH/evatag.app] [--out DIR]"
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/target/packaging"
app="$out/evatag.app"

while [ $# -gt 0 ]; do
    case "$1" in
        --app) app="${2:?--app needs a path}"; shift 2 ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "make-dmg.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

command -v hdiutil >/dev/null || { echo "make-dmg.sh: hdiutil not found (macOS only)" >&2; exit 1; }
[ -d "$app/Contents/MacOS" ] || { echo "make-dmg.sh: not an app bundle: $app (run build-app.sh)" >&2; exit 1; }

version="$(/usr/libexec/PlistBuddy -c 'Print :CFBundleShortVersionString' "$app/Contents/Info.plist")"
archs="$(lipo -archs "$app/Contents/MacOS/evatag" 2>/dev/null || uname -m)"
case "$archs" in
    *" "*) arch=universal ;;
    *) arch="$archs" ;;
esac

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
ditto "$app" "$stage/evatag.app"
ln -s /Applications "$stage/Applications"

mkdir -p "$out"
dmg="$out/evatag-$version-$arch.dmg"
rm -f "$dmg"
hdiutil create -volname "evatag $version" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg" >/dev/null
hdiutil verify "$dmg" >/dev/null

if [ -n "${MACOS_SIGNING_IDENTITY:-}" ]; then
    codesign --force --timestamp --sign "$MACOS_SIGNING_IDENTITY" "$dmg"
fi
echo "$dmg"
