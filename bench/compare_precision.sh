#!/usr/bin/env bash
# Times EVA-giant in f32 and in bf16, evatag and PyTorch + timm back to back in one run, at batch 1 and 4 on the CPU:
# seconds per image (model only) and peak resident memory of each process, as a Markdown table.
#
# Usage: bench/compare_precision.sh [MODEL]     (default: eva_giant_patch14_224.clip_ft_in1k)
#
# Environment: as for bench/compare_models.sh (EVATAG_BIN, PYTHON, THREADS, ITERS, WORKDIR), and
#   BATCHES      batch sizes to time (default: "1 4")
#
# evatag loads the f32 checkpoint with random weights written by bench/random_checkpoint.py, memory-mapped; with
# --dtype bf16 it rounds each linear layer's weight to bf16 as it loads it, so its peak memory includes loading.
# PyTorch builds the same model with random weights and converts it with .to(torch.bfloat16).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/side_by_side.sh"
BATCHES="${BATCHES:-1 4}"
model="${1:-eva_giant_patch14_224.clip_ft_in1k}"
dir="$(random_checkpoint "$model")"

echo "CPU: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $THREADS threads, $(date -u +%F)" >&2
echo "| Batch | Precision | evatag s/image | PyTorch s/image | evatag / PyTorch | evatag peak RSS | PyTorch peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for batch in $BATCHES; do
  for dtype in f32 bf16; do
    echo "== batch $batch, $dtype: evatag" >&2
    mapfile -t rust < <(RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" \
      measure "$EVATAG_BIN" bench --model-dir "$dir" --device cpu --dtype "$dtype" --batch "$batch" --iters "$ITERS")
    echo "== batch $batch, $dtype: pytorch" >&2
    mapfile -t torch < <(measure "$PYTHON" "$root/bench/torch_reference.py" --model "$model" --dtype "$dtype" \
      --batch "$batch" --iters "$ITERS" --threads "$THREADS")
    echo "${rust[0]}" >&2
    echo "${torch[0]}" >&2
    "$PYTHON" - "$batch" "$dtype" "${rust[0]}" "${rust[1]}" "${torch[0]}" "${torch[1]}" <<'PY'
import json, sys
batch, dtype, rust, rust_kb, torch, torch_kb = sys.argv[1:7]
r, t = json.loads(rust)["seconds_per_image"], json.loads(torch)["seconds_per_image"]
gb = lambda kb: f"{int(kb) * 1024 / 1e9:.2f} GB"
print(f"| {batch} | {dtype} | {r:.3f} | {t:.3f} | {r / t:.2f} | {gb(rust_kb)} | {gb(torch_kb)} |", flush=True)
PY
  done
done
