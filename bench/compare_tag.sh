#!/usr/bin/env bash
# Times the whole job, start to finish, of tagging photos with a model folder: `evatag tag` and the same job in
# PyTorch + timm (bench/torch_tag.py), back to back, with the same batch size and thread count. Each run's wall time
# includes start-up, loading the checkpoint, decoding, preprocessing and the model. Prints both times, both peak
# resident memories and the ratio of the times (below 1.00: evatag is faster). evatag runs with --no-cache, so
# every photo goes through the model.
#
# Usage: bench/compare_tag.sh MODEL_DIR PHOTO...
#
# Environment: EVATAG_BIN (default target/release/evatag), PYTHON (default python3), THREADS (default: all CPUs),
# BATCH (default 4), FIRST (evatag or pytorch: which runs first, default evatag). On a virtual machine whose host
# backs its memory only when touched, and takes back what the guest frees, the first program after an idle spell can
# spend many seconds in page faults that the second does not: alternate FIRST between rounds.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: bench/compare_tag.sh MODEL_DIR PHOTO..." >&2
  exit 2
fi
model_dir="$1"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EVATAG_BIN="${EVATAG_BIN:-$root/target/release/evatag}"
PYTHON="${PYTHON:-python3}"
THREADS="${THREADS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)}"
BATCH="${BATCH:-4}"
FIRST="${FIRST:-evatag}"
case "$FIRST" in evatag | pytorch) ;; *) echo "FIRST must be evatag or pytorch" >&2; exit 2 ;; esac

# Runs a command with its output discarded; prints "<wall seconds> <peak KiB>".
timed() {
  local report
  report="$(mktemp)"
  /usr/bin/time -f '%e %M' -o "$report" "$@" >/dev/null
  cat "$report"
  rm -f "$report"
}

run_evatag() {
  read -r evatag_s evatag_kib < <(RAYON_NUM_THREADS="$THREADS" \
    timed "$EVATAG_BIN" tag --no-cache --batch "$BATCH" --model-dir "$model_dir" "$@")
}
run_pytorch() {
  read -r torch_s torch_kib < <(timed "$PYTHON" "$root/bench/torch_tag.py" --model-dir "$model_dir" \
    --batch "$BATCH" --threads "$THREADS" "$@")
}

echo "${#} photos, batch $BATCH, threads $THREADS, $FIRST first" >&2
if [ "$FIRST" = pytorch ]; then
  run_pytorch "$@"
  run_evatag "$@"
else
  run_evatag "$@"
  run_pytorch "$@"
fi
echo "evatag:  $evatag_s s, peak $((evatag_kib / 1024)) MiB"
echo "pytorch: $torch_s s, peak $((torch_kib / 1024)) MiB"
awk -v e="$evatag_s" -v t="$torch_s" 'BEGIN { printf "ratio evatag/pytorch wall time: %.2f\n", e / t }'
