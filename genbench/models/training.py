"""What the training stages share: the corpus as tensors, a NaN-checked loss curve, progress.

The corpus is read from the shards of its img2dataset layout, in key order: ``<shard>.tar``
with ``<key>.png`` and ``<key>.json`` (caption, and the digit really drawn, which only
GenBench's own corpus records).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import torch

from genbench.core.errors import GenBenchError

CORPUS_INFO = "corpus_info.json"
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
    """The corpus items in order: ``{"key", "caption", "digit", "png"}`` (PNG bytes)."""
    import tarfile

    corpus_dir = Path(corpus_dir)
    info_path = corpus_dir / CORPUS_INFO
    if not info_path.is_file():
        raise GenBenchError(f"{corpus_dir}: not a corpus (no {CORPUS_INFO})")
    info = json.loads(info_path.read_text())
    records = []
    for shard in info["shards"]:
        with tarfile.open(corpus_dir / f"{shard}.tar") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        keys = sorted({name.rsplit(".", 1)[0] for name in members})
        for key in keys:
            meta = json.loads(members[f"{key}.json"])
            records.append(
                {"key": key, "caption": meta["caption"], "digit": meta["digit"], "png": members[f"{key}.png"]}
            )
    return records


def decode_corpus_images(corpus_dir: str | Path) -> tuple[torch.Tensor, list[str], np.ndarray]:
    """(uint8 N x 3 x H x W images, N captions, N digits really drawn) of a corpus."""
    from PIL import Image

    records = corpus_records(corpus_dir)
    arrays = [np.asarray(Image.open(io.BytesIO(r["png"])).convert("RGB")) for r in records]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, [r["caption"] for r in records], np.array([r["digit"] for r in records])
