#!/usr/bin/env bash
# One prepared check of evatag's CUDA build on a machine with an NVIDIA GPU, in a few minutes and without network:
#   1. what the machine has: nvidia-smi, the driver, the CUDA libraries the binary needs, PyTorch if installed;
#   2. parity: the four timm-made test models on the five test photos, on the GPU in f32, f16 and bf16, against
#      the same binary on the CPU in f32 (which the test suite holds equal to timm): embedding cosine at least
#      0.9999 in f32 and 0.999 in f16 and bf16, and the same top class;
#   3. speed: EVA-giant with random weights, model only, at batch 1, 8 and 32 in f32, f16 and bf16, beside
#      PyTorch + timm on the same GPU when they are installed (bench/torch_reference.py --device cuda);
#   4. the whole job: tagging 260 copies of the test photos with EVA-giant (a random checkpoint, written when
#      PyTorch + timm are there to write it) in bf16 at batch 32, with the GPU's utilisation sampled meanwhile.
#
# Usage: bench/gpu_check.sh [EVATAG_CUDA_BINARY]
#   The binary defaults to target/release/evatag; build it where cargo works with
#   `eval "$(packaging/cuda/toolkit.sh --link)" && cargo build --release --features cuda`, strip it, and bring it
#   (compressed with xz or zstd is fine: a .xz or .zst file is unpacked first).
#
# Environment:
#   CUDA_LIBS          folders holding libcublas.so.13, libcurand.so.10 and libnvrtc.so.13 when the system's linker
#                      does not find them (default: searched in ldconfig's cache, /usr/local/cuda*, and the nvidia
#                      wheels of any Python on PATH)
#   GPU_CHECK_DEVICE   the device to check (default: cuda; `cpu` runs the same steps on the CPU, to try the script)
#   PYTHON             the interpreter for the comparisons and PyTorch (default: python3)
#   BATCHES, DTYPES    what step 3 times (default: "1 8 32" and "f32 f16 bf16"); ITERS (default: 3)
#   COPIES             copies of the five test photos tagged in step 4 (default: 52, 260 photos)
#   WORKDIR            where step 4's random checkpoint is written once (default: /tmp/evatag-bench, as in
#                      bench/compare_models.sh)
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
BATCHES="${BATCHES:-1 8 32}"
DTYPES="${DTYPES:-f32 f16 bf16}"
ITERS="${ITERS:-3}"
COPIES="${COPIES:-52}"
WORKDIR="${WORKDIR:-/tmp/evatag-bench}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
section() { printf '\n== %s\n' "$*"; }

bin="${1:-target/release/evatag}"
case "$bin" in
  *.xz) xz -dc "$bin" > "$work/evatag" && chmod +x "$work/evatag" && bin="$work/evatag" ;;
  *.zst) zstd -qdc "$bin" > "$work/evatag" && chmod +x "$work/evatag" && bin="$work/evatag" ;;
esac
[ -x "$bin" ] || { echo "error: no evatag binary at $bin" >&2; exit 1; }

section "machine"
date -u
uname -srm
grep -m1 'model name' /proc/cpuinfo; nproc
nvidia-smi || echo "nvidia-smi: not found or failed"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>/dev/null
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libcublas|libcurand|libnvrtc' || echo "ldconfig: no CUDA library in the linker's cache"

section "CUDA libraries for $bin"
if [ -z "${CUDA_LIBS:-}" ]; then
  candidates=(/usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib)
  for python in python3 python; do
    command -v "$python" >/dev/null || continue
    site="$("$python" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)" || continue
    for dir in $site; do candidates+=("$dir"/nvidia/*/lib "$dir"/nvidia/cu*/lib); done
  done
  CUDA_LIBS=""
  for dir in "${candidates[@]}"; do
    [ -d "$dir" ] && ls "$dir" 2>/dev/null | grep -qE 'lib(cublas|curand|nvrtc)\.so' && CUDA_LIBS="$CUDA_LIBS:$dir"
  done
fi
export LD_LIBRARY_PATH="${CUDA_LIBS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$bin" | grep -E 'cuda|cublas|curand|nvrtc|not found' || echo "the binary links no CUDA library (a CPU build?)"
"$bin" --version

section "PyTorch"
torch_ok=false
if "$PYTHON" -c 'import torch, timm' 2>/dev/null; then
  "$PYTHON" -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__, "cuda", torch.cuda.is_available(), torch.version.cuda)'
  [ "$DEVICE" = cpu ] || "$PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' && torch_ok=true
else
  echo "PyTorch and timm are not installed: evatag alone is timed"
fi

section "parity on $DEVICE against the CPU in f32 (test models, test photos)"
status=0
compare() {  # compare REFERENCE.json CANDIDATE.json MIN_COSINE WHAT
  "$PYTHON" - "$@" <<'PY'
import json, math, sys
reference, candidate, minimum, what = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
load = lambda f: {r["path"]: r for r in map(json.loads, open(f)) if "embedding" in r}
ref, got = load(reference), load(candidate)
worst, top1 = 1.0, 0
for path, r in ref.items():
    a, b = r["embedding"], got[path]["embedding"]
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    worst = min(worst, cos)
    top1 += r["labels"][0]["class"] == got[path]["labels"][0]["class"]
ok = len(got) == len(ref) and worst >= minimum and top1 == len(ref)
print(f"{'ok  ' if ok else 'FAIL'} {what}: {len(got)}/{len(ref)} photos, worst cosine {worst:.7f} (>= {minimum}), same top class {top1}/{len(ref)}")
sys.exit(0 if ok else 1)
PY
}
for model in eva_tiny eva_offset eva02_packed eva02_split; do
  dir="tests/fixtures/models/$model"
  "$bin" tag --no-cache --device cpu --model-dir "$dir" --embedding tests/fixtures/photos > "$work/cpu.json" 2> "$work/err" \
    || { cat "$work/err"; status=1; continue; }
  for dtype in f32 f16 bf16; do
    [ "$DEVICE" = cpu ] && [ "$dtype" = f16 ] && continue
    "$bin" tag --no-cache --device "$DEVICE" --dtype "$dtype" --model-dir "$dir" --embedding tests/fixtures/photos \
      > "$work/$dtype.json" 2> "$work/err"
    if grep -q 'using the CPU' "$work/err"; then echo "FAIL $model $dtype: $(grep 'using the CPU' "$work/err")"; status=1; continue; fi
    minimum=0.999; [ "$dtype" = f32 ] && minimum=0.9999
    compare "$work/cpu.json" "$work/$dtype.json" "$minimum" "$model $dtype on $DEVICE" || status=1
  done
done

section "speed: EVA-giant, random weights, model only ($ITERS timed iterations, median)"
echo "| Batch | Precision | evatag s/image | PyTorch s/image | evatag / PyTorch |"
echo "| --- | --- | --- | --- | --- |"
for batch in $BATCHES; do
  for dtype in $DTYPES; do
    [ "$DEVICE" = cpu ] && [ "$dtype" = f16 ] && continue
    ours="$("$bin" bench --device "$DEVICE" --dtype "$dtype" --batch "$batch" --iters "$ITERS" 2> "$work/err" | tail -n 1)"
    [ -n "$ours" ] || { tail -n 3 "$work/err"; status=1; continue; }
    theirs="{}"
    $torch_ok && theirs="$("$PYTHON" bench/torch_reference.py --device "$DEVICE" --dtype "$dtype" --batch "$batch" \
      --iters "$ITERS" 2> /dev/null | tail -n 1)"
    "$PYTHON" - "$batch" "$dtype" "$ours" "${theirs:-{\}}" <<'PY'
import json, sys
batch, dtype, ours, theirs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
r, t = ours["seconds_per_image"], theirs.get("seconds_per_image")
print(f"| {batch} | {dtype} | {r:.4f} | {f'{t:.4f}' if t else '-'} | {f'{r / t:.2f}' if t else '-'} |")
PY
  done
done

section "the whole job: $((COPIES * 5)) photos, EVA-giant (random checkpoint), bf16, batch 32, GPU utilisation"
giant="$WORKDIR/eva_giant_patch14_224"
if [ ! -s "$giant/model.safetensors" ] && $torch_ok; then
  "$PYTHON" bench/random_checkpoint.py "$giant" eva_giant_patch14_224.clip_ft_in1k 2> /dev/null
fi
if [ -s "$giant/model.safetensors" ]; then
  mkdir -p "$work/photos"
  for i in $(seq 1 "$COPIES"); do for photo in tests/fixtures/photos/*; do cp "$photo" "$work/photos/$i-$(basename "$photo")"; done; done
  # A simple command in the background, so that $! is the sampler itself: one started from a list (`a || b &`)
  # outlived its killed subshell and held the output pipe open, and the script never ended.
  sampler=""
  if [ "$DEVICE" != cpu ]; then
    nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 > "$work/util" 2> /dev/null &
    sampler=$!
  fi
  start=$(date +%s.%N)
  "$bin" tag --no-cache --device "$DEVICE" --dtype bf16 --batch 32 --model-dir "$giant" "$work/photos" > /dev/null \
    2> "$work/err" || { tail -n 3 "$work/err"; status=1; }
  end=$(date +%s.%N)
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null
  tail -n 1 "$work/err" | tr '\r' '\n' | tail -n 1
  "$PYTHON" - "$start" "$end" "$work/util" <<'PY'
import sys
start, end, path = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
try:
    samples = [int(line) for line in open(path) if line.strip().isdigit()]
except OSError:
    samples = []
busy = [s for s in samples if s > 0]
print(f"wall {end - start:.1f} s; GPU utilisation: {len(samples)} samples, mean {sum(samples) / max(len(samples), 1):.0f} %, "
      f"mean while busy {sum(busy) / max(len(busy), 1):.0f} %")
PY
else
  echo "skipped: writing the random checkpoint needs PyTorch and timm"
fi

section "result"
[ "$status" = 0 ] && echo "all checks passed" || echo "some checks FAILED (above)"
exit "$status"
