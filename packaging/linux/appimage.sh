#!/usr/bin/env bash
# Build an AppImage of evatag from an already built binary.
#
#   cargo build --release
#   packaging/linux/appimage.sh                   # uses target/release/evatag
#   packaging/linux/appimage.sh --binary PATH --libheif PATH
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
# evatag reads HEIC, HEIF and AVIF with libheif, which it loads at run time (dlopen),
# first from usr/lib/libheif.so.1 beside its usr/bin. The AppImage carries this machine's
# libheif there (the one ldconfig knows, /usr/lib/<gcc -dumpmachine>/libheif.so.1, or
# --libheif PATH), its HEVC and AV1 decoders where they are plugins (libheif-libde265.so,
# libheif-dav1d.so or libheif-aomdec.so, from libheif's plugin folder or the folders named
# in LIBHEIF_PLUGIN_PATH) in usr/lib/libheif/plugins, and the libraries they link; its
# AppRun sets LIBHEIF_PLUGIN_PATH to that folder. linuxdeploy copies the libraries;
# without it this script copies them itself and sets their run paths to $ORIGIN, which
# needs patchelf. Like linuxdeploy, it leaves out glibc, libstdc++, libgcc_s and zlib,
# which every desktop system has: build on the oldest system the AppImage is meant for.
# The copyright file of each Debian package a library comes from goes to
# usr/share/doc/<package>/copyright, the licence texts it names to
# usr/share/common-licenses/, and usr/share/doc/SOURCES names the source package and
# version of each. Elsewhere than on Debian or Ubuntu, copy them by hand.
#
# OpenGL, EGL, X11, Wayland and xkbcommon are loaded from the host system at run
# time (they must match its graphics drivers) and are deliberately not bundled.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: appimage.sh [--binary PATH] [--libheif PATH] [--out DIR] [--appdir-only]

  --binary PATH   the evatag executable to package (default: target/release/evatag)
  --libheif PATH  the libheif.so.1 to carry (default: the system's, found with ldconfig)
  --out DIR       where to write the AppImage (default: target/packaging)
  --appdir-only   assemble DIR/evatag.AppDir and stop
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary="$root/target/release/evatag"
out="$root/target/packaging"
appdir_only=0
libheif=""

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --binary=*) binary="${1#*=}"; shift ;;
        --libheif) libheif="${2:?--libheif needs a path}"; shift 2 ;;
        --libheif=*) libheif="${1#*=}"; shift ;;
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
# Debian package that holds it, where dpkg knows the file, with the full licence texts it
# refers to (/usr/share/common-licenses/LGPL-3 and so on, at the same path in the AppDir),
# and a line in usr/share/doc/SOURCES that names the package's source and where Debian
# keeps it.
copy_copyright() {
    local owner source text
    command -v dpkg-query >/dev/null || return 0
    owner="$(dpkg-query -S "$(readlink -f "$1")" 2>/dev/null)" || return 0
    owner="${owner%%$'\n'*}"
    owner="${owner%%:*}"
    [ -n "$owner" ] || return 0
    if [ -f "/usr/share/doc/$owner/copyright" ]; then
        install -Dm644 "/usr/share/doc/$owner/copyright" "$appdir/usr/share/doc/$owner/copyright"
        while read -r text; do
            if [ -f "$text" ]; then
                install -Dm644 "$text" "$appdir$text"
            fi
        done < <(grep -o '/usr/share/common-licenses/[A-Za-z0-9.+-]*[A-Za-z0-9+-]' "/usr/share/doc/$owner/copyright" | sort -u)
    fi
    source="$(dpkg-query -W -f='${Package} ${Version}: source package ${source:Package} ${source:Version}, https://snapshot.debian.org/package/${source:Package}/${source:Version}/' "$owner" 2>/dev/null)" || return 0
    mkdir -p "$appdir/usr/share/doc"
    if ! grep -qxF "$source" "$appdir/usr/share/doc/SOURCES" 2>/dev/null; then
        echo "$source" >>"$appdir/usr/share/doc/SOURCES"
    fi
}

# libheif: the library and its decoder plugins. The AppImage promises HEIC, HEIF and
# AVIF, so a machine without libheif cannot build it.
if [ -z "$libheif" ]; then
    tried=()
    # ldconfig's cache, then the multiarch folder of this machine's compiler.
    while read -r path; do
        tried+=("$path")
    done < <("$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | awk '$1 == "libheif.so.1" { print $NF }')
    if command -v gcc >/dev/null; then
        tried+=("/usr/lib/$(gcc -dumpmachine)/libheif.so.1")
    fi
    # The first that exists and is built for the binary's machine.
    want="$(readelf -h "$binary" 2>/dev/null | awk -F: '/Machine:/ { print $2 }')"
    for path in "${tried[@]}"; do
        [ -f "$path" ] || continue
        if [ -n "$want" ] && [ "$(readelf -h "$path" 2>/dev/null | awk -F: '/Machine:/ { print $2 }')" != "$want" ]; then
            continue
        fi
        libheif="$path"
        break
    done
    if [ -z "$libheif" ]; then
        echo "appimage.sh: libheif.so.1 not found (tried ${tried[*]:-ldconfig -p}); install libheif" \
            "1.13 or newer (Debian/Ubuntu: apt-get install libheif1) or pass --libheif PATH" >&2
        exit 1
    fi
elif [ ! -f "$libheif" ]; then
    echo "appimage.sh: --libheif $libheif: no such file" >&2
    exit 1
fi
heif_lib="$(readlink -f "$libheif")"
# The name evatag loads, beside usr/bin.
install -Dm644 "$heif_lib" "$appdir/usr/lib/libheif.so.1"
copy_copyright "$heif_lib"

# HEVC (HEIC) needs libheif-libde265.so, AV1 (AVIF) libheif-dav1d.so or libheif-aomdec.so,
# unless libheif was built with that decoder inside it. Only decoders are copied. The
# plugin folder always exists in the AppDir, so that AppRun points libheif at it and the
# bundled libheif never loads the host's plugins.
heif_plugins="$appdir/usr/lib/libheif/plugins"
mkdir -p "$heif_plugins"
# Where to look for the plugins: LIBHEIF_PLUGIN_PATH, as libheif itself reads it, else the
# plugin folder beside the library.
plugin_dirs=()
if [ -n "${LIBHEIF_PLUGIN_PATH:-}" ]; then
    IFS=: read -ra plugin_dirs <<<"$LIBHEIF_PLUGIN_PATH"
else
    plugin_dirs+=("$(dirname "$heif_lib")/libheif/plugins")
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

# The libraries libheif and its plugins link, as "name path" lines, except the base
# system's (glibc, libstdc++, libgcc_s, zlib). Run before any run path in the AppDir is
# set, so that they resolve to the system's.
heif_deps() {
    local file
    for file in "$heif_lib" "$heif_plugins"/*.so; do
        [ -f "$file" ] || continue
        ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }'
    done | while read -r name path; do
        case "$name" in
            ld-linux*.so.* | libc.so.* | libm.so.* | libmvec.so.* | libdl.so.* | libpthread.so.* | \
                librt.so.* | libresolv.so.* | libstdc++.so.* | libgcc_s.so.* | libz.so.*) continue ;;
        esac
        echo "$name $path"
    done | sort -u
}
# Their licences, whoever copies the libraries (linuxdeploy or bundle_libraries).
while read -r name path; do
    copy_copyright "$path"
done < <(heif_deps)

# The entry point: sets LIBHEIF_PLUGIN_PATH to the bundled plugins, then starts evatag
# with the arguments (such as file paths) it was given.
write_apprun() {
    cat >"$1" <<'EOF'
#!/bin/sh
# Starts evatag from its AppImage; evatag loads usr/lib/libheif.so.1, which loads the
# HEIC and AVIF decoder plugins bundled here (or has them built in).
here="$(dirname "$(readlink -f "$0")")"
if [ -d "$here/usr/lib/libheif/plugins" ]; then
    LIBHEIF_PLUGIN_PATH="$here/usr/lib/libheif/plugins"
    export LIBHEIF_PLUGIN_PATH
fi
exec "$here/usr/bin/evatag" "$@"
EOF
    chmod 755 "$1"
}

# Without linuxdeploy: copies what libheif and its plugins link into usr/lib, and sets the
# run paths of libheif and of the copies to usr/lib ($ORIGIN), and of the plugins to
# usr/lib ($ORIGIN/../..).
# shellcheck disable=SC2016 # $ORIGIN is literal
bundle_libraries() {
    if ! command -v patchelf >/dev/null; then
        echo "appimage.sh: bundling libheif without linuxdeploy needs patchelf (apt-get install patchelf)" >&2
        exit 1
    fi
    local file name path
    while read -r name path; do
        [ -e "$appdir/usr/lib/$name" ] && continue
        install -Dm644 "$path" "$appdir/usr/lib/$name"
        patchelf --set-rpath '$ORIGIN' "$appdir/usr/lib/$name"
    done < <(heif_deps)
    patchelf --set-rpath '$ORIGIN' "$appdir/usr/lib/libheif.so.1"
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
    # libheif and its plugins are already in the AppDir; --deploy-deps-only copies what
    # they link and points their run paths at usr/lib.
    heif_args=(--deploy-deps-only "$appdir/usr/lib/libheif.so.1")
    for file in "$heif_plugins"/*.so; do
        if [ -f "$file" ]; then
            heif_args+=(--deploy-deps-only "$file")
        fi
    done
    # It writes the AppImage to the working directory, named from these variables.
    export LINUXDEPLOY_OUTPUT_VERSION="$version"
    export LDAI_OUTPUT="$appimage"
    (cd "$out" && "$linuxdeploy" --appdir "$appdir" \
        --executable "$inputs/evatag" \
        "${heif_args[@]}" \
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
