"""What the training stages share: the corpus as tensors, a NaN-checked loss curve, progress,
the optimiser and its schedule, and an exponential moving average of weights.

The corpus is read through its image-set index ``corpus.jsonl`` (the image reader every
stage uses), which also records each caption and the digit really drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

import math
from pathlib import Path

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.retrieval.pool import CORPUS_INDEX

CURVE_POINTS = 50


class TrainingError(GenBenchError):
    """A training run that cannot go on (a NaN loss); its weights are never saved."""


class LossCurve:
    """Losses of one training run: every step is checked for NaN/inf, and ``summary`` keeps
    ``CURVE_POINTS`` evenly spaced means (a curve small enough for a manifest)."""

    def __init__(self, stage: str):
        self.stage = stage
        self.losses: list[float] = []

    def add(self, step: int, loss: float, total: int | None = None) -> None:
        """Record step ``step``'s loss (logged every tenth of ``total`` steps)."""
        if not math.isfinite(loss):
            raise TrainingError(f"{self.stage}: the loss became {loss} at step {step}; no weights were saved")
        self.losses.append(float(loss))
        if total and (step + 1) % max(1, total // 10) == 0:
            from loguru import logger

            logger.info(f"{self.stage}: step {step + 1}/{total}, loss {loss:.4f}")

    def summary(self) -> dict:
        losses = np.asarray(self.losses, dtype=np.float64)
        if not len(losses):
            return {"steps": 0}
        parts = np.array_split(losses, min(CURVE_POINTS, len(losses)))
        tail = losses[-max(1, len(losses) // 10) :]
        return {
            "steps": len(losses),
            "loss_first": round(float(losses[0]), 6),
            "loss_last": round(float(tail.mean()), 6),
            "loss_curve": [round(float(p.mean()), 6) for p in parts],
        }


def progress(steps, stage: str):
    """tqdm over ``steps``, written to stderr (the rule's log)."""
    from tqdm import tqdm

    return tqdm(steps, desc=stage, mininterval=5.0, ascii=True)


def corpus_records(corpus_dir: str | Path) -> list[dict]:
    """The corpus items in order, read through its image-set index ``corpus.jsonl``:
    ``{"key", "caption", "digit", "named", "png"}``: the digit drawn, the digit its caption
    names (another one for the captions made wrong on purpose) and the PNG bytes."""
    from genbench.data.imageset import ImageSetReader

    index = Path(corpus_dir) / CORPUS_INDEX
    if not index.is_file():
        raise GenBenchError(f"{corpus_dir}: not a corpus (no {CORPUS_INDEX})")
    with ImageSetReader(index) as reader:
        return [
            {
                "key": r["id"],
                "caption": r["caption"],
                "digit": r["digit"],
                "named": r["named"],
                "png": reader.open_bytes(r),
            }
            for r in reader.records
        ]


def decode_corpus_images(corpus_dir: str | Path) -> tuple[torch.Tensor, list[str], np.ndarray]:
    """(uint8 N x 3 x H x W images, N captions, N digits really drawn) of a corpus."""
    import torch

    from genbench.data.imageset import decode_image

    records = corpus_records(corpus_dir)
    arrays = [np.asarray(decode_image(r["png"], f"corpus image {r['key']!r}")) for r in records]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, [r["caption"] for r in records], np.array([r["digit"] for r in records])


def corpus_pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N x 3 x H x W images as float in [-1, 1] (the VAE's range), area-resized to
    ``size`` x ``size`` when H differs."""
    import torch

    pixels = images.float() / 127.5 - 1.0
    if pixels.shape[-1] != size:
        pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="area")
    return pixels


def one_cycle_adamw(params, lr: float, steps: int, weight_decay: float = 0.0, warmup: float = 0.1):
    """(AdamW, OneCycleLR): the learning rate rises over the first ``warmup`` of ``steps`` to
    ``lr`` and anneals to ~0 by the last step. The fused CPU kernel: one pass per step over
    all parameters (a 49408-token embedding table is most of a small text model)."""
    import torch

    params = list(params)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=warmup)
    return optimizer, schedule


class WeightAverage:
    """Exponential moving average of a module's parameters (the weights a diffusion model
    samples with): ``avg <- d avg + (1 - d) w`` after each step, with the warm-up
    ``d = min(decay, (1 + step) / (10 + step))`` so that early weights fade fast."""

    def __init__(self, module: torch.nn.Module, decay: float):
        import copy

        self.decay = float(decay)
        self.average = copy.deepcopy(module).eval().requires_grad_(False)

    def update(self, module: torch.nn.Module, step: int) -> None:
        import torch

        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for avg, new in zip(self.average.parameters(), module.parameters()):
                avg.lerp_(new.detach(), 1.0 - decay)
