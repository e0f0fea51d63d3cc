"""Writes a model folder (config.json + model.safetensors) with a registered model's architecture and
transform and random weights, for benchmarks that load weights from disk without downloading the real ones:

    ~/venv-ref/bin/python bench/random_checkpoint.py /tmp/eva-giant-random
    ~/venv-ref/bin/python bench/random_checkpoint.py /tmp/eva02-small-random eva02_small_patch14_336.mim_in22k_ft_in1k
    cargo run --release --example library_bench -- throughput /tmp/eva-giant-random
    /usr/bin/time -v target/release/evatag tag --model-dir /tmp/eva-giant-random photos/

The second argument is timm's model name with its pretrained tag (default: EVA-giant's); the checkpoint has the
tensors timm saves for it (4.05 GB for EVA-giant). Needs torch, timm and safetensors (see bench/README.md).
"""

import json
import pathlib
import sys

import timm
from safetensors.torch import save_file

DEFAULT_MODEL = "eva_giant_patch14_224.clip_ft_in1k"


def main() -> None:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "eva-giant-random")
    name = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_MODEL
    out.mkdir(parents=True, exist_ok=True)
    model = timm.create_model(name, pretrained=False)
    # k_bias is a non-persistent buffer, never part of timm's checkpoints.
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("k_bias")}
    save_file(state, str(out / "model.safetensors"))
    cfg = model.pretrained_cfg
    config = {
        "architecture": cfg["architecture"],
        "num_classes": 1000,
        "num_features": model.num_features,
        "global_pool": "avg",
        "pretrained_cfg": {
            "tag": cfg["tag"],
            "input_size": list(cfg["input_size"]),
            "interpolation": cfg["interpolation"],
            "crop_pct": cfg["crop_pct"],
            "crop_mode": cfg.get("crop_mode", "center"),
            "mean": list(cfg["mean"]),
            "std": list(cfg["std"]),
            "num_classes": 1000,
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    size = (out / "model.safetensors").stat().st_size
    print(f"{out}: {name}, {len(state)} tensors, {sum(v.numel() for v in state.values()):,} parameters, "
          f"{size:,} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
