"""train_generator: a small Stable Diffusion trained on the corpus captions, on CPU.

The pipeline is Stable Diffusion's, component for component, at a small size:

- ``vae``: the ``AutoencoderKL`` of ``train_vae`` (frozen here);
- ``text_encoder`` + ``tokenizer``: the text tower of the CLIP of ``train_encoder`` as a frozen
  ``CLIPTextModel`` (``genbench.models.clip_text``) and CLIP's BPE tokenizer, with the
  CLIP's context length. Stable Diffusion 2 conditions on a frozen OpenCLIP text tower too;
- ``unet``: a ``UNet2DConditionModel`` trained here. It reads the prompt through
  cross-attention and through a pooled text embedding added to its timestep embedding
  (diffusers' ``addition_embed_type="text"``), both from the text encoder's token states;
- ``scheduler``: Stable Diffusion's DDIM config (scaled-linear betas 0.00085-0.012, 1000
  steps, epsilon prediction).

Objective, for a batch of corpus images x with captions c (a caption is replaced by "" with
probability ``caption_dropout``, which classifier-free guidance needs), z0 = s * z with
z ~ q(z | x) the VAE posterior and s its scaling factor, t ~ U{0..999}, eps ~ N(0, I),
z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps::

    L = mean_b  w(t_b) * mean (eps_theta(z_t, t, h(c)) - eps)^2,   w(t) = min(SNR(t), gamma) / SNR(t)

(min-SNR-gamma weighting, Hang et al. 2023, with SNR(t) = abar_t / (1 - abar_t); gamma =
``min_snr_gamma``). The saved UNet is the exponential moving average of its weights
(``ema_decay``). The text encoder is frozen, so each caption's token states are computed once.
The pipeline is written with ``save_pretrained`` and loaded by the loader every diffusers
checkpoint goes through (``genbench.models.generators.load_text_to_image_pipeline``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from genbench.core.stage import SectionParams, keyed

if TYPE_CHECKING:
    import torch

import json
import tempfile
from pathlib import Path

from genbench.core.errors import ConfigError
from genbench.models.clip_text import open_clip_text_encoder, prompt_states
from genbench.models.tiny import build_tiny_tokenizer, register_open_clip_config, sd_scheduler
from genbench.models.train_vae import VAE_FOLDER, posterior
from genbench.models.training import (
    LossCurve,
    WeightAverage,
    corpus_pixels,
    decode_corpus_images,
    one_cycle_adamw,
    progress,
)


@dataclass(frozen=True)
class GeneratorTrainingParams(SectionParams):
    """The generator's UNet, trained on the corpus captions (``training.generator``)."""

    STAGE: ClassVar[str] = "train_generator"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "training.generator"

    block_out_channels: list = keyed(doc="channels per level (at least 2)")
    layers_per_block: int = keyed(doc="layers per level")
    attention_head_dim: int = keyed(doc="channels per attention head")
    norm_num_groups: int = keyed(doc="GroupNorm groups")
    pooling_heads: int = keyed(doc="heads pooling the prompt into the timestep embedding")
    steps: int = keyed(doc="optimisation steps")
    batch_size: int = keyed(doc="latents per step")
    lr: float = keyed(doc="peak learning rate (one cycle)")
    caption_dropout: float = keyed(doc="share of captions replaced by the empty prompt (guidance)")
    min_snr_gamma: float = keyed(doc="min-SNR loss weighting gamma")
    ema_decay: float = keyed(doc="decay of the weight average that is saved")
    seed: int = keyed(doc="initialisation, batches, noise and dropout")
    threads: int = keyed(doc="torch threads (training.threads unless set here): CPU reductions depend on them")


def check_generator_config(cfg: dict, where: str = "training.generator") -> None:
    """Stop with the key at fault when the UNet cannot be built as configured."""
    channels = list(cfg["block_out_channels"])
    if len(channels) < 2:
        raise ConfigError(f"{where}.block_out_channels: needs at least two levels, got {channels}")
    groups = int(cfg["norm_num_groups"])
    if any(c % groups for c in channels):
        raise ConfigError(f"{where}.norm_num_groups: {groups} does not divide block_out_channels {channels}")
    if not 0 <= float(cfg["caption_dropout"]) < 1:
        raise ConfigError(f"{where}.caption_dropout: must be in [0, 1), got {cfg['caption_dropout']}")


def build_unet(cfg: dict, latent_channels: int, latent_size: int, text_width: int):
    """An untrained UNet: a plain residual level at full latent resolution, cross-attention
    levels below it, no middle block; the pooled prompt is added to the timestep embedding."""
    from diffusers import UNet2DConditionModel

    channels = tuple(int(c) for c in cfg["block_out_channels"])
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1)
    up = ("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        block_out_channels=channels,
        layers_per_block=int(cfg["layers_per_block"]),
        down_block_types=down,
        up_block_types=up,
        mid_block_type=None,
        cross_attention_dim=text_width,
        attention_head_dim=int(cfg["attention_head_dim"]),
        norm_num_groups=int(cfg["norm_num_groups"]),
        use_linear_projection=True,
        addition_embed_type="text",
        addition_embed_type_num_heads=int(cfg["pooling_heads"]),
    )


def load_corpus_clip(encoder_dir: str | Path):
    """The open_clip CLIP saved by train_encoder, loaded as a user's checkpoint is."""
    import open_clip

    encoder_dir = Path(encoder_dir)
    spec = json.loads((encoder_dir / "encoder_spec.json").read_text(encoding="utf-8"))
    name = register_open_clip_config(encoder_dir / spec["config"])
    return open_clip.create_model(name, pretrained=str(encoder_dir / spec["pretrained"]))


def min_snr_weights(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """w(t) = min(SNR(t), gamma) / SNR(t), SNR(t) = abar_t / (1 - abar_t) (epsilon targets)."""
    import torch

    snr = alphas_cumprod[timesteps] / (1.0 - alphas_cumprod[timesteps])
    return torch.clamp(snr, max=gamma) / snr


def _prompt_inputs(text_encoder, tokenizer, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states of every caption (N x context x width) and of the empty prompt (context x width)."""
    return prompt_states(text_encoder, tokenizer, captions), prompt_states(text_encoder, tokenizer, [""])[0]


def train_generator(
    corpus_dir: str | Path,
    vae_dir: str | Path,
    encoder_dir: str | Path,
    cfg: dict,
    out_dir: str | Path,
    stage: str = "train_generator",
) -> dict:
    """Train the UNet of ``cfg`` on the corpus captions and write the whole pipeline to ``out_dir``.

    ``cfg``: the UNet's shape (``build_unet``), ``steps``, ``batch_size``, ``lr``,
    ``caption_dropout``, ``min_snr_gamma``, ``ema_decay``, ``seed``. Returns the summary: the
    loss curve and the pipeline's components. A NaN loss raises ``TrainingError`` naming the
    stage and step, and nothing is saved.
    """
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline

    check_generator_config(cfg)
    out_dir = Path(out_dir)
    vae = AutoencoderKL.from_pretrained(str(Path(vae_dir) / VAE_FOLDER)).eval().requires_grad_(False)
    clip = load_corpus_clip(encoder_dir)
    text_encoder, _ = open_clip_text_encoder(clip)
    with tempfile.TemporaryDirectory() as folder:  # save_pretrained writes it with the pipeline
        tokenizer = build_tiny_tokenizer(folder, text_encoder.config.max_position_embeddings)
    images, captions, _ = decode_corpus_images(corpus_dir)
    means, stds = posterior(vae, corpus_pixels(images, int(vae.config.sample_size)))
    states, empty = _prompt_inputs(text_encoder, tokenizer, captions)
    scheduler = sd_scheduler()
    noise = DDPMScheduler.from_config(scheduler.config)
    torch.manual_seed(int(cfg["seed"]))
    unet = build_unet(cfg, means.shape[1], means.shape[-1], text_encoder.config.hidden_size)
    average = WeightAverage(unet, float(cfg["ema_decay"]))
    steps, batch = int(cfg["steps"]), min(int(cfg["batch_size"]), len(means))
    optimizer, schedule = one_cycle_adamw(unet.parameters(), float(cfg["lr"]), steps, warmup=0.05)
    draws = torch.Generator().manual_seed(int(cfg["seed"]))
    scale, curve = float(vae.config.scaling_factor), LossCurve(stage)
    unet.train()
    for step in progress(range(steps), stage):
        index = torch.randperm(len(means), generator=draws)[:batch]
        latents = (means[index] + stds[index] * torch.randn(means[index].shape, generator=draws)) * scale
        prompts = states[index].clone()
        prompts[torch.rand(len(index), generator=draws) < float(cfg["caption_dropout"])] = empty
        eps = torch.randn(latents.shape, generator=draws)
        timesteps = torch.randint(0, noise.config.num_train_timesteps, (len(index),), generator=draws)
        predicted = unet(noise.add_noise(latents, eps, timesteps), timesteps, encoder_hidden_states=prompts).sample
        weights = min_snr_weights(noise.alphas_cumprod, timesteps, float(cfg["min_snr_gamma"]))
        loss = (weights * (predicted - eps).pow(2).mean(dim=(1, 2, 3))).mean()
        curve.add(step, loss.item(), steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        average.update(unet, step)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=average.average,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(out_dir))
    side = int(vae.config.sample_size)
    return {
        **curve.summary(),
        "resolution": side,
        "latent_shape": list(means.shape[1:]),
        "context_length": tokenizer.model_max_length,
    }
