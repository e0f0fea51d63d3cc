#!/usr/bin/env bash
# Times evatag and PyTorch + timm back to back for each registered model at batch 1, seconds per image (model only)
# and peak resident memory of each process, and prints a Markdown table with their ratios.
#
# Usage: bench/compare_models.sh [MODEL...]     (default: every registered model, smallest first)
#
# Environment:
#   EVATAG_BIN   evatag binary (default: target/release/evatag, the default `cargo build --release`)
#   PYTHON       interpreter with torch, timm and safetensors (default: python3), e.g. ~/venv-ref/bin/python
#   THREADS      threads for both (default: the number of CPUs): RAYON_NUM_THREADS for evatag,
#                torch.set_num_threads for PyTorch
#   ITERS        timed iterations after one warm-up (default: 3)
#   WORKDIR      where the random checkpoints are written, once per model (default: /tmp/evatag-bench)
#
# evatag loads a checkpoint with random weights written by bench/random_checkpoint.py (timm's own tensors), so its
# peak memory includes loading; PyTorch builds the same model with random weights in memory. Nothing is downloaded.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/side_by_side.sh"

if [ "$#" -gt 0 ]; then
  models=("$@")
else
  models=(eva02_tiny_patch14_336.mim_in22k_ft_in1k eva02_small_patch14_336.mim_in22k_ft_in1k
          eva02_base_patch14_448.mim_in22k_ft_in22k_in1k eva02_large_patch14_448.mim_m38m_ft_in22k_in1k
          eva_giant_patch14_224.clip_ft_in1k)
fi

echo "| Model | evatag s/image | PyTorch s/image | Ratio | evatag peak RSS | PyTorch peak RSS |"
echo "| --- | --- | --- | --- | --- | --- |"
for model in "${models[@]}"; do
  dir="$(random_checkpoint "$model")"
  echo "== $model: evatag" >&2
  mapfile -t rust < <(RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" \
    measure "$EVATAG_BIN" bench --model-dir "$dir" --batch 1 --iters "$ITERS")
  echo "== $model: pytorch" >&2
  mapfile -t torch < <(measure "$PYTHON" "$root/bench/torch_reference.py" --model "$model" --batch 1 \
    --iters "$ITERS" --threads "$THREADS")
  echo "${rust[0]}" >&2
  echo "${torch[0]}" >&2
  "$PYTHON" - "$model" "${rust[0]}" "${rust[1]}" "${torch[0]}" "${torch[1]}" <<'PY'
import json, sys
model, rust, rust_kb, torch, torch_kb = sys.argv[1:6]
r, t = json.loads(rust)["seconds_per_image"], json.loads(torch)["seconds_per_image"]
gb = lambda kb: f"{int(kb) * 1024 / 1e9:.2f} GB"
print(f"| {model} | {r:.3f} | {t:.3f} | {r / t:.2f} | {gb(rust_kb)} | {gb(torch_kb)} |", flush=True)
PY
done
