#!/usr/bin/env bash
# Times evatag and the PyTorch reference (timm) back to back on the same batch size and thread count, and prints
# both JSON lines and the ratio of their seconds per image (below 1.00: evatag is faster); then PyTorch's own f32
# products alone at the model's linear shapes (bench/torch_products.py), the yardstick for evatag's.
#
# Usage: bench/compare.sh [BATCH] [ITERS]        (defaults: 1 and 3)
#
# Environment:
#   EVATAG_BIN   a prebuilt evatag binary; otherwise `cargo run --release --quiet --` builds and runs it
#   PYTHON       interpreter with torch and timm installed (default: python3), e.g. ~/venv-ref/bin/python
#   THREADS      threads for both (default: the number of CPUs); evatag gets it as RAYON_NUM_THREADS
#                and OMP_NUM_THREADS, PyTorch as --threads
#   WARMUP       untimed passes before timing, PyTorch side (default: 1)
#   EVATAG_SIMD  avx2 or generic caps evatag's vector level, and PyTorch's with it (ATen's kernels, MKL's and
#                oneDNN's products), so that an AVX-512 machine compares both programs' AVX2 paths
#
# Both sides time eva_giant_patch14_224 in float32 with random weights: nothing is downloaded.
set -euo pipefail

BATCH="${1:-1}"
ITERS="${2:-3}"
PYTHON="${PYTHON:-python3}"
THREADS="${THREADS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)}"
WARMUP="${WARMUP:-1}"

case "$BATCH$ITERS$THREADS" in
  *[!0-9]*) echo "usage: bench/compare.sh [BATCH] [ITERS]  (positive integers; THREADS too)" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! "$PYTHON" -c 'import torch, timm' 2>/dev/null; then
  echo "error: $PYTHON cannot import torch and timm; set PYTHON to the reference venv (see bench/README.md)" >&2
  exit 1
fi

echo "batch $BATCH, iters $ITERS, threads $THREADS" >&2

echo "== evatag" >&2
if [ -n "${EVATAG_BIN:-}" ]; then
  evatag=("$EVATAG_BIN")
else
  evatag=(cargo run --release --quiet --)
fi
rust_json="$(RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" \
  "${evatag[@]}" bench --batch "$BATCH" --iters "$ITERS" | tail -n 1)"

echo "== pytorch" >&2
case "${EVATAG_SIMD:-}" in
  avx2) torch_level=(ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2) ;;
  generic) torch_level=(ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41) ;;
  *) torch_level=() ;;
esac
torch_json="$(env "${torch_level[@]}" "$PYTHON" bench/torch_reference.py --batch "$BATCH" --iters "$ITERS" --threads "$THREADS" \
  --warmup "$WARMUP" | tail -n 1)"

echo "== pytorch, matrix products alone" >&2
products_json="$(env "${torch_level[@]}" "$PYTHON" bench/torch_products.py --batch "$BATCH" --threads "$THREADS" \
  | tail -n 1)"

echo "$rust_json"
echo "$torch_json"
echo "$products_json"
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
family="$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
model="$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
"$PYTHON" - "$rust_json" "$torch_json" "$products_json" "${cpu:-unknown CPU} (family ${family:-?} model ${model:-?})" <<'PY'
import json, sys
rust, torch, products = (json.loads(s) for s in sys.argv[1:4])
cpu = sys.argv[4]
for name, r, keys in (("evatag", rust, ("seconds_per_image", "images_per_second")),
                      ("pytorch", torch, ("seconds_per_image", "images_per_second")),
                      ("pytorch products", products, ("matrix_product_gflops",))):
    for key in keys:
        if not isinstance(r.get(key), (int, float)):
            sys.exit(f"error: the {name} result has no numeric {key!r}: {r}")
ratio = rust["seconds_per_image"] / torch["seconds_per_image"]
print(f"ratio evatag/pytorch seconds per image: {ratio:.2f}")
peak = rust.get("peak_gflops")
if isinstance(peak, (int, float)) and peak > 0:
    # Both sides run the same arithmetic: evatag's count of it gives PyTorch's rate as well.
    torch_gflops = rust["gflop_per_image"] / torch["seconds_per_image"]
    share = rust["time_share"]
    torch_products = products["matrix_product_gflops"]
    print(f"matrix products alone: evatag {rust['matrix_product_gflops']:.1f} GFLOP/s "
          f"({rust['matrix_product_efficiency']:.1%} of the probe), PyTorch's f32 linear ({products['blas']}) "
          f"{torch_products:.1f} GFLOP/s ({torch_products / peak:.1%})")
    print("| CPU | SIMD | threads | batch | evatag s/image | evatag efficiency | matrix products' efficiency "
          "| PyTorch s/image | PyTorch efficiency | ratio | peak GFLOP/s (1 thread) | time: matmul / attention / rest "
          "| PyTorch's products alone |")
    print(f"| {cpu} | {rust['cpu_kernels']} | {rust['threads']} | {rust['batch']} "
          f"| {rust['seconds_per_image']:.3f} | {rust['efficiency']:.1%} | {rust['matrix_product_efficiency']:.1%} "
          f"| {torch['seconds_per_image']:.3f} "
          f"| {torch_gflops / peak:.1%} | {ratio:.2f} | {peak:.0f} ({rust['peak_gflops_one_thread']:.0f}) "
          f"| {share['matrix_products']:.0%} / {share['attention']:.0%} / {share['rest']:.0%} "
          f"| {torch_products / peak:.1%} |")
PY
