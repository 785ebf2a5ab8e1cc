"""What the training stages share: the corpus as tensors, a NaN-checked loss curve, progress.

The corpus is read through its image-set index ``corpus.jsonl`` (the image reader every
stage uses), which also records each caption and the digit really drawn.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from genbench.core.errors import GenBenchError
from genbench.models.corpus import CORPUS_INDEX

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
    ``{"key", "caption", "digit", "png"}`` (PNG bytes)."""
    from genbench.data.imageset import ImageSetReader

    index = Path(corpus_dir) / CORPUS_INDEX
    if not index.is_file():
        raise GenBenchError(f"{corpus_dir}: not a corpus (no {CORPUS_INDEX})")
    with ImageSetReader(index) as reader:
        return [
            {"key": r["id"], "caption": r["caption"], "digit": r["digit"], "png": reader.open_bytes(r)}
            for r in reader.records
        ]


def decode_corpus_images(corpus_dir: str | Path) -> tuple[torch.Tensor, list[str], np.ndarray]:
    """(uint8 N x 3 x H x W images, N captions, N digits really drawn) of a corpus."""
    from genbench.data.imageset import decode_image

    records = corpus_records(corpus_dir)
    arrays = [np.asarray(decode_image(r["png"], f"corpus image {r['key']!r}")) for r in records]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, [r["caption"] for r in records], np.array([r["digit"] for r in records])
