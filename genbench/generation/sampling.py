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
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from genbench.core.errors import ConfigError, GenBenchError
from genbench.core.io import emit, write_tar_atomic
from genbench.core.paths import num_shards, split_into_shards  # noqa: F401 (the shard layout)
from genbench.core.stage import StageParams, keyed, keyed_if_changed, runtime
from genbench.generation.prompts import count_truncated_prompts

RESIZE_FILTERS = ("bicubic", "bilinear", "lanczos", "nearest", "box")  # PIL's Image.Resampling, by name
ROW_KEYS = ("index", "class_id", "class_name", "prompt", "negative_prompt", "seed")
PNG_COMPRESS_LEVEL = 6
BLACK_THRESHOLD = 0.5 / 255  # an image whose every value rounds to 0 is "black"


@dataclass(frozen=True)
class SamplingParams(StageParams):
    """How a generated set is sampled: the ``generation`` section, less what the prompt plan
    reads (``images_per_class``, ``seed``). The diffusers call is ``_generate_batch``."""

    STAGE: ClassVar[str] = "sample_images"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "generation"

    scheduler: str | None = keyed(doc="diffusers scheduler by name; null keeps the pipeline's own")
    steps: int = keyed(doc="denoising steps")
    guidance: float = keyed(doc="classifier-free guidance scale")
    height: int = keyed(doc="sampled height in pixels")
    width: int = keyed(doc="sampled width in pixels")
    output_size: int = keyed(doc="saved square size (resized with resize_filter)")
    resize_filter: str = keyed(doc="PIL filter of the resize to output_size")
    dtype: str = keyed(doc="auto: fp16 on CUDA, fp32 on CPU")
    shard_size: int = keyed(doc="images per shard job (each shard is one tar)")
    safety_checker: bool = keyed(doc="keep the pipeline's safety checker")
    device: str = keyed(doc="cpu, cuda, cuda:N or mps")
    attention: str = keyed_if_changed("sdpa", doc="sdpa or eager attention in the UNet")
    channels_last: bool = keyed_if_changed(False, doc="UNet and VAE in NHWC memory format")
    compile: bool = keyed_if_changed(False, doc="torch.compile the UNet")
    strength: float | None = keyed_if_changed(
        None,
        config="img2img.strength",
        doc="img2img strategies: how far each reference image is noised before denoising (1: all the way); "
        "null: text-to-image",
    )
    lora_scale: float | None = keyed_if_changed(
        None, config="lora.scale", doc="LoRA strategies: the weight of the dataset's LoRA (1: as trained)"
    )
    batch_size: int = runtime(1, doc="images per pipeline call (an image's noise is its own)")

    def speed_options(self) -> dict:
        """The options of ``genbench.models.generators.apply_speed_options``."""
        return {"attention": self.attention, "channels_last": self.channels_last, "compile": self.compile}


def image_id(row: dict) -> str:
    """The stable image id of a plan row: ``f"{class_id:04d}-{index:06d}"``."""
    return f"{row['class_id']:04d}-{row['index']:06d}"


def get_resize_filter(name: str):
    """The PIL resampling filter registered as ``name`` in RESIZE_FILTERS."""
    from PIL import Image

    if name not in RESIZE_FILTERS:
        raise ConfigError(f"unknown resize_filter {name!r}; valid: {', '.join(RESIZE_FILTERS)}")
    return getattr(Image.Resampling, name.upper())


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
    from PIL import Image

    image = Image.fromarray(pixels, mode="RGB")
    if image.size != (output_size, output_size):
        image = image.resize((output_size, output_size), resample=get_resize_filter(filter_name))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _generate_batch(pipe, rows, params: SamplingParams, references: dict | None = None) -> np.ndarray:
    """``len(rows)`` HxWx3 float images in [0, 1], each from its row's own seeded generator;
    for img2img (``params.strength`` set) each starts from its row's reference image
    (``references[row["reference"]]``, already at width x height)."""
    import torch

    generators = [torch.Generator(params.device).manual_seed(int(row["seed"])) for row in rows]
    negatives = [row["negative_prompt"] or "" for row in rows]
    start = {"height": params.height, "width": params.width}
    if params.strength is not None:  # SD's and SDXL's take the size of their reference images
        start = start if _takes_size(pipe) else {}
        start |= {"image": [references[row["reference"]] for row in rows], "strength": params.strength}
    with torch.no_grad():
        output = pipe(
            prompt=[row["prompt"] for row in rows],
            negative_prompt=negatives if any(negatives) else None,
            num_inference_steps=params.steps,
            guidance_scale=params.guidance,
            generator=generators,
            output_type="np",
            **start,
        )
    return np.asarray(output.images, dtype=np.float32)


def _takes_size(pipe) -> bool:
    """Whether the pipeline's call takes ``height`` and ``width``."""
    import inspect

    return "height" in inspect.signature(pipe.__call__).parameters


def load_references(index_path, rows: list[dict], params: SamplingParams) -> dict:
    """{reference id: RGB PIL image at params.width x params.height} of the reference images
    the rows start from (``references.jsonl`` at ``index_path``; resized with
    ``params.resize_filter``). GenBenchError naming a row's reference the index lacks."""
    from genbench.data.imageset import ImageSetReader, read_index

    by_id = {r["id"]: r for r in read_index(index_path)}
    wanted = sorted({row["reference"] for row in rows})
    missing = [ref for ref in wanted if ref not in by_id]
    if missing:
        raise GenBenchError(f"{index_path}: no reference image {missing[0]!r} (named by the prompt plan)")
    size, resample = (params.width, params.height), get_resize_filter(params.resize_filter)
    records = [by_id[ref] for ref in wanted]
    with ImageSetReader(index_path, records=records) as reader:
        return {r["id"]: _at_size(reader.load_record(r).convert("RGB"), size, resample) for r in records}


def _at_size(image, size: tuple[int, int], resample):
    return image if image.size == size else image.resize(size, resample=resample)


def _metadata(row: dict, black: bool) -> dict:
    reference = {"reference": row["reference"]} if "reference" in row else {}
    return reference | {
        "id": image_id(row),
        "class_id": row["class_id"],
        "class_name": row["class_name"],
        "prompt": row["prompt"],
        "negative_prompt": row["negative_prompt"],
        "seed": row["seed"],
        "black": black,
    }


def sample_shard(
    pipe, rows: list[dict], out_tar_path, params: SamplingParams, log=None, references=None, adapters=None
) -> dict:
    """Sample one shard of plan rows into a tar; return {"images", "black_or_nan", "truncated_prompts"}.

    ``log`` is None, a logging.Logger or a callable taking a string. ``references``: for
    img2img, the rows' reference images (``load_references``). ``adapters``: for a LoRA
    strategy, ``genbench.injection.lora.ClassAdapters``; a batch then holds one class's rows.
    """
    from tqdm import tqdm

    _check_rows(rows, out_tar_path)
    get_resize_filter(params.resize_filter)  # fail on a bad name before any sampling
    if params.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {params.batch_size}")
    tokenizer = getattr(pipe, "tokenizer", None)
    truncated = count_truncated_prompts(rows, tokenizer, tokenizer.model_max_length) if tokenizer else 0
    members, bad = {}, 0
    with tqdm(total=len(rows), desc=Path(out_tar_path).name, unit="img") as progress:
        for batch in _batches(rows, params.batch_size, by_class=adapters is not None):
            if adapters is not None:
                adapters.use(batch[0]["class_id"])
            for row, image in zip(batch, _generate_batch(pipe, batch, params, references)):
                pixels, black = to_uint8(image)
                bad += black
                members[f"{image_id(row)}.png"] = png_bytes(pixels, params.output_size, params.resize_filter)
                members[f"{image_id(row)}.json"] = json.dumps(_metadata(row, black), sort_keys=True).encode()
            progress.update(len(batch))
    write_tar_atomic(out_tar_path, members)
    stats = {"images": len(rows), "black_or_nan": bad, "truncated_prompts": truncated}
    emit(log, f"{out_tar_path}: {stats['images']} images, {bad} black or NaN, {truncated} prompts truncated")
    return stats


def _batches(rows: list[dict], size: int, by_class: bool) -> list[list[dict]]:
    """Consecutive rows in batches of at most ``size``; with ``by_class`` no batch spans two
    classes (each image keeps its own seeded noise, whatever batch it is in)."""
    groups = [rows]
    if by_class:
        groups = []
        for row in rows:
            if groups and groups[-1][-1]["class_id"] == row["class_id"]:
                groups[-1].append(row)
            else:
                groups.append([row])
    return [group[i : i + size] for group in groups for i in range(0, len(group), size)]


def load_sampling_pipeline(model: str, params: SamplingParams, learned_embeds=()):
    """The diffusers pipeline of ``model`` as ``params`` ask for it (device, dtype, scheduler,
    safety checker, speed options), with the textual-inversion tokens of ``learned_embeds``
    (``learned_embeds.safetensors`` files, one per class) added; for img2img
    (``params.strength`` set) the image-to-image pipeline of the same components. (A LoRA
    strategy's adapters are put in by ``sample_shard``.)"""
    from genbench.models.generators import apply_speed_options, load_text_to_image_pipeline

    pipe = load_text_to_image_pipeline(
        model,
        device=params.device,
        dtype=params.dtype,
        scheduler=params.scheduler,
        safety_checker=params.safety_checker,
    )
    apply_speed_options(pipe, **params.speed_options())
    if learned_embeds:
        from genbench.injection.textual_inversion import load_learned_embeds

        load_learned_embeds(pipe, list(learned_embeds))
    if params.strength is not None:
        from diffusers import AutoPipelineForImage2Image

        pipe = AutoPipelineForImage2Image.from_pipe(pipe)
    return pipe


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
                    **({"reference": meta["reference"]} if "reference" in meta else {}),
                }
            )
    write_index(out_index_path, records)
    return len(records)
