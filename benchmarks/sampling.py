"""Benchmark: images per second of genbench.generation.sampling.sample_shard for several batch sizes.

Default: a tiny random Stable Diffusion built in a temp dir, CPU, 4 steps, 64 px. Prints
images/s per batch size and the speed-up of batched sampling (largest batch) over a
one-prompt-at-a-time loop (batch 1), measured in the same run.

    python benchmarks/sampling.py                       # tiny model, CPU
    python benchmarks/sampling.py --model PATH --device cuda --steps 50 --size 512
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm reads it at import time

import torch  # noqa: E402

from genbench.generation.prompts import make_prompt_plan  # noqa: E402
from genbench.generation.sampling import SamplingParams, sample_shard  # noqa: E402
from genbench.models.generators import load_text_to_image_pipeline  # noqa: E402

CLASSES = ["cat", "dog", "car", "airplane"]


def parse_args(argv=None):
    """Command-line options of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="diffusers pipeline dir or cached hub id (default: tiny random SD)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="default 4 (tiny) or 50 (--model)")
    parser.add_argument("--size", type=int, default=None, help="default 64 (tiny) or 512 (--model)")
    parser.add_argument("--images", type=int, default=16, help="images per measurement")
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per batch size (best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def sampling_params(args, batch_size: int) -> SamplingParams:
    """The stage params of one measurement (guidance 7.5, saved at 224 px)."""
    return SamplingParams(
        scheduler=None,
        steps=args.steps,
        guidance=7.5,
        height=args.size,
        width=args.size,
        output_size=224,
        resize_filter="bicubic",
        dtype=args.dtype,
        shard_size=len(CLASSES),
        safety_checker=False,
        device=args.device,
        batch_size=batch_size,
    )


def seconds_for(pipe, rows, out_path: Path, batch_size: int, args) -> float:
    """Wall seconds of one sample_shard run over ``rows`` at ``batch_size``."""
    start = time.perf_counter()
    sample_shard(pipe, rows, out_path, sampling_params(args, batch_size))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def best_rates(pipe, rows, out_dir: Path, sizes: list[int], args) -> dict[int, float]:
    """Best images/s per batch size; the sizes are interleaved in each repeat so that load
    from other processes on a shared machine hits them alike."""
    best = {b: float("inf") for b in sizes}
    for repeat in range(args.repeats):
        for b in sizes:
            best[b] = min(best[b], seconds_for(pipe, rows, out_dir / f"b{b}-{repeat}.tar", b, args))
    return {b: len(rows) / best[b] for b in sizes}


def main(argv=None) -> None:
    """Run the benchmark and print one line per batch size."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from genbench.models.tiny import build_tiny_stable_diffusion

            model = str(build_tiny_stable_diffusion(tmp / "tiny_sd"))
        args.steps = args.steps or (50 if args.model else 4)
        args.size = args.size or (512 if args.model else 64)
        pipe = load_text_to_image_pipeline(model, device=args.device, dtype=args.dtype)
        rows = make_prompt_plan(
            "simple_template", CLASSES, None, {"images_per_class": max(1, args.images // len(CLASSES))}, seed=0
        )
        sample_shard(pipe, rows[:2], tmp / "warmup.tar", sampling_params(args, 2))
        sizes = [int(b) for b in args.batch_sizes.split(",")]
        rates = best_rates(pipe, rows, tmp, sizes, args)
    print(
        f"model={args.model or 'tiny-random-sd'} device={args.device} steps={args.steps} size={args.size} "
        f"images={len(rows)} threads={args.threads} torch={torch.__version__} "
        f"loadavg(1min)={os.getloadavg()[0]:.1f} cpus={os.cpu_count()}"
    )
    print(f"{'batch':>5}  {'images/s':>9}  {'vs batch ' + str(sizes[0]):>11}")
    for b in sizes:
        print(f"{b:>5}  {rates[b]:>9.2f}  {rates[b] / rates[sizes[0]]:>10.2f}x")
    print(f"batched (batch {sizes[-1]}) / one-at-a-time (batch {sizes[0]}): {rates[sizes[-1]] / rates[sizes[0]]:.2f}x")


if __name__ == "__main__":
    main()
