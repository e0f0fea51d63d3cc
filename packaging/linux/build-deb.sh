#!/usr/bin/env bash
# Build a Debian package of evatag from an already built binary.
#
#   cargo build --release
#   packaging/linux/build-deb.sh                      # uses target/release/evatag
#   packaging/linux/build-deb.sh --binary path/to/evatag --arch arm64
#
#   eval "$(packaging/cuda/toolkit.sh --link)"
#   RUSTFLAGS='-C link-arg=-Wl,-rpath,$ORIGIN' cargo build --release --features cuda
#   packaging/linux/build-deb.sh --cuda "$CUDA_HOME/lib"    # the separate evatag-cuda package
#
# Output: target/packaging/evatag_<version>_<arch>.deb (or evatag-cuda_...), version read from Cargo.toml.
# evatag reads HEIC, HEIF and AVIF with the system's libheif, which it loads at run time
# (dlopen of libheif.so.1), so no tool sees it in the binary: both packages depend on
# libheif1 (>= 1.15) and recommend its HEVC and AV1 decoder plugins. Debian 12's libheif1
# (1.15) has the decoders built in; Debian 13 and Ubuntu 24.04 package them as plugins.
# Camera RAW needs no library.
# The CUDA package holds the CUDA build with the CUDA libraries it links (cuBLAS, cuRAND, NVRTC,
# copied from the folder given) in /usr/lib/evatag-cuda, found through the binary's $ORIGIN run
# path; it needs the NVIDIA driver (libcuda.so.1, 580 or newer), replaces the evatag package and
# provides it.
# Needs dpkg-deb (any Debian or Ubuntu system). When dpkg-shlibdeps (package dpkg-dev)
# is present and the binary is an ELF file, the libc6/libgcc-s1 version constraints are
# computed from the binary's symbols; otherwise they are left unversioned.
# Set DEB_MAINTAINER="Name <email>" to override the Maintainer field.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: build-deb.sh [--binary PATH] [--out DIR] [--arch ARCH] [--cuda LIBDIR]

  --binary PATH   the evatag executable to package (default: target/release/evatag)
  --cuda LIBDIR   package a CUDA build as evatag-cuda, with the CUDA libraries from LIBDIR
  --out DIR       where to write the .deb (default: target/packaging)
  --arch ARCH     Debian architecture (default: dpkg --print-architecture)
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary="$root/target/release/evatag"
out="$root/target/packaging"
arch=""
cuda_libs=""

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --binary=*) binary="${1#*=}"; shift ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --out=*) out="${1#*=}"; shift ;;
        --arch) arch="${2:?--arch needs a value}"; shift 2 ;;
        --arch=*) arch="${1#*=}"; shift ;;
        --cuda) cuda_libs="${2:?--cuda needs the folder of the CUDA libraries}"; shift 2 ;;
        --cuda=*) cuda_libs="${1#*=}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "build-deb.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ ! -f "$binary" ]; then
    echo "build-deb.sh: binary not found: $binary (run 'cargo build --release' or pass --binary)" >&2
    exit 1
fi
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb is required" >&2; exit 1; }

# The version of the [package] table in Cargo.toml.
version="$(awk '
    /^\[/ { in_pkg = ($0 == "[package]") }
    in_pkg && /^version[[:space:]]*=/ { gsub(/.*=[[:space:]]*"|".*/, ""); print; exit }
' "$root/Cargo.toml")"
if [ -z "$version" ]; then
    echo "build-deb.sh: could not read the version from Cargo.toml" >&2
    exit 1
fi

if [ -z "$arch" ]; then
    arch="$(dpkg --print-architecture 2>/dev/null || true)"
fi
if [ -z "$arch" ]; then
    case "$(uname -m)" in
        x86_64) arch=amd64 ;;
        aarch64) arch=arm64 ;;
        armv7l) arch=armhf ;;
        *) arch="$(uname -m)" ;;
    esac
fi

app_id=org.evatag.Evatag
linux="$root/packaging/linux"
icons="$root/assets/icons"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/pkg"

package=evatag
if [ -n "$cuda_libs" ]; then
    package=evatag-cuda
    # The binary finds the libraries beside it only through an $ORIGIN run path.
    # shellcheck disable=SC2016 # $ORIGIN is literal
    if ! readelf -d "$binary" 2>/dev/null | grep -q 'R.*PATH.*\$ORIGIN'; then
        echo "build-deb.sh: $binary has no \$ORIGIN run path; build it with" \
            "RUSTFLAGS='-C link-arg=-Wl,-rpath,\$ORIGIN' cargo build --release --features cuda" >&2
        exit 1
    fi
    install -Dm755 "$binary" "$pkg/usr/lib/evatag-cuda/evatag"
    mkdir -p "$pkg/usr/bin"
    ln -s ../lib/evatag-cuda/evatag "$pkg/usr/bin/evatag"
    copied=0
    for lib in "$cuda_libs"/lib{cublas,cublasLt,curand,nvrtc,nvrtc-builtins,cudart}.so.*; do
        [ -f "$lib" ] && [ ! -L "$lib" ] || continue
        install -Dm644 "$lib" "$pkg/usr/lib/evatag-cuda/$(basename "$lib")"
        copied=$((copied + 1))
    done
    [ "$copied" -gt 0 ] || { echo "build-deb.sh: no CUDA library in $cuda_libs" >&2; exit 1; }
else
    install -Dm755 "$binary" "$pkg/usr/bin/evatag"
fi
install -Dm644 "$linux/$app_id.desktop" "$pkg/usr/share/applications/$app_id.desktop"
install -Dm644 "$linux/$app_id.metainfo.xml" "$pkg/usr/share/metainfo/$app_id.metainfo.xml"
for size in 16 24 32 48 64 128 256 512; do
    install -Dm644 "$icons/evatag-$size.png" "$pkg/usr/share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done
install -Dm644 "$root/assets/icon.svg" "$pkg/usr/share/icons/hicolor/scalable/apps/$app_id.svg"
install -Dm644 "$linux/copyright" "$pkg/usr/share/doc/$package/copyright"

maintainer="${DEB_MAINTAINER:-The evatag developers <maintainers@evatag.org>}"
# Debian policy wants a changelog even for packages built outside the archive.
# SOURCE_DATE_EPOCH, when set, fixes the dates written here.
build_date="$(date -u -R ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"})"
cat >"$stage/changelog" <<EOF
$package ($version) unstable; urgency=medium

  * evatag $version, packaged from the upstream release.

 -- $maintainer  $build_date
EOF
gzip -9n <"$stage/changelog" >"$pkg/usr/share/doc/$package/changelog.gz"
chmod 644 "$pkg/usr/share/doc/$package/changelog.gz"

# Libraries the binary links against: libc6 and libgcc-s1 (Rust's unwinder); the model
# needs no system library. With dpkg-shlibdeps we get the minimum versions the binary needs.
linked="libc6, libgcc-s1"
if command -v dpkg-shlibdeps >/dev/null && head -c4 "$binary" | grep -q 'ELF'; then
    mkdir -p "$stage/shlibs/debian"
    printf 'Source: evatag\n\nPackage: evatag\nArchitecture: any\n' >"$stage/shlibs/debian/control"
    if found="$(cd "$stage/shlibs" && dpkg-shlibdeps -O "$(readlink -f "$pkg/usr/bin/evatag")" 2>/dev/null)"; then
        found="${found#shlibs:Depends=}"
        [ -n "$found" ] && linked="$found"
    fi
fi

# Libraries that evatag (libheif) and eframe/winit/glutin (the rest) load with dlopen() at
# run time, so no tool can find them from the binary:
# - Depends: libheif1 1.15 or newer (Debian 12, 13, Ubuntu 24.04) for HEIC, HEIF and AVIF;
#   evatag uses only the C API that libheif 1.13 has.
# - Recommends: libheif's HEVC decoder plugin (HEIC) and an AV1 decoder plugin (AVIF),
#   which Debian 13 and Ubuntu 24.04 package apart from libheif1. Debian 12 has no such
#   packages (its libheif1 has both decoders built in); apt skips a Recommends it cannot
#   satisfy.
# - Depends: OpenGL through GLX (libgl1; tried first on X11) or EGL (libegl1; Wayland,
#   and the X11 fallback), and libxkbcommon0 for the keyboard on both.
# - Recommends: the X11 set (libx11-6, libx11-xcb1, libxcursor1, libxi6,
#   libxkbcommon-x11-0) is used only on X11 desktops and the Wayland set
#   (libwayland-client0, libwayland-cursor0, libwayland-egl1) only on Wayland desktops;
#   either set alone is enough, so neither can be a hard dependency. apt installs
#   Recommends by default, and desktop systems normally have both sets already.
# - The file dialog talks to the XDG desktop portal over D-Bus (libdbus-1-3, loaded at
#   run time) and falls back to zenity when no portal is running.
depends="$linked, libheif1 (>= 1.15), libgl1, libegl1, libxkbcommon0"
recommends="libheif-plugin-libde265, libheif-plugin-dav1d | libheif-plugin-aomdec, \
libx11-6, libx11-xcb1, libxcursor1, libxi6, libxkbcommon-x11-0, \
libwayland-client0, libwayland-cursor0, libwayland-egl1, libdbus-1-3, xdg-desktop-portal | zenity"

extra=""
summary="Opens JPEG, PNG, WebP, TIFF, BMP, GIF, HEIC/HEIF, AVIF and camera RAW files
 (DNG, CR2, CR3, NEF, ARW, RAF, RW2, ORF, PEF and more) and whole folders."
if [ "$package" = evatag-cuda ]; then
    # libcuda.so.1 comes with the NVIDIA driver, under the distribution's or NVIDIA's name.
    depends="$depends, libcuda1 (>= 580) | libnvidia-compute-580 | libnvidia-compute-590 | cuda-drivers (>= 580)"
    extra="Conflicts: evatag
Replaces: evatag
Provides: evatag
"
    summary="$summary
 .
 This build runs the model on NVIDIA GPUs with CUDA 13 (the CUDA libraries are
 included) and needs the NVIDIA driver 580 or newer; without a GPU it runs on
 the CPU."
fi

installed_size="$(du -sk --apparent-size "$pkg" | cut -f1)"
mkdir -p "$pkg/DEBIAN"
cat >"$pkg/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Recommends: $recommends
${extra}Section: graphics
Priority: optional
Homepage: https://github.com/evatag/evatag
Description: Tag photos with ImageNet labels and find similar ones, on your own computer
 evatag labels each photo with the ImageNet classes it recognises and finds the
 photos in a collection that look most like a chosen one. The EVA-CLIP image
 model runs locally; it is downloaded once, on first use.
 .
 $summary
EOF

(cd "$pkg" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"
find "$pkg" -type d -exec chmod 755 {} +

mkdir -p "$out"
deb="$out/${package}_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Zxz "$pkg" "$deb" >/dev/null
echo "$deb"
