#!/usr/bin/env bash
# Sets up the CUDA 13 toolkit from NVIDIA's pip wheels, without a system CUDA or a GPU, and prints the environment
# that `cargo check --features cuda` and `cargo build --features cuda` need, ready for `eval`:
#
#   eval "$(packaging/cuda/toolkit.sh)"            # nvcc and the headers: enough to check the CUDA build
#   eval "$(packaging/cuda/toolkit.sh --link)"     # also the libraries and a stub driver: enough to link it
#
# Environment:
#   CUDA_VENV          where the wheels are installed (default: ~/.cache/evatag/cuda-toolkit); reused when present
#   CUDA_COMPUTE_CAP   the GPU generation the kernels are compiled for (default: 80, PTX that the driver compiles
#                      for any newer GPU at first use; 90 would give sm_90a code, which runs on sm_90 only)
#   PYTHON             the interpreter that makes the venv (default: python3)
#
# With --link, the unversioned library names the linker looks for (libcublas.so, libcurand.so, libnvrtc.so, ...)
# are made as links, and a stub libcuda.so (soname libcuda.so.1) is compiled from the driver functions candle's
# CUDA crate (cudarc) declares; every function of the stub returns CUDA_ERROR_STUB_LIBRARY. The NVIDIA driver
# provides the real libcuda.so.1 on a machine with a GPU; the stub only lets the build link, and lets the fallback
# to the CPU be tested where there is no GPU (`LD_LIBRARY_PATH=$EVATAG_CUDA_STUB`).
set -euo pipefail

# CUDA 13.0, the oldest CUDA 13: the driver compiles the kernels' PTX at first use and refuses PTX written by a
# newer toolkit than its own CUDA version, so 13.0's PTX (ISA 9.0) loads on every driver from 580 on
# (tests/cuda_fallback.rs checks the ISA in the binary).
TOOLKIT_VERSION=13.0.3.0
CUDA_VENV="${CUDA_VENV:-$HOME/.cache/evatag/cuda-toolkit}"
PYTHON="${PYTHON:-python3}"
link=false
case "${1:-}" in
  --link) link=true ;;
  "") ;;
  *) echo "usage: packaging/cuda/toolkit.sh [--link]" >&2; exit 2 ;;
esac

parts="nvcc,cccl"
$link && parts="$parts,cudart,nvrtc,cublas,curand"
stamp="$CUDA_VENV/.evatag-$TOOLKIT_VERSION-$parts"
if [ ! -e "$stamp" ]; then
  echo "installing cuda-toolkit[$parts]==$TOOLKIT_VERSION into $CUDA_VENV" >&2
  "$PYTHON" -m venv "$CUDA_VENV" >&2
  "$CUDA_VENV/bin/pip" install --quiet --disable-pip-version-check "cuda-toolkit[$parts]==$TOOLKIT_VERSION" >&2
  touch "$stamp"
fi
cuda_home="$("$CUDA_VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
[ -x "$cuda_home/bin/nvcc" ] || { echo "error: no nvcc under $cuda_home" >&2; exit 1; }

echo "export CUDA_HOME='$cuda_home' CUDA_PATH='$cuda_home' CUDA_COMPUTE_CAP='${CUDA_COMPUTE_CAP:-80}'"
echo "export PATH='$cuda_home/bin':\"\$PATH\""

if $link; then
  lib="$cuda_home/lib"
  for versioned in "$lib"/lib*.so.*; do
    name="$(basename "$versioned")"
    ln -sf "$name" "$lib/${name%%.so.*}.so"  # -f: replaces a link left by another version
  done
  stub="$CUDA_VENV/stub"
  if [ ! -e "$stub/libcuda.so.1" ]; then
    mkdir -p "$stub"
    # cudarc's driver bindings declare each function as `pub fn cuName(` (or in a loaded-library table); every
    # one becomes a C function of the stub that returns CUDA_ERROR_STUB_LIBRARY (34).
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    cudarc="$(cd "$root" && cargo metadata --format-version 1 --features cuda | "$PYTHON" -c '
import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc").rsplit("/", 1)[0])')"
    sys="$cudarc/src/driver/sys"
    [ -d "$sys" ] || { echo "error: no driver bindings under $cudarc" >&2; exit 1; }
    grep -rhoE '\bcu[A-Z][A-Za-z0-9_]*\(' "$sys" | tr -d '(' | sort -u \
      | awk '{print "int " $1 "(void) { return 34; }"}' > "$stub/libcuda.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so.1" "$stub/libcuda.c"
    ln -sf libcuda.so.1 "$stub/libcuda.so"
  fi
  echo "export LIBRARY_PATH='$lib:$stub':\"\${LIBRARY_PATH:-}\" EVATAG_CUDA_STUB='$stub'"
  echo "export LD_LIBRARY_PATH='$lib':\"\${LD_LIBRARY_PATH:-}\""
fi
