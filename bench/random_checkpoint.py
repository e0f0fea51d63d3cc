"""Writes a model folder with EVA-giant's architecture and random weights (4.05 GB), for
benchmarks that load weights from disk without downloading the real ones:

    ~/venv-ref/bin/python bench/random_checkpoint.py /tmp/eva-giant-random
    cargo run --release --example library_bench -- throughput /tmp/eva-giant-random
    /usr/bin/time -v target/release/evatag tag --model-dir /tmp/eva-giant-random photos/

Needs torch, timm and safetensors (see bench/README.md).
"""

import json
import pathlib
import sys

import timm
from safetensors.torch import save_file

ARCHITECTURE = "eva_giant_patch14_224"


def main() -> None:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "eva-giant-random")
    out.mkdir(parents=True, exist_ok=True)
    model = timm.create_model(ARCHITECTURE, pretrained=False)
    # k_bias is a non-persistent buffer, never part of timm's checkpoints.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("k_bias")}
    save_file(state, str(out / "model.safetensors"))
    config = {
        "architecture": ARCHITECTURE,
        "num_classes": 1000,
        "num_features": model.num_features,
        "global_pool": "avg",
        "pretrained_cfg": {
            "input_size": [3, 224, 224],
            "interpolation": "bicubic",
            "crop_pct": 0.9,
            "crop_mode": "center",
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
            "num_classes": 1000,
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    print(f"{out}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} parameters", file=sys.stderr)


if __name__ == "__main__":
    main()
