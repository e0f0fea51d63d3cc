#!/usr/bin/env python3
"""The job `evatag tag --model-dir DIR PHOTOS...` does, done with PyTorch and timm: the reference for whole-process
timings (`bench/compare_tag.sh`).

Loads the model folder (config.json in timm's layout, model.safetensors), decodes each photo with PIL, applies
timm's eval transform for the model's pretrained_cfg, runs the model in batches and prints one JSON line per photo
with its top-5 classes. Everything is timed together, as a user would wait for it: start-up, loading the
checkpoint, decoding, preprocessing, the forward passes.

    python bench/torch_tag.py --model-dir /tmp/eva-giant-random --batch 4 --threads 2 photos/*.jpg

Needs: torch==2.15.0 timm==1.0.31 pillow (see bench/README.md).
"""
import argparse
import json
import pathlib
import sys

import timm
import torch
from PIL import Image
from safetensors.torch import load_file
from timm.data import create_transform, resolve_data_config


def load_model(model_dir: pathlib.Path) -> tuple[torch.nn.Module, dict]:
    config = json.loads((model_dir / "config.json").read_text())
    model = timm.create_model(
        config["architecture"],
        pretrained=False,
        num_classes=config.get("num_classes", 1000),
        **config.get("model_args", {}),
    )
    state = load_file(str(model_dir / "model.safetensors"))
    # k_bias is a non-persistent buffer that timm's checkpoints never hold.
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if not k.endswith("k_bias")] or unexpected:
        sys.exit(f"checkpoint does not fit {config['architecture']}: missing {missing}, unexpected {unexpected}")
    return model.eval(), config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=pathlib.Path, required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("photos", nargs="+", type=pathlib.Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, config = load_model(args.model_dir)
    transform = create_transform(**resolve_data_config({}, model=model, pretrained_cfg=config["pretrained_cfg"]))
    with torch.inference_mode():
        for start in range(0, len(args.photos), args.batch):
            paths = args.photos[start : start + args.batch]
            batch = torch.stack([transform(Image.open(path).convert("RGB")) for path in paths])
            probs = model(batch).softmax(dim=-1)
            top = probs.topk(5, dim=-1)
            for path, values, classes in zip(paths, top.values, top.indices):
                labels = [{"class": int(c), "prob": round(float(v), 4)} for v, c in zip(values, classes)]
                print(json.dumps({"path": str(path), "labels": labels}), flush=True)


if __name__ == "__main__":
    main()
