"""Tiny, randomly initialised models built in code for offline tests and smoke runs.

No weights are ever downloaded. Each builder seeds torch, builds the model from a config,
and saves it with the library's own save function, so that loading goes through the same
code path a user's real checkpoint takes (diffusers ``from_pretrained`` for Stable
Diffusion, ``open_clip.create_model_and_transforms(name, pretrained=<file>)`` for CLIP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from genbench.core.stage import StageParams, keyed, keyed_if_changed

if TYPE_CHECKING:
    pass

import gzip
import json
from pathlib import Path

from genbench.core.errors import GenBenchError

CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77
TINY_CLIP_NAME = "genbench-tiny-clip"
TINY_CLIP_WEIGHTS = "open_clip_model.safetensors"
# Merges used by CLIP's tokenizer: lines 1 .. 49152-256-2 of the BPE file (line 0 is a header).
_NUM_CLIP_MERGES = 49152 - 256 - 2


@dataclass(frozen=True)
class TinyModelParams(StageParams):
    """A tiny random model built in code ({model: tiny}; ``seed`` picks which)."""

    STAGE: ClassVar[str] = "build_models"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "models.<role>"

    kind: str = keyed(doc="tiny_generator, tiny_encoder or tiny_text2text")
    seed: int = keyed(0, doc="models.<role>.seed")
    pipeline: str = keyed_if_changed("sd", doc="models.generator.pipeline: sd, sdxl or sd3 (tiny generators)")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table (256 entries)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    byte_values = printable[:]
    code_points = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            byte_values.append(byte)
            code_points.append(256 + extra)
            extra += 1
    return dict(zip(byte_values, (chr(c) for c in code_points)))


def open_clip_bpe_path() -> Path:
    """Path of the CLIP BPE file bundled with open_clip (``bpe_simple_vocab_16e6.txt.gz``).

    Located without importing open_clip (which takes seconds).
    """
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise GenBenchError("open_clip is not installed: it provides CLIP's BPE vocabulary file")
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise GenBenchError(f"open_clip's BPE vocabulary file is missing: {path}")
    return path


def clip_vocab_and_merges(bpe_path: str | Path | None = None) -> tuple[dict[str, int], list[str]]:
    """Rebuild CLIP's 49408-token vocabulary and its merge list from the BPE file."""
    bpe_path = Path(bpe_path) if bpe_path else open_clip_bpe_path()
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1 : _NUM_CLIP_MERGES + 1]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != CLIP_VOCAB_SIZE:
        raise GenBenchError(f"{bpe_path}: expected {CLIP_VOCAB_SIZE} tokens, built {len(tokens)}")
    return {tok: i for i, tok in enumerate(tokens)}, merges


def build_tiny_tokenizer(out_dir: str | Path, model_max_length: int = CLIP_CONTEXT_LENGTH):
    """Write CLIP's tokenizer (vocab.json + merges.txt) to ``out_dir`` and load it back.

    ``model_max_length``: the context every prompt is padded or cut to (77 in CLIP and Stable
    Diffusion; a text tower trained with a shorter context takes its own).

    Loads with ``CLIPTokenizer.from_pretrained(out_dir)``: with transformers 5, passing
    ``vocab_file=`` to the constructor silently yields a 2-token tokenizer. The pad token is
    "!" (id 0) as in Stable Diffusion 2.x, so padded ids equal open_clip's.
    """
    from transformers import CLIPTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges()
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": model_max_length, "pad_token": "!", "tokenizer_class": "CLIPTokenizer"}),
        encoding="utf-8",
    )
    tokenizer = CLIPTokenizer.from_pretrained(str(out_dir), model_max_length=model_max_length, pad_token="!")
    if len(tokenizer) != CLIP_VOCAB_SIZE:
        raise GenBenchError(f"tokenizer in {out_dir} has {len(tokenizer)} tokens, expected {CLIP_VOCAB_SIZE}")
    return tokenizer


def _tiny_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=32,
    )


def _tiny_vae(**extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        **extra,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
        sample_size=64,
    )


def _tiny_text_encoder():
    """SD 1.x/2.x's tiny text encoder: the CLIP text tower without a projection."""
    return _tiny_clip_text(with_projection=False)


def sd_scheduler():
    """Stable Diffusion 2.1 base's DDIM scheduler config (scaled-linear betas, epsilon)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_tiny_stable_diffusion(out_dir: str | Path, seed: int = 0) -> Path:
    """Build a tiny random Stable Diffusion pipeline and ``save_pretrained`` it to ``out_dir``.

    The layout equals a real SD checkpoint directory (model_index.json, unet/, vae/,
    text_encoder/, tokenizer/, scheduler/), without safety checker or feature extractor.
    Returns ``out_dir``. Default output size is 64 px (UNet sample 32, VAE factor 2).
    """
    import torch
    from diffusers import StableDiffusionPipeline

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(out_dir / "tokenizer")
    torch.manual_seed(seed)
    unet = _tiny_unet()
    torch.manual_seed(seed + 1)
    vae = _tiny_vae()
    torch.manual_seed(seed + 2)
    text_encoder = _tiny_text_encoder()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sd_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(str(out_dir))
    return out_dir


def tiny_open_clip_config() -> dict:
    """open_clip model config of a tiny CLIP (embed 32, ViT 64 wide / 2 layers / patch 8 / 32 px)."""
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {
            "context_length": CLIP_CONTEXT_LENGTH,
            "vocab_size": CLIP_VOCAB_SIZE,
            "width": 32,
            "heads": 2,
            "layers": 2,
        },
    }


def register_open_clip_config(config_path: str | Path) -> str:
    """Register a model config json with open_clip; returns the model name (the file stem)."""
    import open_clip

    config_path = Path(config_path)
    if not config_path.is_file():
        raise GenBenchError(f"open_clip model config not found: {config_path}")
    open_clip.add_model_config(config_path)
    name = config_path.stem
    if name not in open_clip.list_models():
        raise GenBenchError(
            f"{config_path}: not a valid open_clip model config (needs embed_dim, vision_cfg, text_cfg)"
        )
    return name


def build_tiny_open_clip(out_dir: str | Path, seed: int = 0) -> dict:
    """Build a tiny random open_clip CLIP, save config json + safetensors weights to ``out_dir``.

    Returns an encoder spec for ``genbench.evaluation.encoders.load_encoder``:
    ``{"type": "open_clip", "model": name, "pretrained": <weights file>, "config": <json>}``.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / f"{TINY_CLIP_NAME}.json"
    config_path.write_text(json.dumps(tiny_open_clip_config(), indent=2), encoding="utf-8")
    name = register_open_clip_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    weights_path = out_dir / TINY_CLIP_WEIGHTS
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path))
    return {"type": "open_clip", "model": name, "pretrained": str(weights_path), "config": str(config_path)}


PIPELINE_FAMILIES = ("sd", "sdxl", "sd3")  # the tiny generators a spec can ask for ({model: tiny, pipeline: ...})


def _tiny_clip_text(with_projection: bool, hidden_size: int = 32):
    """A tiny CLIP text tower (2 layers, CLIP's vocabulary); ``with_projection``: the
    ``CLIPTextModelWithProjection`` whose pooled projection SDXL and SD3 condition on."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CLIP_CONTEXT_LENGTH,
        projection_dim=32,
        hidden_act="gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=0,
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _tiny_sdxl_unet():
    """An SDXL-shaped UNet: cross-attention over both text towers' hidden states (32 + 32), and
    the "text_time" added condition (pooled text embedding 32 + six size ids of 8 each)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=32 + 6 * 8,
        cross_attention_dim=64,
        norm_num_groups=32,
    )


def build_tiny_sdxl(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``StableDiffusionXLPipeline`` (two CLIP text towers and tokenizers, the
    second with a projection, an SDXL-shaped UNet, SDXL's Euler scheduler), saved with
    ``save_pretrained``. Returns ``out_dir``."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(out_dir / "tokenizer")
    tokenizer_2 = build_tiny_tokenizer(out_dir / "tokenizer_2")
    torch.manual_seed(seed)
    unet = _tiny_sdxl_unet()
    torch.manual_seed(seed + 1)
    vae = _tiny_vae()
    torch.manual_seed(seed + 2)
    text_encoder = _tiny_clip_text(with_projection=False)
    torch.manual_seed(seed + 3)
    text_encoder_2 = _tiny_clip_text(with_projection=True)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )
    pipe.save_pretrained(str(out_dir))
    return out_dir


def build_tiny_sd3(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``StableDiffusion3Pipeline``: an MMDiT (``SD3Transformer2DModel``), the
    flow-matching Euler scheduler, two CLIP text towers with projections and a T5 encoder with a
    word-level tokenizer built offline (``genbench.models.text2text.word_tokenizer``), saved
    with ``save_pretrained``. Returns ``out_dir``."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import T5Config, T5EncoderModel

    from genbench.models.text2text import TINY_WORDS, word_tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(out_dir / "tokenizer")
    tokenizer_2 = build_tiny_tokenizer(out_dir / "tokenizer_2")
    tokenizer_3 = word_tokenizer(TINY_WORDS + [str(d) for d in range(10)])
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
    )
    torch.manual_seed(seed + 1)
    vae = _tiny_vae(shift_factor=0.0609, scaling_factor=1.5305)  # SD3's VAE has both
    torch.manual_seed(seed + 2)
    text_encoder = _tiny_clip_text(with_projection=True)
    torch.manual_seed(seed + 3)
    text_encoder_2 = _tiny_clip_text(with_projection=True)
    torch.manual_seed(seed + 4)
    t5 = T5Config(vocab_size=len(tokenizer_3), d_model=64, d_kv=8, d_ff=64, num_layers=1, num_heads=4, pad_token_id=0)
    text_encoder_3 = T5EncoderModel(t5)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    pipe.save_pretrained(str(out_dir))
    return out_dir


TINY_GENERATORS = {"sd": build_tiny_stable_diffusion, "sdxl": build_tiny_sdxl, "sd3": build_tiny_sd3}
