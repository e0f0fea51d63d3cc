#!/usr/bin/env bash
# Build an AppImage of evatag from an already built binary.
#
#   cargo build --release
#   packaging/linux/appimage.sh                   # uses target/release/evatag
#   packaging/linux/appimage.sh --binary PATH
#   packaging/linux/appimage.sh --appdir-only     # only assemble the AppDir
#
# Output: target/packaging/evatag-<version>-<arch>.AppImage (arch as `uname -m`).
#
# Needs one of these on PATH (or named by the LINUXDEPLOY / APPIMAGETOOL variables):
#   linuxdeploy  (with its appimage output plugin): preferred, also copies any
#                 non-system shared library the binary links against;
#   appimagetool: packs the AppDir as assembled here.
# Neither tool is installed on the project's Linux build machine, so there only the
# AppDir assembly (--appdir-only) has been exercised.
#
# OpenGL, EGL, X11, Wayland and xkbcommon are loaded from the host system at run
# time (they must match its graphics drivers) and are deliberately not bundled.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: appimage.sh [--binary PATH] [--out DIR] [--appdir-only]

  --binary PATH   the evatag executable to package (default: target/release/evatag)
  --out DIR       where to write the AppImage (default: target/packaging)
  --appdir-only   assemble DIR/evatag.AppDir and stop
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary="$root/target/release/evatag"
out="$root/target/packaging"
appdir_only=0

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --binary=*) binary="${1#*=}"; shift ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --appdir-only) appdir_only=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "appimage.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ ! -f "$binary" ]; then
    echo "appimage.sh: binary not found: $binary (run 'cargo build --release' or pass --binary)" >&2
    exit 1
fi

version="$(awk '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && /^version[[:space:]]*=/ { gsub(/.*=[[:space:]]*"|".*/, ""); print; exit }
' "$root/Cargo.toml")"
[ -n "$version" ] || { echo "appimage.sh: could not read the version from Cargo.toml" >&2; exit 1; }
arch="$(uname -m)"

app_id=org.evatag.Evatag
linux="$root/packaging/linux"
icons="$root/assets/icons"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
appdir="$out/evatag.AppDir"
appimage="$out/evatag-$version-$arch.AppImage"

# AppDir layout: the usual /usr tree plus, at the top, the desktop entry, its icon,
# .DirIcon and AppRun (the entry point; arguments such as file paths pass through).
# The metadata and the icon theme are laid out here; the binary, the desktop entry and
# the top-level links are added by linuxdeploy when it is used, else by assemble_top.
rm -rf "$appdir"
install -Dm644 "$linux/$app_id.metainfo.xml" "$appdir/usr/share/metainfo/$app_id.metainfo.xml"
for size in 16 24 32 48 64 128 256 512; do
    install -Dm644 "$icons/evatag-$size.png" "$appdir/usr/share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done
install -Dm644 "$root/assets/icon.svg" "$appdir/usr/share/icons/hicolor/scalable/apps/$app_id.svg"

assemble_top() {
    install -Dm755 "$binary" "$appdir/usr/bin/evatag"
    install -Dm644 "$linux/$app_id.desktop" "$appdir/usr/share/applications/$app_id.desktop"
    ln -s "usr/share/applications/$app_id.desktop" "$appdir/$app_id.desktop"
    ln -s "usr/share/icons/hicolor/256x256/apps/$app_id.png" "$appdir/$app_id.png"
    ln -s "$app_id.png" "$appdir/.DirIcon"
    ln -s usr/bin/evatag "$appdir/AppRun"
}

if [ "$appdir_only" -eq 1 ]; then
    assemble_top
    echo "$appdir"
    exit 0
fi

find_tool() {
    # $1: variable override, rest: names to look for on PATH
    local override="$1"
    shift
    if [ -n "$override" ]; then
        echo "$override"
        return 0
    fi
    local name
    for name in "$@"; do
        if command -v "$name" >/dev/null; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

export ARCH="$arch"
rm -f "$appimage"
if linuxdeploy="$(find_tool "${LINUXDEPLOY:-}" linuxdeploy "linuxdeploy-$arch.AppImage")"; then
    # linuxdeploy names files after their source: give it the binary as "evatag" and
    # the icon under the desktop entry's Icon= name.
    inputs="$(mktemp -d)"
    trap 'rm -rf "$inputs"' EXIT
    install -m755 "$binary" "$inputs/evatag"
    install -m644 "$icons/evatag-256.png" "$inputs/$app_id.png"
    # It writes the AppImage to the working directory, named from these variables.
    export LINUXDEPLOY_OUTPUT_VERSION="$version"
    export LDAI_OUTPUT="$appimage"
    (cd "$out" && "$linuxdeploy" --appdir "$appdir" \
        --executable "$inputs/evatag" \
        --desktop-file "$linux/$app_id.desktop" \
        --icon-file "$inputs/$app_id.png" \
        --output appimage)
elif appimagetool="$(find_tool "${APPIMAGETOOL:-}" appimagetool "appimagetool-$arch.AppImage")"; then
    assemble_top
    VERSION="$version" "$appimagetool" "$appdir" "$appimage"
else
    assemble_top
    echo "appimage.sh: neither linuxdeploy nor appimagetool found; the AppDir is at $appdir" >&2
    exit 1
fi

[ -f "$appimage" ] || { echo "appimage.sh: expected $appimage was not written" >&2; exit 1; }
echo "$appimage"
