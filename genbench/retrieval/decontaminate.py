"""Decontaminated retrieval: the val and test images a pool's candidates are compared with
(``genbench.data.duplicates`` finds the copies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import IMAGE_DECODE_ERRORS, l2_normalize
from genbench.data.duplicates import HeldOut, pixel_digest


def load_held_out(prepare_dir, feature_dirs: dict) -> HeldOut:
    """The held-out splits of a prepared dataset: the pixel digests of ``<prepare_dir>/<split>.jsonl``'s
    images and the rows of each split's features artifact (``feature_dirs``: split -> folder,
    by the pool's encoder)."""
    from genbench.data.imageset import ImageSetReader
    from genbench.evaluation.features import load_features

    names, feats, pixels = [], [], {}
    for split, folder in feature_dirs.items():
        features = load_features(folder)
        names += [f"{split}/{i}" for i in features.ids]
        feats.append(l2_normalize(np.asarray(features.feats, np.float32), where=f"{split} features"))
        reader = ImageSetReader(Path(prepare_dir) / f"{split}.jsonl")
        for record in reader.records:
            try:
                digest = pixel_digest(reader.open_bytes(record))
            except IMAGE_DECODE_ERRORS as exc:
                raise GenBenchError(f"{split} image {record['id']!r} cannot be decoded: {exc}") from exc
            pixels.setdefault(digest, f"{split}/{record['id']}")
    dim = feats[0].shape[1] if feats else 0
    return HeldOut(names, np.concatenate(feats) if feats else np.zeros((0, dim), np.float32), pixels)
