# What bench/compare_models.sh and bench/compare_precision.sh share, sourced by both: the
# environment's defaults (PYTHON, THREADS, ITERS, WORKDIR, EVATAG_BIN), the check that evatag and
# PyTorch + timm are there, `measure`, and `random_checkpoint`.

PYTHON="${PYTHON:-python3}"
THREADS="${THREADS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)}"
ITERS="${ITERS:-3}"
WORKDIR="${WORKDIR:-/tmp/evatag-bench}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EVATAG_BIN="${EVATAG_BIN:-$root/target/release/evatag}"

[ -x "$EVATAG_BIN" ] || { echo "error: no evatag binary at $EVATAG_BIN; run cargo build --release" >&2; exit 1; }
"$PYTHON" -c 'import torch, timm, safetensors' 2>/dev/null \
  || { echo "error: $PYTHON cannot import torch, timm and safetensors (see bench/README.md)" >&2; exit 1; }

log="$(mktemp -d)"
trap 'rm -rf "$log"' EXIT

# Runs a command under /usr/bin/time -v; prints its last stdout line, then its peak RSS in KB.
measure() {
  /usr/bin/time -v -o "$log/time" "$@" > "$log/out" 2> "$log/err" || { cat "$log/err" >&2; return 1; }
  tail -n 1 "$log/out"
  awk -F': ' '/Maximum resident set size/ {print $2}' "$log/time"
}

# Prints the folder of a random checkpoint of MODEL (timm's name with its tag) under WORKDIR,
# writing it with bench/random_checkpoint.py the first time.
random_checkpoint() {
  local dir="$WORKDIR/${1%%.*}"
  if [ ! -s "$dir/model.safetensors" ]; then
    echo "writing a random checkpoint of $1 to $dir" >&2
    "$PYTHON" "$root/bench/random_checkpoint.py" "$dir" "$1" 2> /dev/null
  fi
  echo "$dir"
}
