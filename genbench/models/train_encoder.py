"""train_encoder: a small open_clip CLIP trained contrastively on the corpus, on CPU.

The model is an open_clip model config (a ModifiedResNet or ViT image tower and a text
transformer) written as
``<name>.json`` and registered with open_clip; the weights are saved as safetensors. It is
loaded back exactly as a user's ViT-B/32 is: ``open_clip.create_model_and_transforms(name,
pretrained=<file>)``.

Loss (CLIP's InfoNCE), for a batch of B image embeddings u_i and caption embeddings v_i,
both L2-normalised, with learned temperature t = exp(logit_scale)::

    L = ( CE(t * U V^T, arange(B)) + CE(t * V U^T, arange(B)) ) / 2

Training is seeded (torch generator for init and batch order) and runs with the rule's
threads, so one config gives byte-identical weights on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from genbench.core.stage import SectionParams, keyed

if TYPE_CHECKING:
    import torch

import json
import math
from pathlib import Path

from genbench.data.corpus import encoder_model_config
from genbench.models.tiny import register_open_clip_config
from genbench.models.training import LossCurve, decode_corpus_images, one_cycle_adamw, progress


@dataclass(frozen=True)
class EncoderTrainingParams(SectionParams):
    """The corpus CLIP's training (``training.encoder``)."""

    STAGE: ClassVar[str] = "train_encoder"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "training.encoder"

    model_config: dict = keyed(doc="an open_clip model config (vision_cfg.layers a list: ModifiedResNet)")
    steps: int = keyed(doc="optimisation steps")
    batch_size: int = keyed(doc="image-caption pairs per step")
    lr: float = keyed(doc="peak learning rate (one cycle)")
    weight_decay: float = keyed(doc="AdamW weight decay")
    seed: int = keyed(doc="initialisation and batch order")
    threads: int = keyed(doc="torch threads (training.threads unless set here): CPU reductions depend on them")


ENCODER_NAME = "genbench-corpus-clip"
ENCODER_WEIGHTS = "open_clip_model.safetensors"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float, normalised with CLIP's mean/std (open_clip's eval transform)."""
    import torch

    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of B x D image and text embeddings (already normalised)."""
    import torch

    logits = logit_scale.exp() * image_emb @ text_emb.T
    target = torch.arange(len(logits))
    return (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2


def train_encoder(corpus_dir: str | Path, cfg: dict, out_dir: str | Path, stage: str = "train_encoder") -> dict:
    """Train the corpus CLIP of ``cfg`` (``steps``, ``batch_size``, ``lr``, ``weight_decay``,
    ``seed`` and the shape keys of ``encoder_model_config``) on the corpus in ``corpus_dir``;
    write ``<name>.json``, the safetensors weights and ``encoder_spec.json`` to ``out_dir``.

    Returns the summary: the loss curve and the final loss. A NaN loss stops training with a
    ``TrainingError`` naming the stage and step, and nothing is saved.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    images, captions, _ = decode_corpus_images(corpus_dir)
    config_path = out_dir / f"{ENCODER_NAME}.json"
    config_path.write_text(json.dumps(encoder_model_config(cfg, images.shape[-1]), indent=2), encoding="utf-8")
    name = register_open_clip_config(config_path)
    torch.manual_seed(int(cfg["seed"]))
    model = open_clip.create_model(name, pretrained=None)
    tokenizer = open_clip.get_tokenizer(name)
    tokens = tokenizer(captions)
    pixels = _normalise(images)
    steps, batch = int(cfg["steps"]), min(int(cfg["batch_size"]), len(pixels))
    optimizer, schedule = one_cycle_adamw(model.parameters(), float(cfg["lr"]), steps, float(cfg["weight_decay"]))
    order = torch.Generator().manual_seed(int(cfg["seed"]))
    curve = LossCurve(stage)
    model.train()
    for step in progress(range(steps), stage):
        index = torch.randperm(len(pixels), generator=order)[:batch]
        image_emb = torch.nn.functional.normalize(model.encode_image(pixels[index]), dim=-1)
        text_emb = torch.nn.functional.normalize(model.encode_text(tokens[index]), dim=-1)
        loss = clip_loss(image_emb, text_emb, model.logit_scale)
        curve.add(step, loss.item(), steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    weights = out_dir / ENCODER_WEIGHTS
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    spec = {"type": "open_clip", "model": name, "pretrained": weights.name, "config": config_path.name}
    (out_dir / "encoder_spec.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return curve.summary()
