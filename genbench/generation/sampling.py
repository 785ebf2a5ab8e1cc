"""Deterministic, sharded, resumable image sampling from a prompt plan.

A prompt plan (see ``genbench.generation.prompts``) is split into contiguous shards. Each shard is
sampled into one uncompressed tar holding ``<id>.png`` and ``<id>.json`` per image. Every
image draws its initial noise from its own ``torch.Generator`` seeded with the row's seed,
so an image does not depend on its batch or its shard. Tar headers (mtime 0, uid/gid 0,
mode 0644, sorted names) and PNG bytes (PIL, no metadata) are fixed, so the same plan,
model and settings give byte-identical shards on the same software and hardware.

A shard is complete iff its final file exists: it is written to ``.<name>.tmp-<host>-<pid>-<rand>``
and moved into place with ``os.replace``; its job then writes its part manifest beside it.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from genbench.core.errors import ConfigError, GenBenchError
from genbench.core.io import emit, write_tar_atomic
from genbench.core.paths import num_shards, split_into_shards  # noqa: F401 (the shard layout)
from genbench.generation.prompts import count_truncated_prompts

RESIZE_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
}
ROW_KEYS = ("index", "class_id", "class_name", "prompt", "negative_prompt", "seed")
PNG_COMPRESS_LEVEL = 6
BLACK_THRESHOLD = 0.5 / 255  # an image whose every value rounds to 0 is "black"


def image_id(row: dict) -> str:
    """The stable image id of a plan row: ``f"{class_id:04d}-{index:06d}"``."""
    return f"{row['class_id']:04d}-{row['index']:06d}"


def get_resize_filter(name: str):
    """The PIL resampling filter registered as ``name`` in RESIZE_FILTERS."""
    if name not in RESIZE_FILTERS:
        raise ConfigError(f"unknown resize_filter {name!r}; valid: {', '.join(RESIZE_FILTERS)}")
    return RESIZE_FILTERS[name]


def _check_rows(rows: list[dict], out_tar_path) -> None:
    if not rows:
        raise GenBenchError(f"sample_shard: no rows to sample for {out_tar_path}")
    for row in rows:
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise GenBenchError(f"sample_shard: plan row {row.get('index')!r} for {out_tar_path} lacks keys {missing}")


def to_uint8(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """An HxWx3 float image in [0, 1] as uint8, and whether it is all black or has NaN."""
    has_nan = bool(np.isnan(image).any())
    clean = np.nan_to_num(image, nan=0.0)
    black = bool(clean.max() < BLACK_THRESHOLD)
    return (clean * 255).round().clip(0, 255).astype(np.uint8), has_nan or black


def png_bytes(pixels: np.ndarray, output_size: int, filter_name: str) -> bytes:
    """PNG bytes (no metadata) of ``pixels`` resized to ``output_size`` square with the named filter."""
    image = Image.fromarray(pixels, mode="RGB")
    if image.size != (output_size, output_size):
        image = image.resize((output_size, output_size), resample=get_resize_filter(filter_name))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _generate_batch(pipe, rows, *, steps, guidance, height, width, device) -> np.ndarray:
    import torch

    generators = [torch.Generator(device).manual_seed(int(row["seed"])) for row in rows]
    negatives = [row["negative_prompt"] or "" for row in rows]
    with torch.no_grad():
        output = pipe(
            prompt=[row["prompt"] for row in rows],
            negative_prompt=negatives if any(negatives) else None,
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=height,
            width=width,
            generator=generators,
            output_type="np",
        )
    return np.asarray(output.images, dtype=np.float32)


def _metadata(row: dict, black: bool) -> dict:
    return {
        "id": image_id(row),
        "class_id": row["class_id"],
        "class_name": row["class_name"],
        "prompt": row["prompt"],
        "negative_prompt": row["negative_prompt"],
        "seed": row["seed"],
        "black": black,
    }


def sample_shard(
    pipe,
    rows: list[dict],
    out_tar_path,
    *,
    steps: int,
    guidance: float,
    height: int,
    width: int,
    output_size: int = 224,
    resize_filter: str = "bicubic",
    batch_size: int,
    device: str = "cpu",
    log=None,
) -> dict:
    """Sample one shard of plan rows into a tar; return {"images", "black_or_nan", "truncated_prompts"}.

    ``log`` is None, a logging.Logger or a callable taking a string.
    """
    _check_rows(rows, out_tar_path)
    get_resize_filter(resize_filter)  # fail on a bad name before any sampling
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    tokenizer = getattr(pipe, "tokenizer", None)
    truncated = count_truncated_prompts(rows, tokenizer, tokenizer.model_max_length) if tokenizer else 0
    members, bad = {}, 0
    with tqdm(total=len(rows), desc=Path(out_tar_path).name, unit="img") as progress:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            images = _generate_batch(
                pipe, batch, steps=steps, guidance=guidance, height=height, width=width, device=device
            )
            for row, image in zip(batch, images):
                pixels, black = to_uint8(image)
                bad += black
                members[f"{image_id(row)}.png"] = png_bytes(pixels, output_size, resize_filter)
                members[f"{image_id(row)}.json"] = json.dumps(_metadata(row, black), sort_keys=True).encode()
            progress.update(len(batch))
    write_tar_atomic(out_tar_path, members)
    stats = {"images": len(rows), "black_or_nan": bad, "truncated_prompts": truncated}
    emit(log, f"{out_tar_path}: {stats['images']} images, {bad} black or NaN, {truncated} prompts truncated")
    return stats


def read_shard_metadata(shard_path) -> list[dict]:
    """The ``<id>.json`` records of a shard tar, in member order."""
    try:
        with tarfile.open(shard_path, "r:") as tar:
            return [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    except (OSError, tarfile.TarError, json.JSONDecodeError) as err:
        raise GenBenchError(f"cannot read shard {shard_path}: {err}") from err


def write_image_index(shard_paths, out_index_path, base_dir=None) -> int:
    """Write the images.jsonl index of all shards, paths relative to ``base_dir`` (default: the
    index's own folder; give the artifact folder when the index is written while staged)."""
    from genbench.data.imageset import write_index

    index_dir = os.path.abspath(base_dir or os.path.dirname(os.path.abspath(out_index_path)))
    records = []
    for shard in shard_paths:
        relative = os.path.relpath(os.path.abspath(shard), index_dir).replace(os.sep, "/")
        for meta in read_shard_metadata(shard):
            records.append(
                {
                    "id": meta["id"],
                    "path": f"{relative}@{meta['id']}.png",
                    "label": meta["class_id"],
                    "prompt": meta["prompt"],
                    "seed": meta["seed"],
                }
            )
    write_index(out_index_path, records)
    return len(records)
