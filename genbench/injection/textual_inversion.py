"""Textual inversion: learn one new text-encoder token per class (diffusers' recipe).

The recipe is diffusers' textual-inversion example, written afresh:

- a placeholder token (``class_token(dataset, slug)`` = ``"<dataset-slug>"``) is added to
  the tokenizer and one row to the text encoder's input embeddings, initialised from the
  initializer word's token (the first word of the class name by default);
- everything is frozen except the input embedding matrix; AdamW minimises the MSE between
  the UNet's prediction and the target (the noise, or the velocity for v-prediction
  models) at random DDPM timesteps, for prompts ``template.format(f"{token} {class}")``;
- after every optimizer step all embedding rows but the new one are restored bit for bit;
- ``learned_embeds.safetensors`` holds ``{token: tensor (1, D)}``, the single-key layout that
  ``pipe.load_textual_inversion(path)`` loads.

On SDXL (two CLIP text towers) the token is added to both tokenizers and trained in both
encoders at once, as diffusers' SDXL script does: the UNet sees both towers' penultimate hidden
states side by side, the second tower's pooled projection and the size ids of the training
resolution. The file then holds ``clip_l`` and ``clip_g`` rows (the layout SDXL embeddings are
shared in), with the token in its metadata.

Reference images (``reference_images``) come from an original K-shot index (a seeded
``fewshot.sample_k_shot`` subset) or from the top hits of a retrieved set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import emit
from genbench.core.stage import StageParams, keyed
from genbench.injection.references import (  # noqa: F401 (the light half, re-exported)
    REFERENCE_SOURCES,
    class_token,
    reference_images,
    write_reference_index,
)

if TYPE_CHECKING:
    import torch

DEFAULT_TEMPLATES = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a good photo of a {}",
)
LEARNED_EMBEDS_NAME = "learned_embeds.safetensors"


@dataclass(frozen=True)
class TextualInversionParams(StageParams):
    """How each class's token is learned (``textual_inversion``; the device is the sampling
    device, ``generation.device``). Class ``c`` trains with seed ``seed + c``."""

    STAGE: ClassVar[str] = "textual_inversion"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "textual_inversion"

    steps: int = keyed(doc="optimisation steps per class")
    lr: float = keyed(doc="AdamW learning rate of the token's embedding row")
    batch_size: int = keyed(doc="reference images per step")
    resolution: int = keyed(doc="training resolution (the generator's)")
    seed: int = keyed(doc="seed of class 0; class c uses seed + c")
    initializer: str | None = keyed(doc="initial word; null: the first word of the class name")
    device: str = keyed(config="generation.device", doc="where the tokens are learned")


def learn_class_token(
    model: str, index_path, class_id: int, dataset, params: TextualInversionParams, out_path, log=None
):
    """Learn class ``class_id``'s token of ``dataset`` (a DatasetInfo) from its references in
    ``index_path`` with the generator ``model``, and save it to ``out_path``
    (``learned_embeds.safetensors``); return the token."""
    from genbench.data.imageset import read_index
    from genbench.models.generators import load_text_to_image_pipeline

    records = [r for r in read_index(index_path) if r["label"] == class_id]
    pipe = load_text_to_image_pipeline(model, device=params.device)
    token = class_token(dataset.name, dataset.slugs[class_id])
    rows = train_token(
        pipe,
        load_reference_images(index_path, records),
        token,
        params.initializer,
        dataset.classes[class_id],
        steps=params.steps,
        lr=params.lr,
        batch_size=params.batch_size,
        resolution=params.resolution,
        seed=params.seed + class_id,
        log=log,
    )
    save_learned_embeds(out_path, {token: rows})
    return token


def load_reference_images(index_path, records: list[dict]) -> list:
    """Decode the reference records of one class as RGB PIL images."""
    from genbench.data.imageset import ImageSetReader

    with ImageSetReader(index_path, records=records) as reader:
        return [reader.load_record(r) for r in records]


# ----------------------------------------------------------------------------- training


def image_to_tensor(image, resolution: int) -> torch.Tensor:
    """Resize the shorter side to ``resolution`` (bicubic), center-crop, scale to [-1, 1]; 3 x R x R."""
    import torch
    from PIL import Image

    image = image.convert("RGB")
    scale = resolution / min(image.size)
    size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()) / 127.5 - 1.0
    return pixels.permute(2, 0, 1)


def initializer_token_id(tokenizer, word: str, log=None) -> int:
    """Id of the single token for ``word``; a multi-token word falls back to its first sub-token (logged).

    GenBenchError when ``word`` tokenises to nothing.
    """
    ids = tokenizer.encode(word, add_special_tokens=False)
    if not ids:
        raise GenBenchError(f"initializer word {word!r} gives no token")
    if len(ids) > 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        emit(log, f"initializer word {word!r} is {len(ids)} tokens {pieces}; using the first, {pieces[0]!r}")
    return ids[0]


def add_placeholder_token(tokenizer, text_encoder, token: str, init_id: int) -> int:
    """Add ``token`` to the tokenizer and a row (copy of row ``init_id``) to the text encoder; return its id.

    GenBenchError when the token already exists in the tokenizer.
    """
    import torch

    if token in tokenizer.get_vocab():
        raise GenBenchError(f"token {token!r} already exists in the tokenizer; choose another token")
    if tokenizer.add_tokens(token) != 1:
        raise GenBenchError(f"tokenizer did not add token {token!r}")
    token_id = tokenizer.convert_tokens_to_ids(token)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[token_id] = weight[init_id]
    return token_id


def _encode_latent_dists(vae, images, resolution: int, device, dtype):
    import torch

    pixels = torch.stack([image_to_tensor(im, resolution) for im in images]).to(device=device, dtype=dtype)
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
    return dist.mean.float(), dist.std.float()


def _training_target(scheduler, latents, noise, timesteps):
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise GenBenchError(f"noise scheduler prediction_type {kind!r} is not supported (epsilon, v_prediction)")


def _prompt_ids(tokenizer, prompts: list[str], device) -> torch.Tensor:
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids.to(device)


def text_towers(pipe) -> list[tuple]:
    """The (tokenizer, text encoder) pairs a token lives in: one for SD 1.x/2.x, two for SDXL."""
    towers = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        towers.append((pipe.tokenizer_2, pipe.text_encoder_2))
    if getattr(pipe, "text_encoder_3", None) is not None or pipe.text_encoder is None:
        raise GenBenchError(f"textual inversion is for SD 1.x/2.x and SDXL pipelines, not {type(pipe).__name__}")
    return towers


def _condition(pipe, towers, prompts: list[str], resolution: int, device):
    """(encoder_hidden_states, added_cond_kwargs) for ``prompts`` as the pipeline conditions its
    UNet: SD, the text encoder's last hidden state; SDXL, both towers' penultimate hidden states
    concatenated, with the second tower's pooled projection and the size ids
    (resolution, resolution, 0, 0, resolution, resolution)."""
    import torch

    if len(towers) == 1:
        tokenizer, encoder = towers[0]
        return encoder(_prompt_ids(tokenizer, prompts, device))[0], None
    states = []
    for tokenizer, encoder in towers:
        out = encoder(_prompt_ids(tokenizer, prompts, device), output_hidden_states=True)
        states.append(out.hidden_states[-2])
    size_ids = torch.tensor([[resolution, resolution, 0, 0, resolution, resolution]] * len(prompts), device=device)
    return torch.cat(states, dim=-1), {"text_embeds": out[0], "time_ids": size_ids}


def _freeze(pipe, towers) -> list[torch.nn.Parameter]:
    pipe.unet.requires_grad_(False)
    pipe.vae.requires_grad_(False)
    weights = []
    for _, encoder in towers:
        encoder.requires_grad_(False)
        weight = encoder.get_input_embeddings().weight
        weight.requires_grad_(True)
        weights.append(weight)
    return weights


def _check_train_args(images, steps, lr, batch_size, resolution, templates):
    if not images:
        raise GenBenchError("textual inversion needs at least one reference image")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("resolution", resolution)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GenBenchError(f"{name} must be a positive int, got {value!r}")
    if not lr > 0:
        raise GenBenchError(f"lr must be > 0, got {lr!r}")
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise GenBenchError(f"templates must be non-empty strings with '{{}}', bad: {bad}")


class _StepSampler:
    """Seeded choice of images, templates, noise and timesteps for each training step."""

    def __init__(self, seed: int, num_images: int, templates, num_train_timesteps: int):
        import torch

        self.rng = random.Random(seed)
        self.gen = torch.Generator("cpu").manual_seed(seed)
        self.num_images, self.templates, self.num_t = num_images, list(templates), num_train_timesteps
        self.order: list[int] = []

    def images(self, n: int) -> list[int]:
        picks = []
        for _ in range(n):
            if not self.order:
                self.order = list(range(self.num_images))
                self.rng.shuffle(self.order)
            picks.append(self.order.pop())
        return picks

    def prompts(self, n: int, phrase: str) -> list[str]:
        return [self.rng.choice(self.templates).format(phrase) for _ in range(n)]

    def randn(self, shape) -> torch.Tensor:
        import torch

        return torch.randn(shape, generator=self.gen)

    def timesteps(self, n: int) -> torch.Tensor:
        import torch

        return torch.randint(0, self.num_t, (n,), generator=self.gen)


@dataclass
class _Learning:
    """What a training step updates: per text tower, its embedding matrix, the new token's row
    index and a frozen copy of every other row."""

    towers: list
    weights: list
    token_ids: list[int]
    frozen: list
    resolution: int

    def restore_other_rows(self) -> None:
        import torch

        with torch.no_grad():
            for weight, token_id, frozen in zip(self.weights, self.token_ids, self.frozen):
                keep = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
                keep[token_id] = False
                weight[keep] = frozen[keep]


def denoising_loss(pipe, towers, sampler, noise_scheduler, dists, picks: list[int], prompts: list[str], resolution):
    """The denoising loss of one batch (the images ``picks``, their ``prompts``):
    ``MSE(unet(add_noise(z, noise, t), t, text), noise or velocity)`` with ``z`` drawn from the
    images' VAE posteriors ``dists`` (mean, std) times the scaling factor, and the noise and
    timesteps from ``sampler``'s generator. A 0-d float32 tensor."""
    import torch

    device, unet_dtype = pipe.unet.device, pipe.unet.dtype
    mean, std = dists[0][picks], dists[1][picks]
    latents = (mean + std * sampler.randn(mean.shape).to(device)) * pipe.vae.config.scaling_factor
    noise = sampler.randn(latents.shape).to(device)
    timesteps = sampler.timesteps(len(picks)).to(device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    hidden, added = _condition(pipe, towers, prompts, resolution, device)
    if added is not None:
        added = {k: v.to(unet_dtype) for k, v in added.items()}
    pred = pipe.unet(
        noisy.to(unet_dtype), timesteps, encoder_hidden_states=hidden.to(unet_dtype), added_cond_kwargs=added
    ).sample
    return torch.nn.functional.mse_loss(pred.float(), _training_target(noise_scheduler, latents, noise, timesteps))


def _training_step(pipe, learning: _Learning, optimizer, sampler, noise_scheduler, dists, phrase, batch_size):
    picks = sampler.images(batch_size)
    prompts = sampler.prompts(batch_size, phrase)
    loss = denoising_loss(pipe, learning.towers, sampler, noise_scheduler, dists, picks, prompts, learning.resolution)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    learning.restore_other_rows()
    return float(loss.detach())


def train_token(
    pipe,
    images,
    token: str,
    initializer_word: str | None,
    class_name: str,
    *,
    steps: int,
    lr: float = 5e-4,
    batch_size: int = 4,
    resolution: int = 512,
    seed: int = 0,
    templates=DEFAULT_TEMPLATES,
    weight_decay: float = 1e-2,
    log=None,
    history=None,
) -> tuple[torch.Tensor, ...]:
    """Learn the embedding of a new token ``token`` from reference ``images`` (PIL); returns its
    row in each text tower ((D,) for SD 1.x/2.x; (D_l,), (D_g,) for SDXL's two towers).

    The pipeline is modified in place: the token stays in its tokenizers and text encoders.
    The row starts as the embedding of ``initializer_word`` (default: the class name's first
    word; a multi-token word uses its first sub-token, logged). Each step draws
    ``batch_size`` images (seeded reshuffle per epoch) and templates filled with
    ``f"{token} {class_name}"``, latents ``z ~ VAE posterior * scaling_factor``, noise and
    timesteps from a DDPMScheduler built from ``pipe.scheduler.config``, and minimises
    ``MSE(unet(add_noise(z, noise, t), t, text), noise or velocity)`` with AdamW(lr,
    weight_decay); then every other embedding row is restored. All randomness comes from
    ``seed`` (same seed, same result on CPU). The text encoders run in float32 during
    training; afterwards no pipeline parameter requires grad. ``history`` (a list) receives
    the per-step losses. GenBenchError when ``token`` already exists. On SDXL both towers'
    rows are trained together (see the module docstring).
    """
    import torch
    from diffusers import DDPMScheduler

    templates = tuple(templates)
    _check_train_args(images, steps, lr, batch_size, resolution, templates)
    word = initializer_word or _first_word(class_name)
    towers = text_towers(pipe)
    for tokenizer, _ in towers:
        if token in tokenizer.get_vocab():
            raise GenBenchError(f"token {token!r} already exists in the tokenizer; choose another token")
    token_ids = [
        add_placeholder_token(tokenizer, encoder, token, initializer_token_id(tokenizer, word, log))
        for tokenizer, encoder in towers
    ]
    text_dtypes = [encoder.dtype for _, encoder in towers]
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    dists = _encode_latent_dists(pipe.vae, images, resolution, pipe.vae.device, pipe.vae.dtype)
    sampler = _StepSampler(seed, len(images), templates, noise_scheduler.config.num_train_timesteps)
    phrase = f"{token} {class_name}"
    try:
        for _, encoder in towers:
            encoder.to(torch.float32)
        weights = _freeze(pipe, towers)
        learning = _Learning(towers, weights, token_ids, [w.detach().clone() for w in weights], resolution)
        optimizer = torch.optim.AdamW(weights, lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay, eps=1e-8)
        for step in range(steps):
            loss = _training_step(pipe, learning, optimizer, sampler, noise_scheduler, dists, phrase, batch_size)
            if history is not None:
                history.append(loss)
            if step == 0 or (step + 1) % 50 == 0 or step + 1 == steps:
                emit(log, f"{token}: step {step + 1}/{steps} loss {loss:.5f}")
        learned = tuple(w[i].detach().float().cpu().clone() for w, i in zip(weights, token_ids))
    finally:
        for (_, encoder), dtype in zip(towers, text_dtypes):
            encoder.requires_grad_(False)
            encoder.to(dtype)
    return learned


def _first_word(class_name: str) -> str:
    words = class_name.split()
    if not words:
        raise GenBenchError(f"class name {class_name!r} has no word to initialise the token from")
    return words[0]


# ----------------------------------------------------------------------------- files


SDXL_KEYS = ("clip_l", "clip_g")  # the two towers' rows in an SDXL embedding file


def save_learned_embeds(path, embeds: dict) -> Path:
    """Save ``{token: rows}`` as safetensors, one token per file.

    ``rows`` is the tensor (D,) or (1, D) of a one-tower pipeline, or ``train_token``'s tuple:
    one row, or SDXL's two. ``path`` is a ``.safetensors`` file or a directory, which gets
    ``learned_embeds.safetensors``. One row is stored as float32 (1, D) under the token's name,
    the single-key layout ``pipe.load_textual_inversion`` reads; SDXL's two under ``clip_l``
    and ``clip_g``, with the token in the file's metadata. Returns the file path.
    """
    import torch
    from safetensors.torch import save_file

    if len(embeds) != 1:
        raise GenBenchError(
            f"save_learned_embeds writes one token per file (load_textual_inversion reads one key), "
            f"got {len(embeds)}: {sorted(embeds)}"
        )
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / LEARNED_EMBEDS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    ((token, rows),) = embeds.items()
    rows = rows if isinstance(rows, (tuple, list)) else (rows,)
    rows = [torch.as_tensor(r).detach().float().cpu().reshape(1, -1).contiguous() for r in rows]
    if len(rows) == 1:
        save_file({token: rows[0]}, str(path))
    elif len(rows) == len(SDXL_KEYS):
        save_file(dict(zip(SDXL_KEYS, rows)), str(path), metadata={"token": token})
    else:
        raise GenBenchError(f"{token}: {len(rows)} rows; a learned token has one (SD) or two (SDXL)")
    return path


def _read_embeds(path: Path) -> tuple[str, dict]:
    """(token, {key: tensor}) of a learned-embeds file: one key named by the token, or SDXL's
    ``clip_l`` and ``clip_g`` with the token in the metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys, metadata = sorted(handle.keys()), handle.metadata() or {}
        tensors = {k: handle.get_tensor(k) for k in keys}
    if keys == sorted(SDXL_KEYS) and metadata.get("token"):
        return metadata["token"], tensors
    if len(keys) != 1:
        raise GenBenchError(f"{path}: a learned-embeds file holds exactly one token, found keys {keys}")
    return keys[0], tensors


def load_learned_embeds(pipe, paths) -> list[str]:
    """Load learned-embeds files (one token each) into ``pipe`` via ``pipe.load_textual_inversion``
    (an SDXL file into both text towers).

    ``paths`` are ``.safetensors`` files or directories holding ``learned_embeds.safetensors``.
    Returns the tokens in order. GenBenchError naming the token and file when a token is
    already in the tokenizer, two files hold the same token, or a file is missing.
    """
    files = [Path(p) if Path(p).suffix == ".safetensors" else Path(p) / LEARNED_EMBEDS_NAME for p in paths]
    tokens, contents, vocab = [], [], pipe.tokenizer.get_vocab()
    for file in files:
        if not file.is_file():
            raise GenBenchError(f"learned embeds file {file} does not exist")
        token, tensors = _read_embeds(file)
        if token in vocab:
            raise GenBenchError(f"{file}: token {token!r} already exists in the pipeline's tokenizer")
        if token in tokens:
            raise GenBenchError(f"{file}: token {token!r} is also in {files[tokens.index(token)]}")
        tokens.append(token)
        contents.append(tensors)
    two_towers = [c for c in contents if set(c) == set(SDXL_KEYS)]
    if two_towers and len(two_towers) != len(contents):
        raise GenBenchError("learned embeds mix one-tower (SD) and two-tower (SDXL) files")
    if two_towers:
        towers = text_towers(pipe)
        if len(towers) != 2:
            raise GenBenchError(
                f"SDXL learned embeds (clip_l, clip_g) need two text towers; {type(pipe).__name__} has one"
            )
        for (tokenizer, encoder), key in zip(towers, SDXL_KEYS):
            rows = [c[key].reshape(1, -1) for c in contents]
            pipe.load_textual_inversion(rows, token=tokens, text_encoder=encoder, tokenizer=tokenizer)
    elif files:
        pipe.load_textual_inversion([str(f) for f in files])
    return tokens
