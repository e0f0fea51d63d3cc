#!/usr/bin/env python3
"""Times PyTorch's own f32 matrix products at the shapes of a timm model's linear layers, alone: the yardstick for
evatag's `matrix_product_gflops`, on the same machine and threads.

Each distinct linear layer shape (rows = batch x tokens, or batch for the classifier head; inputs; features; with a
bias, as evatag computes them) is timed with `torch.nn.functional.linear` on random operands, and the products'
total time is each shape's median times the number of layers that have it. The model itself is built on the meta
device, so its weights take no memory and nothing is downloaded. Prints exactly one JSON line to stdout:

    {"impl": "pytorch-products", "torch": ..., "model": ..., "batch": B, "threads": T, "iters": N, "blas": ...,
     "gflop_per_image": G, "matrix_product_gflops": R, "shapes": [{"rows", "inputs", "features", "layers",
     "gflops"}, ...]}

    python bench/torch_products.py --batch 4 --threads 1

Needs: torch==2.15.0 timm==1.0.31 (see bench/README.md).
"""
import argparse
import collections
import json
import os
import re
import statistics
import sys
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def linear_shapes(model, batch):
    """Counts the model's linear layers by (rows, inputs, features) for `batch` images."""
    import torch

    tokens = model.patch_embed.num_patches + model.num_prefix_tokens
    head = model.get_classifier()
    shapes = collections.Counter()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            rows = batch if module is head else batch * tokens
            shapes[(rows, module.in_features, module.out_features)] += 1
    return shapes


def median_seconds(rows, inputs, features, iters):
    """The median time of `iters` products of a [rows, inputs] input by a [features, inputs] weight, plus a bias."""
    import torch

    x = torch.randn(rows, inputs)
    w = torch.randn(features, inputs)
    b = torch.randn(features)
    times = []
    with torch.inference_mode():
        for _ in range(2):
            torch.nn.functional.linear(x, w, b)
        for _ in range(iters):
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w, b)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="eva_giant_patch14_224", help="timm architecture name")
    p.add_argument("--batch", type=int, default=1, help="images whose rows each product holds")
    p.add_argument("--iters", type=int, default=7, help="timed products per shape (after two untimed)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    args = p.parse_args()
    if args.batch < 1 or args.iters < 1 or args.threads < 1:
        p.error("--batch, --iters and --threads must be at least 1")

    import timm
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with torch.device("meta"):
        model = timm.create_model(args.model, pretrained=False)
    shapes = linear_shapes(model, args.batch)
    blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    blas = blas.group(1) if blas else "unknown"
    log(f"{len(shapes)} linear layer shapes of {args.model} at batch {args.batch}, {args.threads} threads, "
        f"torch {torch.__version__} ({blas})")

    total_flop, total_seconds, per_shape = 0.0, 0.0, []
    for (rows, inputs, features), layers in sorted(shapes.items()):
        seconds = median_seconds(rows, inputs, features, args.iters)
        flop = 2.0 * rows * inputs * features
        total_flop += flop * layers
        total_seconds += seconds * layers
        per_shape.append({"rows": rows, "inputs": inputs, "features": features, "layers": layers,
                          "gflops": flop / seconds / 1e9})
        log(f"{rows}x{inputs} -> {features} ({layers} layers): {flop / seconds / 1e9:.1f} GFLOP/s")

    print(json.dumps({
        "impl": "pytorch-products",
        "torch": torch.__version__,
        "model": args.model,
        "batch": args.batch,
        "threads": args.threads,
        "iters": args.iters,
        "blas": blas,
        "gflop_per_image": total_flop / args.batch / 1e9,
        "matrix_product_gflops": total_flop / total_seconds / 1e9,
        "shapes": per_shape,
    }), flush=True)


if __name__ == "__main__":
    main()
