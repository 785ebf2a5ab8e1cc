"""Pipeline families: what GenBench can run on each kind of diffusers text-to-image pipeline.

Torch-free, so that a config is checked before any job starts. A generator's family comes from
its pipeline class: ``{model: tiny, pipeline: ...}`` and ``{model: trained}`` name it; a local
diffusers folder, or a hub id already in the local cache, has it in ``model_index.json``
(``_class_name``). A hub id that is not cached cannot be read here, and is not checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Family:
    """What GenBench supports on one pipeline family.

    ``flow_matching``: sampled by a flow-matching scheduler (SD3), so the noise-prediction
    schedulers of ``genbench.models.generators.SCHEDULERS`` do not apply; ``textual_inversion``:
    GenBench's textual inversion can train its token; ``lora``: GenBench's LoRA training
    (``genbench.injection.lora``: a noise-prediction UNet, or SD3's flow-matching transformer)
    runs on it; ``denoiser``: the pipeline attribute of its denoising network (``unet`` or
    ``transformer``)."""

    name: str
    flow_matching: bool
    textual_inversion: bool
    lora: bool
    denoiser: str


FAMILIES = {
    "StableDiffusionPipeline": Family("SD 1.x/2.x", False, True, True, "unet"),
    "StableDiffusionXLPipeline": Family("SDXL", False, True, True, "unet"),
    "StableDiffusion3Pipeline": Family("SD3", True, False, True, "transformer"),
}
TINY_PIPELINES = {  # {model: tiny, pipeline: <key>} -> the class genbench.models.tiny builds
    "sd": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
}


def _index_class(folder: Path) -> str | None:
    index = folder / "model_index.json"
    if not index.is_file():
        return None
    try:
        return json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError):
        return None


def _cached_index_class(model: str) -> str | None:
    """The pipeline class of hub id ``model`` when its model_index.json is in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "model_index.json")
    except Exception:  # a malformed id, an unreadable cache: not checkable here
        return None
    return _index_class(Path(found).parent) if isinstance(found, str) else None


def pipeline_class(spec: dict) -> str | None:
    """The diffusers pipeline class a generator spec loads, when it can be known without
    loading it; None otherwise."""
    model = str(spec.get("model", ""))
    if model == "tiny":
        return TINY_PIPELINES[spec.get("pipeline", "sd")]
    if model == "trained":
        return "StableDiffusionPipeline"
    folder = Path(model).expanduser()
    if folder.is_dir():
        return _index_class(folder)
    return _cached_index_class(model) if "/" in model else None


def family(spec: dict) -> tuple[str | None, Family | None]:
    """(pipeline class, its Family) of a generator spec; Family is None for a class GenBench
    has not been tested on, class None when it cannot be read."""
    cls = pipeline_class(spec)
    return cls, FAMILIES.get(cls) if cls else None
