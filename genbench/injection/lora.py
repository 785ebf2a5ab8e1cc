"""Few-shot LoRA (as DataDream): low-rank adapters of the generator's UNet attention, and
optionally of its text encoders, trained on a dataset's reference images.

The recipe follows DataDream's ``datadream.py``, written afresh with the pieces GenBench's
textual inversion already has:

- ``scope: dataset``: one adapter for the whole dataset (DataDream's ``dset``), trained on every
  class's ``ref_shot`` reference images; ``scope: class``: one adapter per class (DataDream's
  ``cls``), each trained on its class's references, as its own job (seed ``seed + class``);
  every image is captioned ``"a photo of a {class}"`` (DataDream's first template, without its
  dataset word);
- ``peft`` adapters (``LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian")``) on
  the denoiser's modules named by ``target_modules`` (DataDream's: ``to_k``, ``to_q``, ``to_v``,
  ``to_out.0``, ``add_k_proj``, ``add_v_proj``; the UNet's, or SD3's transformer's attention),
  and with ``text_encoder: true`` on each CLIP text tower's ``q_proj``, ``k_proj``, ``v_proj``,
  ``out_proj`` (SD3's T5 stays frozen: diffusers' SD3 LoRA format holds the two CLIP towers
  only); everything else frozen;
- AdamW, the latents drawn from the VAE's posterior, all randomness from ``seed``. A UNet:
  the MSE between its prediction and the noise (or velocity) at random DDPM timesteps. SD3
  (flow matching, as diffusers' SD3 LoRA script with uniform timestep weighting): at a
  timestep index t drawn uniformly, sigma = the pipeline scheduler's shifted sigma_t,
  x_t = (1 - sigma) z + sigma noise, and the MSE between the transformer's prediction and
  noise - z;
- each adapter saved with the pipeline class's own ``save_lora_weights`` as
  ``adapters/adapter-<part>.safetensors`` (part 0 the dataset's, part c class c's), which
  ``pipe.load_lora_weights(folder / "adapters", weight_name=...)`` reads, so a GenBench LoRA
  loads in plain diffusers; ``adapters.json`` maps each class to its file. Sampling loads them
  the same way, at ``lora.scale``, switching adapters where a shard's class changes.

SD 1.x/2.x, SDXL and SD3 pipelines: a config asking for LoRA on another family is refused when
it is read (``genbench.models.families``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from genbench.core.errors import GenBenchError
from genbench.core.io import emit
from genbench.core.stage import StageParams, keyed, keyed_if_changed

LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"  # diffusers' default weight name
ADAPTERS_INDEX = "adapters.json"  # {"scope", "files": {class id: file under the artifact}}
SCOPES = ("dataset", "class")
TRAINING_TEMPLATE = "a photo of a {}"  # DataDream's TEMPLATES_SMALL[0], no dataset word
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")  # CLIP text attention (DataDream)
ADAPTER_NAME = "genbench"


@dataclass(frozen=True)
class LoraParams(StageParams):
    """How a dataset's LoRA is trained (``lora``; the device is the sampling device,
    ``generation.device``)."""

    STAGE: ClassVar[str] = "lora"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "lora"

    rank: int = keyed(doc="rank r of every adapter")
    alpha: float = keyed(doc="lora_alpha: the update is scaled by alpha / rank")
    steps: int = keyed(doc="optimisation steps")
    lr: float = keyed(doc="AdamW learning rate")
    batch_size: int = keyed(doc="reference images per step")
    resolution: int = keyed(doc="training resolution (the generator's)")
    seed: int = keyed(
        doc="seed of the adapters' initialisation, every training draw and the original references' K-shot"
    )
    target_modules: tuple = keyed(doc="UNet module names that get adapters")
    text_encoder: bool = keyed(doc="also adapt the text encoders' attention")
    device: str = keyed(config="generation.device", doc="where the LoRA is trained")
    scope: str = keyed_if_changed("dataset", doc="dataset: one LoRA (DataDream's dset); class: one per class (cls)")


def train_part(model: str, index_path, dataset, params: LoraParams, part: int, out_file, log=None) -> dict:
    """Train part ``part`` of a lora artifact with the generator ``model`` and save it to
    ``out_file`` (moved into place whole): with ``scope: dataset`` (part 0) one LoRA on every
    reference image of ``index_path`` (a ``references.jsonl``); with ``scope: class`` class
    ``part``'s LoRA on its own references, seeded ``seed + part``. ``dataset``: a DatasetInfo
    (the class names). Returns ``{"images", "final_loss"}``."""
    from dataclasses import replace

    from genbench.data.imageset import read_index
    from genbench.injection.textual_inversion import load_reference_images
    from genbench.models.generators import load_text_to_image_pipeline

    if params.scope not in SCOPES:
        raise GenBenchError(f"lora.scope must be one of {SCOPES}, got {params.scope!r}")
    records = read_index(index_path)
    if params.scope == "class":
        records = [r for r in records if int(r["label"]) == part]
        params = replace(params, seed=params.seed + part)
    if not records:
        raise GenBenchError(f"{index_path}: no reference image for LoRA part {part} (class {dataset.classes[part]!r})")
    pipe = load_text_to_image_pipeline(model, device=params.device)
    captions = [TRAINING_TEMPLATE.format(dataset.classes[int(r["label"])]) for r in records]
    history: list[float] = []
    layers = train_lora(pipe, load_reference_images(index_path, records), captions, params, log=log, history=history)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=f".{out_file.name}.tmp-") as staging:
        os.replace(save_lora(pipe, layers, staging), out_file)
    return {"images": len(records), "final_loss": history[-1]}


def adapters_index(scope: str, num_classes: int) -> dict:
    """``adapters.json``: the scope, and per class id the adapter file (under the artifact)
    its images are sampled with."""
    from genbench.core.paths import adapter_file

    files = {str(c): adapter_file(c if scope == "class" else 0) for c in range(num_classes)}
    return {"scope": scope, "files": files}


def _check(params: LoraParams, images, captions) -> None:
    if not images or len(images) != len(captions):
        raise GenBenchError(f"LoRA training needs a caption per reference image: {len(images)}, {len(captions)}")
    for name in ("rank", "steps", "batch_size", "resolution"):
        value = getattr(params, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GenBenchError(f"lora.{name} must be a positive int, got {value!r}")
    if not params.lr > 0 or not params.alpha > 0:
        raise GenBenchError(f"lora.lr and lora.alpha must be > 0, got {params.lr!r} and {params.alpha!r}")


def denoiser_name(pipe) -> str:
    """The pipeline attribute of its denoising network: ``unet``, or ``transformer`` (SD3, trained
    by flow matching); ``genbench.models.families.Family.denoiser`` names the same."""
    return "unet" if getattr(pipe, "unet", None) is not None else "transformer"


def denoiser(pipe):
    """The pipeline's denoising network: its UNet, or SD3's transformer."""
    return getattr(pipe, denoiser_name(pipe))


def lora_towers(pipe) -> list[tuple]:
    """The (tokenizer, text encoder) pairs ``text_encoder: true`` adapts: SD's one, SDXL's and
    SD3's two CLIP towers (SD3's T5 is not among them)."""
    towers = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        towers.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return towers


def _frozen_modules(pipe) -> list:
    names = ("unet", "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")
    return [module for module in (getattr(pipe, name, None) for name in names) if module is not None]


def _add_adapters(pipe, towers, params: LoraParams) -> list:
    """Adapters on the denoiser (and the text towers), initialised from ``params.seed``;
    returns the trainable parameters (every other weight frozen)."""
    import torch
    from peft import LoraConfig

    for module in _frozen_modules(pipe):
        module.requires_grad_(False)
    torch.manual_seed(params.seed)  # peft draws the initial A and B from the global generator
    config = dict(r=params.rank, lora_alpha=params.alpha, init_lora_weights="gaussian")
    denoiser(pipe).add_adapter(LoraConfig(**config, target_modules=list(params.target_modules)))
    if params.text_encoder:
        for _, encoder in towers:
            encoder.add_adapter(LoraConfig(**config, target_modules=list(TEXT_TARGETS)))
    modules = [denoiser(pipe)] + ([encoder for _, encoder in towers] if params.text_encoder else [])
    return [p for module in modules for p in module.parameters() if p.requires_grad]


def flow_matching_loss(pipe, sampler, noise_scheduler, dists, picks: list[int], prompts: list[str]):
    """SD3's training loss of one batch (the images ``picks``, their ``prompts``): z drawn from
    the images' VAE posteriors ``dists`` (mean, std), shifted and scaled as the pipeline's VAE
    says; a timestep index per image from ``sampler`` (uniform), sigma its shifted sigma in
    ``noise_scheduler`` (a FlowMatchEulerDiscreteScheduler); x = (1 - sigma) z + sigma noise;
    ``MSE(transformer(x, t, text), noise - z)``, the text from ``pipe.encode_prompt`` (all
    three towers, no guidance). A 0-d float32 tensor."""
    import torch

    net = pipe.transformer
    device, dtype = net.device, net.dtype
    mean, std = dists[0][picks], dists[1][picks]
    shift = pipe.vae.config.shift_factor or 0.0
    latents = (mean + std * sampler.randn(mean.shape).to(device) - shift) * pipe.vae.config.scaling_factor
    noise = sampler.randn(latents.shape).to(device)
    index = sampler.timesteps(len(picks))
    sigmas = noise_scheduler.sigmas[index].to(device=device, dtype=torch.float32).view(-1, 1, 1, 1)
    timesteps = noise_scheduler.timesteps[index].to(device)
    noisy = (1.0 - sigmas) * latents + sigmas * noise
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompts, prompts, prompts, device=device, do_classifier_free_guidance=False
    )
    pred = net(
        hidden_states=noisy.to(dtype),
        timestep=timesteps,
        encoder_hidden_states=embeds.to(dtype),
        pooled_projections=pooled.to(dtype),
    ).sample
    return torch.nn.functional.mse_loss(pred.float(), noise - latents)


def train_lora(pipe, images, captions: list[str], params: LoraParams, log=None, history=None) -> dict:
    """Train LoRA adapters of ``pipe`` (modified in place) on ``images`` (PIL) with their
    ``captions``; return the layers for ``save_lora_weights``: ``unet_lora_layers`` (SD3:
    ``transformer_lora_layers``) and, with ``params.text_encoder``, ``text_encoder_lora_layers``
    (and ``text_encoder_2_lora_layers`` on SDXL and SD3), in diffusers' key layout.

    Each step draws ``batch_size`` images (a seeded reshuffle per epoch), their latents
    ``z ~ VAE posterior * scaling_factor``, noise and timesteps. A UNet: from a DDPMScheduler
    built from ``pipe.scheduler.config``, minimising ``MSE(unet(add_noise(z, noise, t), t,
    text(caption)), noise or velocity)``; SD3: ``flow_matching_loss``. A loss that is not
    finite stops training with a GenBenchError naming the step and the batch's classes (the
    captions). ``history`` receives the per-step losses.
    """
    import torch
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    from genbench.injection.textual_inversion import _encode_latent_dists, _StepSampler, denoising_loss

    _check(params, images, captions)
    towers = lora_towers(pipe)
    trainable = _add_adapters(pipe, towers, params)
    flow = denoiser_name(pipe) == "transformer"
    scheduler_class = FlowMatchEulerDiscreteScheduler if flow else DDPMScheduler
    noise_scheduler = scheduler_class.from_config(pipe.scheduler.config)
    dists = _encode_latent_dists(pipe.vae, images, params.resolution, pipe.vae.device, pipe.vae.dtype)
    sampler = _StepSampler(params.seed, len(images), [TRAINING_TEMPLATE], noise_scheduler.config.num_train_timesteps)
    optimizer = torch.optim.AdamW(trainable, lr=params.lr)
    for step in range(params.steps):
        picks = sampler.images(params.batch_size)
        prompts = [captions[i] for i in picks]
        if flow:
            loss = flow_matching_loss(pipe, sampler, noise_scheduler, dists, picks, prompts)
        else:
            loss = denoising_loss(pipe, towers, sampler, noise_scheduler, dists, picks, prompts, params.resolution)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise GenBenchError(
                f"LoRA training: loss {value} at step {step + 1} of {params.steps}, on images of "
                f"{sorted(set(prompts))}; nothing was written (lower lora.lr?)"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if history is not None:
            history.append(value)
        if step == 0 or (step + 1) % 50 == 0 or step + 1 == params.steps:
            emit(log, f"LoRA: step {step + 1}/{params.steps} loss {value:.5f}")
    for module in _frozen_modules(pipe):
        module.requires_grad_(False)
    return _lora_layers(pipe, towers, params.text_encoder)


def _lora_layers(pipe, towers, text_encoder: bool) -> dict:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    name = denoiser_name(pipe)
    # diffusers' own training scripts: SD and SDXL convert peft's keys to diffusers' layout, SD3
    # saves peft's keys as they are (its loader reads them)
    convert = convert_state_dict_to_diffusers if name == "unet" else dict
    layers = {f"{name}_lora_layers": convert(get_peft_model_state_dict(denoiser(pipe)))}
    if text_encoder:
        names = ("text_encoder_lora_layers", "text_encoder_2_lora_layers")
        for name, (_, encoder) in zip(names, towers):
            layers[name] = convert(get_peft_model_state_dict(encoder))
    return layers


def save_lora(pipe, layers: dict, out_dir) -> Path:
    """Write ``layers`` with the pipeline class's ``save_lora_weights`` to
    ``out_dir/pytorch_lora_weights.safetensors`` (float32, contiguous); return the file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = {name: {k: v.detach().float().cpu().contiguous() for k, v in sd.items()} for name, sd in layers.items()}
    type(pipe).save_lora_weights(save_directory=str(out_dir), weight_name=LORA_WEIGHTS_NAME, **layers)
    return out_dir / LORA_WEIGHTS_NAME


def load_lora(pipe, file, scale: float) -> None:
    """Load a saved LoRA file into ``pipe`` with diffusers' own ``load_lora_weights`` and set
    its weight to ``scale`` (1: as trained)."""
    file = Path(file)
    pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=ADAPTER_NAME)
    pipe.set_adapters([ADAPTER_NAME], adapter_weights=[scale])


class ClassAdapters:
    """The adapters of a lora artifact (``folder``), put into ``pipe`` as its rows' classes
    need them (``use``): the dataset's once, or each class's in turn, the previous one deleted."""

    def __init__(self, pipe, folder, scale: float):
        index = Path(folder) / ADAPTERS_INDEX
        if not index.is_file():
            raise GenBenchError(f"{folder}: no {ADAPTERS_INDEX} (not a finished lora artifact)")
        self.pipe, self.folder, self.scale = pipe, Path(folder), scale
        self.files = json.loads(index.read_text(encoding="utf-8"))["files"]
        self.current: str | None = None

    def use(self, class_id: int) -> None:
        """Make class ``class_id``'s adapter the pipeline's one (a no-op when it already is)."""
        file = self.files.get(str(class_id))
        if file is None:
            raise GenBenchError(f"{self.folder / ADAPTERS_INDEX}: no adapter for class {class_id}")
        if file == self.current:
            return
        if self.current is not None:
            self.pipe.delete_adapters(ADAPTER_NAME)
        load_lora(self.pipe, self.folder / file, self.scale)
        self.current = file
