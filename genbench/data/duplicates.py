"""Held-out duplicates: images that are copies of a dataset's val or test images.

An image is a copy of a held-out image when it is

- an **exact** duplicate: the sha256 of its decoded pixels (``pixel_digest``: RGB, width,
  height, raw bytes) equals the held-out image's, whatever file format stores it; or
- a **near** duplicate: the cosine of its image embedding and the held-out image's embedding,
  both by one encoder, is at least a threshold (resized and re-encoded copies;
  ``benchmarks/dedup_threshold.py`` measures where they fall for an encoder).

The retrieval removes such candidates before ranking (``genbench.retrieval.decontaminate``);
the probe stage counts them in every pack as a sanity check.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from genbench.core.io import l2_normalize


def pixel_digest(data: bytes) -> str:
    """sha256 of an image's decoded pixels: ``RGB {width}x{height}`` then the raw RGB bytes, so
    a PNG and a lossless re-save of the same pixels (or a copy under another name) agree."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    digest = hashlib.sha256(f"RGB {rgb.width}x{rgb.height}\n".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


@dataclass
class HeldOut:
    """The val and test images of a dataset, as duplicates are looked for: ``names`` (H,
    ``<split>/<id>``), ``feats`` (H x D, L2-normalised, by the candidates' encoder) and
    ``pixels`` (digest -> name: pixel digests, or any digest the candidates are given in)."""

    names: list[str]
    feats: np.ndarray
    pixels: dict[str, str]


def find_duplicates(feats: np.ndarray, digests: list[str], held: HeldOut, threshold: float | None) -> list[dict | None]:
    """Per candidate, None or the held-out image it duplicates: ``{"kind": "exact", "of": name}``
    when its pixel digest is a held-out image's, else ``{"kind": "near", "of": name, "cosine": c}``
    when c = max_h cos(candidate, held-out h) >= ``threshold`` (None: exact duplicates only).
    feats: (N, D) image embeddings of the candidates; digests: N digests (as ``held.pixels``'s)."""
    out: list[dict | None] = [None] * len(digests)
    best = np.full(len(digests), -np.inf)
    nearest = np.zeros(len(digests), dtype=np.int64)
    if threshold is not None and len(held.names) and len(digests):
        sims = l2_normalize(np.asarray(feats, np.float32), where="candidate embeddings") @ held.feats.T  # N x H
        best, nearest = sims.max(axis=1), sims.argmax(axis=1)
    for i, digest in enumerate(digests):
        if digest in held.pixels:
            out[i] = {"kind": "exact", "of": held.pixels[digest]}
        elif threshold is not None and best[i] >= threshold:
            out[i] = {"kind": "near", "of": held.names[int(nearest[i])], "cosine": round(float(best[i]), 6)}
    return out
