#!/usr/bin/env bash
# Build an AppImage of evatag from an already built binary.
#
#   cargo build --release --features heif         # needs libheif-dev 1.17 or newer
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
# A binary built with the heif feature links libheif, which decodes HEIC with its
# libde265 plugin and AVIF with its dav1d (else aom) plugin, loaded at run time. The
# AppImage carries libheif, those decoder plugins (from libheif's plugin folder, or the
# folders named in LIBHEIF_PLUGIN_PATH) in usr/lib/libheif/plugins and the libraries they
# link; its AppRun sets LIBHEIF_PLUGIN_PATH to that folder. linuxdeploy copies the
# libraries; without it this script copies them itself and sets their run paths, which
# needs patchelf. Like linuxdeploy, it leaves out glibc, libstdc++, libgcc_s and zlib,
# which every desktop system has: build on the oldest system the AppImage is meant for.
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
    echo "appimage.sh: binary not found: $binary (run 'cargo build --release --features heif' or pass --binary)" >&2
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
# The physical path: linuxdeploy keys run-path changes by the real path of each file.
out="$(cd "$out" && pwd -P)"
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

# The license of a copied library, as linuxdeploy copies it: the copyright file of the
# Debian package that holds it, where dpkg knows the file.
copy_copyright() {
    local owner
    command -v dpkg-query >/dev/null || return 0
    owner="$(dpkg-query -S "$(readlink -f "$1")" 2>/dev/null)" || return 0
    owner="${owner%%$'\n'*}"
    owner="${owner%%:*}"
    if [ -n "$owner" ] && [ -f "/usr/share/doc/$owner/copyright" ]; then
        install -Dm644 "/usr/share/doc/$owner/copyright" "$appdir/usr/share/doc/$owner/copyright"
    fi
}

# libheif, when the binary links it: the library it resolves to and its decoder plugins.
# HEVC (HEIC) needs libheif-libde265.so, AV1 (AVIF) libheif-dav1d.so or libheif-aomdec.so,
# unless libheif was built with that decoder inside it. Only decoders are copied.
heif_plugins="$appdir/usr/lib/libheif/plugins"
heif_lib="$(ldd "$binary" 2>/dev/null | awk '$1 ~ /^libheif\.so/ { print $3; exit }' || true)"
if [ -n "$heif_lib" ]; then
    if [ ! -f "$heif_lib" ]; then
        echo "appimage.sh: $binary links libheif, which is not installed here (libheif-dev 1.17 or newer)" >&2
        exit 1
    fi
    # Where to look for the plugins: LIBHEIF_PLUGIN_PATH, as libheif itself reads it, else
    # the plugin folder beside the library the binary loads, else the one pkg-config names.
    plugin_dirs=()
    if [ -n "${LIBHEIF_PLUGIN_PATH:-}" ]; then
        IFS=: read -ra plugin_dirs <<<"$LIBHEIF_PLUGIN_PATH"
    else
        plugin_dirs+=("$(dirname "$heif_lib")/libheif/plugins")
        if libdir="$(pkg-config --variable=libdir libheif 2>/dev/null)" && [ -n "$libdir" ]; then
            plugin_dirs+=("$libdir/libheif/plugins")
        fi
    fi
    heif_needs="$(ldd "$heif_lib")"
    # $1: the codec, $2: the library that holds its decoder when libheif has it built in,
    # rest: plugins in order of preference. Copies the first plugin found.
    copy_decoder() {
        local codec="$1" builtin="$2" plugin dir
        shift 2
        if grep -Eq "$builtin" <<<"$heif_needs"; then
            return 0
        fi
        for plugin in "$@"; do
            for dir in "${plugin_dirs[@]}"; do
                if [ -f "$dir/$plugin" ]; then
                    install -Dm644 "$dir/$plugin" "$heif_plugins/$plugin"
                    copy_copyright "$dir/$plugin"
                    return 0
                fi
            done
        done
        echo "appimage.sh: no $codec decoder plugin for libheif ($*) in ${plugin_dirs[*]}" \
            "(Debian/Ubuntu: apt-get install libheif-plugin-libde265 libheif-plugin-dav1d)" >&2
        exit 1
    }
    copy_decoder HEVC 'libde265\.so' libheif-libde265.so
    copy_decoder AV1 'libdav1d\.so|libaom\.so' libheif-dav1d.so libheif-aomdec.so
fi

# The entry point: sets LIBHEIF_PLUGIN_PATH to the bundled plugins, then starts evatag
# with the arguments (such as file paths) it was given.
write_apprun() {
    cat >"$1" <<'EOF'
#!/bin/sh
# Starts evatag from its AppImage; libheif loads the HEIC and AVIF decoders bundled here.
here="$(dirname "$(readlink -f "$0")")"
if [ -d "$here/usr/lib/libheif/plugins" ]; then
    LIBHEIF_PLUGIN_PATH="$here/usr/lib/libheif/plugins"
    export LIBHEIF_PLUGIN_PATH
fi
exec "$here/usr/bin/evatag" "$@"
EOF
    chmod 755 "$1"
}

# Without linuxdeploy: copies libheif, the plugins' libraries and what they link into
# usr/lib, except the base system's (glibc, libstdc++, libgcc_s, zlib), and points the
# run paths there.
bundle_libraries() {
    [ -n "$heif_lib" ] || return 0
    if ! command -v patchelf >/dev/null; then
        echo "appimage.sh: bundling libheif without linuxdeploy needs patchelf (apt-get install patchelf)" >&2
        exit 1
    fi
    local file name path
    for file in "$appdir/usr/bin/evatag" "$heif_plugins"/*.so; do
        [ -f "$file" ] || continue
        while read -r name path; do
            case "$name" in
                ld-linux*.so.* | libc.so.* | libm.so.* | libmvec.so.* | libdl.so.* | libpthread.so.* | \
                    librt.so.* | libresolv.so.* | libstdc++.so.* | libgcc_s.so.* | libz.so.*) continue ;;
            esac
            [ -e "$appdir/usr/lib/$name" ] && continue
            install -Dm644 "$path" "$appdir/usr/lib/$name"
            patchelf --set-rpath '$ORIGIN' "$appdir/usr/lib/$name"
            copy_copyright "$path"
        done < <(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
    done
    patchelf --set-rpath '$ORIGIN/../lib' "$appdir/usr/bin/evatag"
    for file in "$heif_plugins"/*.so; do
        if [ -f "$file" ]; then
            patchelf --set-rpath '$ORIGIN/../..' "$file"
        fi
    done
}

assemble_top() {
    install -Dm755 "$binary" "$appdir/usr/bin/evatag"
    bundle_libraries
    install -Dm644 "$linux/$app_id.desktop" "$appdir/usr/share/applications/$app_id.desktop"
    ln -s "usr/share/applications/$app_id.desktop" "$appdir/$app_id.desktop"
    ln -s "usr/share/icons/hicolor/256x256/apps/$app_id.png" "$appdir/$app_id.png"
    ln -s "$app_id.png" "$appdir/.DirIcon"
    write_apprun "$appdir/AppRun"
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
    write_apprun "$inputs/AppRun"
    # It copies libheif with the binary; the plugins are already in the AppDir, and
    # --deploy-deps-only copies what they link and points their run paths at usr/lib.
    plugin_args=()
    if [ -d "$heif_plugins" ]; then
        plugin_args=(--deploy-deps-only "$heif_plugins")
    fi
    # It writes the AppImage to the working directory, named from these variables.
    export LINUXDEPLOY_OUTPUT_VERSION="$version"
    export LDAI_OUTPUT="$appimage"
    (cd "$out" && "$linuxdeploy" --appdir "$appdir" \
        --executable "$inputs/evatag" \
        "${plugin_args[@]}" \
        --desktop-file "$linux/$app_id.desktop" \
        --icon-file "$inputs/$app_id.png" \
        --custom-apprun "$inputs/AppRun" \
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
