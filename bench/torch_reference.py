#!/usr/bin/env python3
"""Times timm's EVA in PyTorch (float32, or float16/bfloat16 with --dtype; on the CPU, or on a CUDA GPU with
--device cuda), the reference evatag's own `evatag bench` is compared with.

The model is built with random weights (pretrained=False): nothing is downloaded, and the speed of a forward
pass does not depend on the weights' values. Prints exactly one JSON line to stdout:

    {"impl": "pytorch", "torch": ..., "timm": ..., "model": ..., "dtype": ..., "batch": B, "threads": T,
     "iters": N, "seconds_per_image": S, "images_per_second": I, "cpu_capability": C}

where C is the vector level of ATen's CPU kernels (e.g. AVX512, or AVX2 under ATEN_CPU_CAPABILITY=avx2), and
S is the median over the timed iterations of (seconds per batch) / B. Progress goes to stderr.

    python bench/torch_reference.py                      # eva_giant_patch14_224, batch 1, 3 timed iterations
    python bench/torch_reference.py --batch 4 --threads 2
    python bench/torch_reference.py --dtype bf16           # weights and activations in bfloat16
    python bench/torch_reference.py --device cuda --dtype bf16 --batch 32
    python bench/torch_reference.py --model-args '{"embed_dim": 64, "depth": 2, "num_heads": 4}' --iters 1

Needs: torch==2.15.0 timm==1.0.31 (see bench/README.md).
"""
import argparse
import json
import os
import statistics
import sys
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="eva_giant_patch14_224",
                   help="timm architecture name, or name.tag for that pretrained_cfg (its input size)")
    p.add_argument("--model-args", default="{}", help="JSON object of keyword overrides for timm.create_model")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass")
    p.add_argument("--iters", type=int, default=3, help="timed forward passes")
    p.add_argument("--warmup", type=int, default=1, help="untimed forward passes first")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32", help="the model's and the input's precision")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model runs")
    args = p.parse_args()
    if args.batch < 1 or args.iters < 1 or args.warmup < 0 or args.threads < 1:
        p.error("--batch, --iters and --threads must be at least 1, --warmup at least 0")
    try:
        model_args = json.loads(args.model_args)
        assert isinstance(model_args, dict)
    except (ValueError, AssertionError):
        p.error(f"--model-args must be a JSON object, got {args.model_args!r}")

    import timm
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    log(f"building {args.model} {model_args or ''} with random weights (torch {torch.__version__}, "
        f"timm {timm.__version__}, {args.threads} threads)")
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: this PyTorch sees no CUDA GPU")
    model = timm.create_model(args.model, pretrained=False, **model_args).eval().to(args.device, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    cfg = timm.data.resolve_data_config({}, model=model)
    c, h, w = cfg["input_size"]
    x = torch.randn(args.batch, c, h, w, dtype=torch.float32).to(args.device, dtype)

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()
    log(f"{n_params / 1e6:.1f} M parameters in {args.dtype}, input {args.batch}x{c}x{h}x{w}")

    times = []
    with torch.inference_mode():
        for i in range(args.warmup):
            t0 = time.perf_counter()
            model(x)
            sync()
            log(f"warmup {i + 1}/{args.warmup}: {time.perf_counter() - t0:.3f} s")
        for i in range(args.iters):
            t0 = time.perf_counter()
            out = model(x)
            sync()
            dt = time.perf_counter() - t0
            times.append(dt)
            log(f"iter {i + 1}/{args.iters}: {dt:.3f} s ({dt / args.batch:.3f} s/image)")
    assert torch.isfinite(out).all()

    spi = statistics.median(times) / args.batch
    result = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "model": args.model,
        "dtype": args.dtype,
        "device": args.device,
        "batch": args.batch,
        "threads": args.threads,
        "iters": args.iters,
        "seconds_per_image": spi,
        "images_per_second": 1.0 / spi,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if model_args:
        result["model_args"] = model_args  # a reduced model: not comparable with the full-size numbers
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
