"""Benchmark: sampling and encoding throughput of the paper's models on one GPU, side by side.

Prepared for a GPU machine; ``--smoke`` runs the same code on the CPU at toy sizes to check it.

1. Sampling: Stable Diffusion 2.1 base at its full size (genbench.models.full_size, random
   weights: the cost equals the real model's), fp16, DPM-Solver++ with ``--steps`` steps, at
   ``--size`` px, for each batch size and each speed option set of
   genbench.models.generators.apply_speed_options: eager attention, SDPA (the default),
   SDPA + channels_last, SDPA + channels_last + torch.compile. Images/s over ``--batches``
   timed batches after one warm-up batch (compile happens in the warm-up).
2. The FLOP bound: UNet FLOPs of one denoising step of one image (torch.utils.flop_counter on
   one forward, classifier-free guidance doubles the batch) x steps; bound images/s = the GPU's
   fp16 dense peak (``--peak-tflops``, H200: 989) / FLOPs per image. Printed as % of bound.
3. Encoding: open_clip ViT-B-32 (fp16 on the GPU) over ``--images`` JPEG-encoded images decoded
   in DataLoader workers, for 0 / 4 / 8 workers, with and without pinned memory.

Run: .venv/bin/python benchmarks/gpu_throughput.py [--device cuda] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image

SPEED_SETS = {
    "eager": {"attention": "eager"},
    "sdpa": {},
    "sdpa+channels_last": {"channels_last": True},
    "sdpa+channels_last+compile": {"channels_last": True, "compile": True},
}


def sd21_pipeline(device: str, dtype: torch.dtype, smoke: bool):
    """SD 2.1 base (or, with ``smoke``, the tiny test pipeline) in memory, DPM-Solver++."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPImageProcessor

    from genbench.models import full_size, tiny

    if smoke:
        folder = tiny.build_tiny_stable_diffusion("/tmp/genbench-gpu-smoke-sd")
        pipe = StableDiffusionPipeline.from_pretrained(str(folder))
    else:
        torch.manual_seed(0)
        pipe = StableDiffusionPipeline(
            unet=full_size.sd21_base_unet(),
            vae=full_size.sd21_base_vae(),
            text_encoder=full_size.sd21_base_text_encoder(),
            tokenizer=tiny.build_tiny_tokenizer("/tmp/genbench-gpu-tokenizer"),
            scheduler=tiny.sd_scheduler(),
            safety_checker=None,
            feature_extractor=CLIPImageProcessor(),
            requires_safety_checker=False,
        )
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def images_per_second(pipe, batch: int, steps: int, size: int, batches: int, device: str) -> float:
    """Images/s of ``batches`` timed batches after one warm-up batch."""

    def run():
        generator = [torch.Generator(device).manual_seed(i) for i in range(batch)]
        pipe(["a photo of a dog"] * batch, num_inference_steps=steps, height=size, width=size, generator=generator)

    run()
    sync(device)
    start = time.perf_counter()
    for _ in range(batches):
        run()
    sync(device)
    return batch * batches / (time.perf_counter() - start)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def unet_flops_per_image_step(pipe, size: int, device: str) -> float:
    """FLOPs of one UNet forward per image (a CFG pair is 2 forwards' worth of batch)."""
    from torch.utils.flop_counter import FlopCounterMode

    unet = pipe.unet
    latent = size // pipe.vae_scale_factor
    sample = torch.randn(2, unet.config.in_channels, latent, latent, device=device, dtype=unet.dtype)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=unet.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(sample, torch.tensor([500, 500], device=device), encoder_hidden_states=context)
    return counter.get_total_flops()  # two images' CFG halves = one image's step


def sampling_table(args, device: str, dtype: torch.dtype) -> None:
    from genbench.models.generators import apply_speed_options

    flops_step = None
    print("| options | " + " | ".join(f"batch {b}" for b in args.batch_sizes) + " | best % of FLOP bound |")
    print("|---|" + "---|" * (len(args.batch_sizes) + 1))
    for name, options in SPEED_SETS.items():
        pipe = apply_speed_options(sd21_pipeline(device, dtype, args.smoke), **options)
        if flops_step is None:
            flops_step = unet_flops_per_image_step(pipe, args.size, device)
            bound = args.peak_tflops * 1e12 / (flops_step * args.steps)
        rates = [images_per_second(pipe, b, args.steps, args.size, args.batches, device) for b in args.batch_sizes]
        cells = " | ".join(f"{r:.2f} img/s" for r in rates)
        print(f"| {name} | {cells} | {100 * max(rates) / bound:.1f} % |", flush=True)
        del pipe
    print(f"\nUNet: {flops_step / 1e9:.1f} GFLOP per image per step at {args.size} px; {args.steps} steps; ")
    print(f"bound at {args.peak_tflops} TFLOPS: {bound:.2f} images/s")


def jpeg_dataset(n: int, size: int):
    """``n`` random JPEG images (bytes) decoded and preprocessed per item, as the features stage does."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        blobs.append(buffer.getvalue())
    return blobs


class _Decoded(torch.utils.data.Dataset):
    def __init__(self, blobs, preprocess):
        self.blobs, self.preprocess = blobs, preprocess

    def __len__(self):
        return len(self.blobs)

    def __getitem__(self, i):
        return self.preprocess(Image.open(io.BytesIO(self.blobs[i])).convert("RGB"))


def encoding_table(args, device: str, dtype: torch.dtype) -> None:
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None, force_quick_gelu=True)
    model = model.to(device, dtype).eval()
    blobs = jpeg_dataset(args.images, 256)
    print("\n| workers | pin_memory | images/s |\n|---|---|---|")
    for workers in (0, 4, 8):
        for pin in (False, True):
            loader = torch.utils.data.DataLoader(
                _Decoded(blobs, preprocess), batch_size=256, num_workers=workers, pin_memory=pin
            )
            start = time.perf_counter()
            with torch.no_grad():
                for batch in loader:
                    model.encode_image(batch.to(device, dtype, non_blocking=pin))
            sync(device)
            print(f"| {workers} | {pin} | {args.images / (time.perf_counter() - start):.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny pipeline, 64 px, 2 steps: checks the script")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16, 32])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="fp16 dense peak (H200 SXM: 989)")
    args = parser.parse_args()
    if args.smoke:
        args.batch_sizes, args.steps, args.size, args.batches, args.images = [1, 2], 2, 64, 1, 64
    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    print(f"device {args.device}, {dtype}, {torch.__version__}")
    sampling_table(args, args.device, dtype)
    encoding_table(args, args.device, dtype)


if __name__ == "__main__":
    main()
