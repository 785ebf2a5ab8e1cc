"""Load text-to-image pipelines (Stable Diffusion and friends) through diffusers.

``load_text_to_image_pipeline(model)`` accepts a local diffusers directory (the layout
``save_pretrained`` writes) or a hub id such as ``stabilityai/stable-diffusion-2-1-base``
already in the local Hugging Face cache. Nothing here decides to download: with
``HF_HUB_OFFLINE`` set, hub ids are looked up in the cache only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from genbench.core.errors import ConfigError, GenBenchError

# Scheduler name -> diffusers class name; each is built with Cls.from_config(pipe.scheduler.config).
SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    """Map "auto" (fp16 on CUDA, fp32 elsewhere) or a dtype name to a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(sorted(_DTYPES))}")
    return _DTYPES[dtype]


def check_device(device: str) -> None:
    """Raise a clear error when a CUDA device is requested on a machine without CUDA."""
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise GenBenchError(f"device {device!r} requested but torch.cuda.is_available() is False on this machine")


def scheduler_class(name: str):
    """The diffusers scheduler class registered as ``name`` in SCHEDULERS."""
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULERS)}")
    import diffusers

    return getattr(diffusers, SCHEDULERS[name])


def is_hub_id(model: str) -> bool:
    """True for strings shaped like a hub repository id ("org/name")."""
    return bool(_HUB_ID.match(model)) and not model.startswith((".", "~"))


def looks_local(model: str) -> bool:
    """True when ``model`` is meant as a filesystem path rather than a hub id."""
    if model.startswith(("/", ".", "~")):
        return True
    return os.sep in model and not is_hub_id(model)


def _resolve_local_dir(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.exists():
        raise GenBenchError(f"text-to-image model directory does not exist: {model!r} ({path.absolute()})")
    if not (path / "model_index.json").is_file():
        raise GenBenchError(f"{path} is not a diffusers pipeline directory (no model_index.json)")
    return path


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")


def _model_index(source: str, local_files_only: bool) -> dict:
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.load_config(source, local_files_only=local_files_only)


def _safety_kwargs(index: dict, safety_checker: bool) -> dict:
    """Disable the safety checker when the pipeline has one and the caller did not ask for it."""
    if safety_checker or "safety_checker" not in index:
        return {}
    return {"safety_checker": None, "requires_safety_checker": False}


_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weights_variant(folder: str | Path | None) -> str | None:
    """The weights variant a diffusers folder holds: None when its components have plain
    weight files (``unet/diffusion_pytorch_model.safetensors``), else the variant of the
    ``<name>.<variant>.safetensors`` files (``"fp16"`` after ``download(variant="fp16")``,
    which leaves no plain files and which ``from_pretrained`` without ``variant=`` rejects)."""
    if folder is None:
        return None
    variants = set()
    for component in Path(folder).iterdir():
        weights = (
            [p.name for p in component.glob("*") if p.name.endswith(_WEIGHT_SUFFIXES)] if component.is_dir() else []
        )
        if not weights or any(name.count(".") == 1 for name in weights):
            continue  # no weights (tokenizer, scheduler) or plain ones
        variants.update(name.split(".")[-2] for name in weights)
    if len(variants) > 1:
        raise GenBenchError(f"{folder}: components hold different weight variants {sorted(variants)}")
    return variants.pop() if variants else None


def _cached_snapshot(model: str) -> Path | None:
    """The local cache snapshot folder of hub id ``model`` (None when it is not cached)."""
    from huggingface_hub import try_to_load_from_cache

    index = try_to_load_from_cache(model, "model_index.json")
    return Path(index).parent if isinstance(index, str) else None


def _from_pretrained(source: str, torch_dtype: torch.dtype, safety_checker: bool, local_files_only: bool):
    from diffusers import AutoPipelineForText2Image

    index = _model_index(source, local_files_only)
    kwargs = _safety_kwargs(index, safety_checker)
    folder = Path(source) if Path(source).is_dir() else _cached_snapshot(source)
    variant = weights_variant(folder)
    return AutoPipelineForText2Image.from_pretrained(
        source, dtype=torch_dtype, local_files_only=local_files_only, variant=variant, **kwargs
    )


def _load_hub_pipeline(model: str, torch_dtype: torch.dtype, safety_checker: bool):
    offline = _hub_offline()
    try:
        return _from_pretrained(model, torch_dtype, safety_checker, local_files_only=offline)
    except (OSError, ValueError, EnvironmentError) as exc:
        mode = " (HF_HUB_OFFLINE is set: cache only)" if offline else ""
        raise GenBenchError(
            f"text-to-image model {model!r} is neither an existing directory nor a cached hub id{mode}: {exc}"
        ) from exc


def load_text_to_image_pipeline(
    model: str,
    *,
    device: str = "cpu",
    dtype: str | torch.dtype = "auto",
    scheduler: str | None = None,
    safety_checker: bool = False,
):
    """Load a diffusers text-to-image pipeline from a local directory or a cached hub id.

    ``dtype="auto"`` means fp16 on CUDA and fp32 on CPU. ``scheduler`` (a key of SCHEDULERS)
    replaces the pipeline's scheduler, built from its config. The safety checker is off
    unless ``safety_checker=True`` (then the pipeline keeps its own). The progress bar is
    disabled. Returns the pipeline moved to ``device``.
    """
    model = str(model)
    check_device(device)
    sched_cls = scheduler_class(scheduler) if scheduler is not None else None
    torch_dtype = resolve_dtype(dtype, device)
    if looks_local(model) or Path(model).expanduser().is_dir():
        path = _resolve_local_dir(model)
        pipe = _from_pretrained(str(path), torch_dtype, safety_checker, local_files_only=True)
    else:
        pipe = _load_hub_pipeline(model, torch_dtype, safety_checker)
    if sched_cls is not None:
        pipe.scheduler = sched_cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


ATTENTION_PROCESSORS = {"sdpa": "AttnProcessor2_0", "eager": "AttnProcessor"}


def apply_speed_options(pipe, *, attention: str = "sdpa", channels_last: bool = False, compile: bool = False):
    """Set a pipeline's speed options in place and return it.

    ``attention``: "sdpa" (torch's scaled_dot_product_attention, diffusers' default on torch 2,
    flash / memory-efficient kernels on CUDA) or "eager" (softmax(QK^T / sqrt(d)) V written out).
    ``channels_last``: UNet and VAE weights and activations in NHWC (faster convolutions on
    tensor cores). ``compile``: the UNet wrapped by ``torch.compile`` (the first batch compiles).
    """
    import diffusers.models.attention_processor as processors

    if attention not in ATTENTION_PROCESSORS:
        raise ConfigError(f"generation.attention: unknown {attention!r}; valid: {', '.join(ATTENTION_PROCESSORS)}")
    name = denoiser_name(pipe)
    denoiser = getattr(pipe, name)
    if name == "unet":
        denoiser.set_attn_processor(getattr(processors, ATTENTION_PROCESSORS[attention])())
    elif attention != "sdpa":  # a transformer's joint attention keeps its own (SDPA) processors
        raise ConfigError(
            f"generation.attention: {attention!r} is for UNet pipelines; {type(pipe).__name__} has a {name}"
        )
    if channels_last:
        denoiser.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if compile:
        setattr(pipe, name, torch.compile(denoiser))
    return pipe


def denoiser_name(pipe) -> str:
    """The pipeline attribute of its denoising network: ``unet`` (SD, SDXL) or ``transformer``
    (SD3 and other DiT pipelines)."""
    for name in ("unet", "transformer"):
        if getattr(pipe, name, None) is not None:
            return name
    raise GenBenchError(f"{type(pipe).__name__} has neither a unet nor a transformer to sample with")
