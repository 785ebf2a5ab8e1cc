"""train_vae: the generator's autoencoder (diffusers ``AutoencoderKL``), trained on the corpus.

The VAE maps an ``image_size`` image (the corpus, area-resized) to a latent of
``latent_channels`` x (image_size / 2^(levels - 1))^2, where ``levels`` is the length of
``block_out_channels``; every level but the last halves the side. Loss per batch of B images
x with reconstruction x' = D(z), z ~ q(z | x) = N(mu(x), sigma(x)^2)::

    L = mean |x - x'|  +  kl_weight * mean_b KL(q(z | x_b) || N(0, I))

(KL summed over the latent's elements, as diffusers' ``DiagonalGaussianDistribution.kl``).
After training, ``scaling_factor`` is set to 1 / std of the posterior means over the corpus,
so that scaled latents have unit variance, as Stable Diffusion's 0.18215 does for its VAE. The
VAE is saved with ``save_pretrained``, the layout of a pipeline's ``vae/`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from genbench.core.stage import SectionParams, keyed

if TYPE_CHECKING:
    import torch

from pathlib import Path

from genbench.core.errors import ConfigError
from genbench.models.training import LossCurve, corpus_pixels, decode_corpus_images, one_cycle_adamw, progress


@dataclass(frozen=True)
class VAETrainingParams(SectionParams):
    """The generator's AutoencoderKL (``training.vae``)."""

    STAGE: ClassVar[str] = "train_vae"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "training.vae"

    image_size: int = keyed(doc="side the corpus is resized to: the generator's resolution")
    block_out_channels: list = keyed(doc="channels per level; every level but the last halves the side")
    latent_channels: int = keyed(doc="latent channels")
    layers_per_block: int = keyed(doc="ResNet layers per level")
    norm_num_groups: int = keyed(doc="GroupNorm groups")
    steps: int = keyed(doc="optimisation steps")
    batch_size: int = keyed(doc="images per step")
    lr: float = keyed(doc="peak learning rate (one cycle)")
    kl_weight: float = keyed(doc="weight of the KL term")
    seed: int = keyed(doc="initialisation and batch order")
    threads: int = keyed(doc="torch threads (training.threads unless set here): CPU reductions depend on them")


VAE_FOLDER = "vae"
MIN_LATENT_SIZE = 4  # the UNet halves the latent at least once


def latent_size(cfg: dict) -> int:
    """The side of the VAE's latent: image_size / 2^(levels - 1)."""
    return int(cfg["image_size"]) // 2 ** (len(cfg["block_out_channels"]) - 1)


def check_vae_config(cfg: dict, corpus_size: int, where: str = "training.vae") -> None:
    """Stop with the key at fault when the VAE cannot be built or trained as configured."""
    size, channels = int(cfg["image_size"]), list(cfg["block_out_channels"])
    factor = 2 ** (len(channels) - 1)
    if size > corpus_size:
        raise ConfigError(f"{where}.image_size: {size} exceeds the corpus image size {corpus_size}")
    if size % factor or size // factor < MIN_LATENT_SIZE:
        raise ConfigError(
            f"{where}.image_size: {size} px is below or not a multiple of what {len(channels)} VAE levels need "
            f"(downsampling x{factor}, latents of at least {MIN_LATENT_SIZE} x {MIN_LATENT_SIZE}: "
            f"a multiple of {factor} of at least {factor * MIN_LATENT_SIZE})"
        )
    groups = int(cfg["norm_num_groups"])
    if any(c % groups for c in channels):
        raise ConfigError(f"{where}.norm_num_groups: {groups} does not divide block_out_channels {channels}")


def build_vae(cfg: dict):
    """An untrained ``AutoencoderKL`` of ``cfg``'s shape (no attention in its middle block)."""
    from diffusers import AutoencoderKL

    levels = len(cfg["block_out_channels"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(int(c) for c in cfg["block_out_channels"]),
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        latent_channels=int(cfg["latent_channels"]),
        layers_per_block=int(cfg["layers_per_block"]),
        norm_num_groups=int(cfg["norm_num_groups"]),
        sample_size=int(cfg["image_size"]),
        mid_block_add_attention=False,
    )


def posterior(vae, pixels: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(means, stds) of q(z | x) for N x 3 x S x S pixels in [-1, 1], unscaled (no gradients)."""
    import torch

    with torch.no_grad():
        dists = [vae.encode(pixels[i : i + batch]).latent_dist for i in range(0, len(pixels), batch)]
        return torch.cat([d.mean for d in dists]), torch.cat([d.std for d in dists])


def train_vae(corpus_dir: str | Path, cfg: dict, out_dir: str | Path, stage: str = "train_vae") -> dict:
    """Train the VAE of ``cfg`` (shape keys of ``build_vae``, ``steps``, ``batch_size``, ``lr``,
    ``kl_weight``, ``seed``) on the corpus in ``corpus_dir``; save it to ``out_dir/vae``.

    Returns the summary: loss curve, the scaling factor and the mean absolute reconstruction
    error over the corpus (pixels in [-1, 1]). A NaN loss raises ``TrainingError`` naming the
    stage and step, and nothing is saved.
    """
    import torch

    images, _, _ = decode_corpus_images(corpus_dir)
    check_vae_config(cfg, images.shape[-1])
    pixels = corpus_pixels(images, int(cfg["image_size"]))
    torch.manual_seed(int(cfg["seed"]))
    vae = build_vae(cfg)
    steps, batch = int(cfg["steps"]), min(int(cfg["batch_size"]), len(pixels))
    optimizer, schedule = one_cycle_adamw(vae.parameters(), float(cfg["lr"]), steps)
    draws = torch.Generator().manual_seed(int(cfg["seed"]))
    curve = LossCurve(stage)
    vae.train()
    for step in progress(range(steps), stage):
        x = pixels[torch.randperm(len(pixels), generator=draws)[:batch]]
        dist = vae.encode(x).latent_dist
        reconstruction = vae.decode(dist.sample(generator=draws)).sample
        loss = (reconstruction - x).abs().mean() + float(cfg["kl_weight"]) * dist.kl().mean()
        curve.add(step, loss.item(), steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    vae.eval()
    means, _ = posterior(vae, pixels)
    scaling = round(1.0 / float(means.std()), 6)
    vae.register_to_config(scaling_factor=scaling)
    with torch.no_grad():
        error = float(
            torch.cat(
                [
                    (vae.decode(means[i : i + 256]).sample - pixels[i : i + 256]).abs().flatten(1)
                    for i in range(0, len(pixels), 256)
                ]
            ).mean()
        )
    vae.save_pretrained(str(Path(out_dir) / VAE_FOLDER))
    return {
        **curve.summary(),
        "scaling_factor": scaling,
        "reconstruction_l1": round(error, 6),
        "latent_shape": [int(cfg["latent_channels"]), latent_size(cfg), latent_size(cfg)],
    }
