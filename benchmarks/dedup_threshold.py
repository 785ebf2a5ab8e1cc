"""Benchmark: where planted copies of test images fall, to set ``retrieval.dedup_threshold``.

For one encoder and one prepared dataset, every test image gets planted copies (what a web
pool holds of a benchmark image):

- ``half``: downscaled to half size (bicubic) and back;
- ``double``: upscaled to twice the size;
- ``jpeg75``, ``jpeg40``: re-encoded as JPEG at quality 75 and 40;
- ``crop90``: the central 90 % cropped and resized back.

It prints, per kind, the cosine between each test image and its copy (image embeddings), and
the cosine between each test image and its nearest *other* image: every train image, and, with
``--pool``, every image of a retrieval pool (images that must stay). A threshold separates
them when it lies above the nearest others and below the copies; the script prints the
share of copies caught and of other images wrongly removed at each candidate threshold, and
a PASS line when ``--threshold`` catches at least 99 % of the copies and removes at most 1 % of
the other images' nearest neighbours.

The default threshold of config.yaml (0.99) was measured with this script on the demo's
corpus CLIP (docs/PROTOCOL.md, "Decontamination"); for another encoder run it again with
that encoder (e.g. ``--encoder '{"type": "open_clip", "model": "ViT-B-32", "pretrained":
"openai"}'``): a threshold does not carry over between encoders.

Run: .venv/bin/python benchmarks/dedup_threshold.py --results results [--threshold 0.99]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

COPIES = ("half", "double", "jpeg75", "jpeg40", "crop90")
CANDIDATES = (0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)


def planted_copy(image, kind: str):
    """A copy of a PIL image as a web pool might hold it (``COPIES``)."""
    from PIL import Image

    w, h = image.size
    if kind == "half":
        return image.resize((max(1, w // 2), max(1, h // 2)), Image.BICUBIC).resize((w, h), Image.BICUBIC)
    if kind == "double":
        return image.resize((2 * w, 2 * h), Image.BICUBIC)
    if kind.startswith("jpeg"):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=int(kind[4:]))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == "crop90":
        dx, dy = round(w * 0.05), round(h * 0.05)
        return image.crop((dx, dy, w - dx, h - dy)).resize((w, h), Image.BICUBIC)
    raise ValueError(kind)


def embed(encoder, images, batch_size: int = 64) -> np.ndarray:
    """L2-normalised image embeddings (N x D) of PIL images."""
    import torch

    from genbench.core.io import l2_normalize

    parts = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([encoder.preprocess(im.convert("RGB")) for im in images[start : start + batch_size]])
        parts.append(encoder.encode_images(batch).numpy())
    return l2_normalize(np.concatenate(parts), where="image embeddings")


def nearest_other(queries: np.ndarray, others: np.ndarray, same: np.ndarray | None = None) -> np.ndarray:
    """Per query row, the largest cosine with a row of ``others`` (rows flagged in ``same``, an
    (Q, O) mask of identical pixels, are skipped: they are copies, not other images)."""
    sims = queries @ others.T
    if same is not None:
        sims = np.where(same, -np.inf, sims)
    return sims.max(axis=1)


def _find(results: Path, stage: str, pattern: str) -> Path:
    found = sorted((results / stage).glob(pattern))
    if not found:
        sys.exit(f"no {stage}/{pattern} under {results}: run the demo first or pass the paths")
    return found[0]


def _load_split(prepare_dir: Path, split: str):
    from genbench.data.duplicates import pixel_digest
    from genbench.data.imageset import ImageSetReader

    reader = ImageSetReader(prepare_dir / f"{split}.jsonl")
    data = [reader.open_bytes(r) for r in reader.records]
    from PIL import Image

    return [Image.open(io.BytesIO(d)).convert("RGB") for d in data], [pixel_digest(d) for d in data]


def _pool_images(pool_dir: Path, limit: int):
    from PIL import Image

    from genbench.data.duplicates import pixel_digest
    from genbench.retrieval.pool import open_pool

    pool = open_pool(pool_dir)
    images, digests = [], []
    for shard in pool.shards:
        for row in pool.metadata(shard):
            data = pool.read_image(shard, row["key"])
            images.append(Image.open(io.BytesIO(data)).convert("RGB"))
            digests.append(pixel_digest(data))
            if len(images) >= limit:
                return images, digests
    return images, digests


def _share(values: np.ndarray, threshold: float) -> float:
    return float(np.mean(values >= threshold)) if len(values) else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"), help="a demo results folder")
    parser.add_argument("--encoder", help="encoder spec as JSON (default: the results' trained CLIP)")
    parser.add_argument("--prepare", type=Path, help="a prepared dataset folder (default: the results' digits)")
    parser.add_argument("--pool", type=Path, help="a retrieval pool folder (default: the results' corpus pool)")
    parser.add_argument("--pool-images", type=int, default=5000, help="pool images compared, at most")
    parser.add_argument("--threshold", type=float, default=0.99)
    args = parser.parse_args()

    from genbench.evaluation.encoders import load_encoder

    if args.encoder:
        spec = json.loads(args.encoder)
    else:
        folder = _find(args.results, "train_encoder", "encoder/*/encoder_spec.json").parent
        saved = json.loads((folder / "encoder_spec.json").read_text())
        spec = {k: (str(folder / v) if k in ("pretrained", "config") else v) for k, v in saved.items()}
    prepare = args.prepare or _find(args.results, "prepare", "*/*/test.jsonl").parent
    pool_dir = args.pool or next(iter(sorted((args.results / "build_pool").glob("*/corpus-*"))), None)
    encoder = load_encoder(spec)
    test, test_digests = _load_split(prepare, "test")
    train, train_digests = _load_split(prepare, "train")
    test_emb, train_emb = embed(encoder, test), embed(encoder, train)
    print(f"encoder {spec.get('model', spec.get('type'))}, dataset {prepare}, {len(test)} test images")
    print(f"{'copy':>8} {'min':>7} {'p1':>7} {'median':>7}")
    copies = {}
    for kind in COPIES:
        emb = embed(encoder, [planted_copy(im, kind) for im in test])
        copies[kind] = np.sum(emb * test_emb, axis=1)
        c = copies[kind]
        print(f"{kind:>8} {c.min():7.4f} {np.percentile(c, 1):7.4f} {np.median(c):7.4f}")
    every_copy = np.concatenate(list(copies.values()))
    same = np.array(test_digests)[:, None] == np.array(train_digests)[None, :]
    others = {"train": nearest_other(test_emb, train_emb, same)}
    exact = int(same.any(axis=1).sum())
    print(f"test images with a pixel-identical train image: {exact}")
    if pool_dir is not None and Path(pool_dir).is_dir():
        pool_images, pool_digests = _pool_images(Path(pool_dir), args.pool_images)
        pool_same = np.array(test_digests)[:, None] == np.array(pool_digests)[None, :]
        others["pool"] = nearest_other(test_emb, embed(encoder, pool_images), pool_same)
        print(f"pool {pool_dir}: {len(pool_images)} images compared")
    for name, values in others.items():
        p99, median = np.percentile(values, 99), np.median(values)
        print(f"nearest other ({name}): max {values.max():.4f}, p99 {p99:.4f}, median {median:.4f}")
    print(f"{'threshold':>9} {'copies caught':>14} " + " ".join(f"{'removed ' + n:>14}" for n in others))
    for t in sorted(set(CANDIDATES) | {args.threshold}):
        line = f"{t:9.3f} {_share(every_copy, t):14.4f} " + " ".join(f"{_share(v, t):14.4f}" for v in others.values())
        print(line)
    kinds = ", ".join(f"{kind} {_share(c, args.threshold):.1%}" for kind, c in copies.items())
    print(f"caught at {args.threshold} by kind: {kinds}")
    caught = _share(every_copy, args.threshold)
    wrongly = max(_share(v, args.threshold) for v in others.values())
    ok = caught >= 0.99 and wrongly <= 0.01
    print(
        f"{'PASS' if ok else 'FAIL'} threshold {args.threshold}: {caught:.1%} of planted copies caught "
        f"(target >= 99 %), {wrongly:.1%} of nearest other images removed (target <= 1 %)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
