"""The paper's models at their real sizes, with random weights, in the layouts users have.

No weights can be downloaded here, so these builders stand in for the real checkpoints: the
architectures and configs are those of the published models, the weights are random (seeded).
They cost what the real models cost, so they serve for speed figures, and they are saved the way
the real files sit on a user's disk, so the whole loading path is exercised:

- Stable Diffusion 2.1 base: UNet (320-640-1280-1280, cross-attention 1024, linear projections,
  head dims 5/10/20/20), VAE (128-256-512-512, 4 latent channels), the OpenCLIP-H text encoder
  as ``CLIPTextModel`` (1024 wide, 23 layers, 16 heads), CLIP's BPE tokenizer with "!" padding,
  its DDIM scheduler config (scaled-linear betas 0.00085-0.012, epsilon prediction), a
  ``CLIPImageProcessor`` and no safety checker. Saved by ``save_pretrained(variant="fp16")``:
  ``unet/diffusion_pytorch_model.fp16.safetensors`` and so on, as ``download(variant="fp16")``
  leaves them.
- open_clip ViT-B-32 and ViT-B-16 (``openai``, QuickGELU): ``open_clip_model.safetensors`` in
  the Hugging Face cache repository open_clip reads them from
  (``timm/vit_base_patch32_clip_224.openai``).
- clean-fid's Inception: a TorchScript ``inception-2015-12-05.pt`` with the interface of
  NVIDIA's file (``forward(img, return_features)`` and a ``layers`` module, inputs in [0, 255]),
  Inception-v3's layer shapes and 1008 logits.

``write_hub_snapshot`` puts a saved folder into a hub cache (``models--org--name/blobs``,
``snapshots/<revision>/`` of symlinks, ``refs/main``), the layout ``huggingface_hub`` writes,
so that a hub id resolves offline (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import torch

from genbench.models.tiny import CLIP_CONTEXT_LENGTH, CLIP_VOCAB_SIZE, build_tiny_tokenizer, sd_scheduler

SD21_BASE_REPO = "stabilityai/stable-diffusion-2-1-base"
OPEN_CLIP_REPOS = {
    "ViT-B-32": "timm/vit_base_patch32_clip_224.openai",
    "ViT-B-16": "timm/vit_base_patch16_clip_224.openai",
}
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"
INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_LOGITS = 1008


def sd21_base_unet():
    """The UNet2DConditionModel of Stable Diffusion 2.1 base (865 M parameters), random."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=1024,
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
        norm_num_groups=32,
    )


def sd21_base_vae():
    """The AutoencoderKL of Stable Diffusion 2.1 base (84 M parameters, factor 8), random."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=32,
        sample_size=512,
    )


def sd21_base_text_encoder():
    """Stable Diffusion 2's OpenCLIP-H text tower as a CLIPTextModel (340 M parameters), random."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=23,
        num_attention_heads=16,
        max_position_embeddings=CLIP_CONTEXT_LENGTH,
        projection_dim=512,
        hidden_act="gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=0,
    )
    return CLIPTextModel(config)


def build_sd21_base(out_dir: str | Path, seed: int = 0, variant: str | None = "fp16") -> Path:
    """Build Stable Diffusion 2.1 base with random weights and ``save_pretrained`` it.

    ``variant="fp16"`` saves half-precision ``*.fp16.safetensors`` files only (the layout of a
    ``variant="fp16"`` download); ``None`` saves float32 files without a variant. Returns
    ``out_dir``.
    """
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPImageProcessor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(out_dir / "tokenizer")
    parts = {}
    for offset, (name, build) in enumerate(
        (("unet", sd21_base_unet), ("vae", sd21_base_vae), ("text_encoder", sd21_base_text_encoder))
    ):
        torch.manual_seed(seed + offset)
        parts[name] = build()
    pipe = StableDiffusionPipeline(
        **parts,
        tokenizer=tokenizer,
        scheduler=sd_scheduler(),
        safety_checker=None,
        feature_extractor=CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}),
        image_encoder=None,
        requires_safety_checker=False,
    )
    if variant == "fp16":
        pipe = pipe.to(torch.float16)
    pipe.save_pretrained(str(out_dir), variant=variant, safe_serialization=True)
    return out_dir


def open_clip_model(name: str, seed: int = 0):
    """open_clip ``name`` (ViT-B-32 or ViT-B-16) as loaded for ``openai`` (QuickGELU), random."""
    import open_clip

    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None, force_quick_gelu=True)


def save_open_clip_weights(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Random ``name`` weights as ``open_clip_model.safetensors`` in ``out_dir``: the file
    open_clip fetches for ``pretrained="openai"`` from its hub repository."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in open_clip_model(name, seed).state_dict().items()}
    path = out_dir / OPEN_CLIP_WEIGHTS
    save_file(state, str(path))
    return path


class CleanFidInception(torch.nn.Module):
    """Inception-v3 with the interface of clean-fid's TorchScript file.

    ``layers(x)`` maps normalised 299 x 299 images (N, 3, 299, 299) to pooled features
    (N, 2048, 1, 1); ``forward(img, return_features)`` takes images in [0, 255] of any size,
    resizes them to 299 (bilinear), normalises (x - 128) / 128, and returns the 2048-d features
    or the 1008 softmax probabilities.
    """

    def __init__(self):
        super().__init__()
        from torchvision.models.inception import Inception3

        net = Inception3(num_classes=INCEPTION_LOGITS, aux_logits=False, init_weights=True)
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
        names += ["maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d"]
        names += ["Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"]
        self.layers = torch.nn.Sequential(*[getattr(net, n) for n in names])
        self.output = net.fc

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = img.to(torch.float32)
        if x.shape[2] != 299 or x.shape[3] != 299:
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        features = self.layers((x - 128) / 128).flatten(1)
        if return_features:
            return features
        return torch.softmax(self.output(features), dim=1)


def save_clean_fid_inception(out_dir: str | Path, seed: int = 0) -> Path:
    """Random Inception as TorchScript ``inception-2015-12-05.pt`` in ``out_dir`` (torch.jit.save)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    scripted = torch.jit.script(CleanFidInception().eval())
    path = out_dir / INCEPTION_FILE
    torch.jit.save(scripted, str(path))
    return path


def write_hub_snapshot(folder: str | Path, hub_cache: str | Path, repo_id: str, move: bool = True) -> Path:
    """Put the files of ``folder`` into ``hub_cache`` as huggingface_hub caches a download.

    ``models--<org>--<name>/blobs/<sha256>`` holds each file, ``snapshots/<revision>/<path>``
    links to it (relative symlinks), ``refs/main`` names the revision (a digest of the files'
    digests). Files are moved (or copied with ``move=False``). Returns the snapshot folder.
    """
    folder, repo = Path(folder), Path(hub_cache) / f"models--{repo_id.replace('/', '--')}"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digests = {p.relative_to(folder).as_posix(): _sha256(p) for p in files}
    revision = hashlib.sha1("".join(f"{k}:{v}\n" for k, v in sorted(digests.items())).encode()).hexdigest()
    snapshot = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        rel = path.relative_to(folder).as_posix()
        blob = repo / "blobs" / digests[rel]
        if not blob.exists():
            (shutil.move if move else shutil.copy2)(str(path), str(blob))
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def _sha256(path: Path) -> str:
    from genbench.core.fingerprint import sha256_file

    return sha256_file(path)


def build_reference_models(out_dir: str | Path, seed: int = 0) -> dict:
    """Every full-size model in its user layout under ``out_dir``; returns where they are.

    ``hub``: a Hugging Face hub cache (point ``HF_HUB_CACHE`` at it, with ``HF_HUB_OFFLINE=1``)
    holding ``stabilityai/stable-diffusion-2-1-base`` (fp16 variant) and open_clip's
    ViT-B-32 / ViT-B-16 ``openai`` repositories; ``inception``: the folder holding
    ``inception-2015-12-05.pt``. Written into a staging folder and renamed at the end, so a
    killed build leaves no half-built folder behind. An existing complete folder is reused.
    """
    out_dir = Path(out_dir)
    layout = {"hub": out_dir / "hub", "inception": out_dir / "inception"}
    if (out_dir / "COMPLETE").is_file():
        return layout
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    hub = staging / "hub"
    write_hub_snapshot(build_sd21_base(staging / "build" / "sd21", seed), hub, SD21_BASE_REPO)
    for offset, (name, repo) in enumerate(OPEN_CLIP_REPOS.items()):
        folder = staging / "build" / name
        save_open_clip_weights(name, folder, seed + 10 + offset)
        write_hub_snapshot(folder, hub, repo)
    save_clean_fid_inception(staging / "inception", seed + 20)
    shutil.rmtree(staging / "build")
    (staging / "COMPLETE").write_text("built by genbench.models.full_size.build_reference_models\n", encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return layout
