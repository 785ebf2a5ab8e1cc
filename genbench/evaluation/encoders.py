"""Image (and text) encoders behind one small contract, and a registry to load them by type.

Every encoder has:

- ``name``: identity string recorded with features (e.g. ``open_clip:ViT-B-32:openai``);
- ``preprocess_mode``: a named preprocessing mode (as clean-fid names its modes), e.g.
  ``clip-bicubic-224-centercrop`` or ``clean-pil-bicubic-299``;
- ``preprocess(PIL image) -> tensor`` (C x H x W), run in DataLoader workers;
- ``encode_images(batch) -> tensor (N, D)`` float32 on CPU, raw (not normalised);
- ``encode_texts(list[str]) -> tensor (N, D)`` for encoders with ``has_text``;
- ``images_encoded``: how many images went through ``encode_images`` (lets a benchmark
  check that each image is encoded once).

``load_encoder(spec)`` builds one from a spec dict: ``{"type": "open_clip", "model", "pretrained",
"config"?}``, ``{"type": "inception", "weights"}`` or ``{"type": "hf", "path"}``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch

from genbench.core.config import looks_like_local_path, open_clip_quick_gelu
from genbench.core.errors import ConfigError, GenBenchError
from genbench.core.fingerprint import sha256_file

_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_RESIZE_MODE_NAMES = {"shortest": "centercrop", "longest": "pad", "squash": "squash"}
INCEPTION_WEIGHTS_FILE = "inception-2015-12-05.pt"
_PIL_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


class Encoder(ABC):
    """Base class of all encoders; subclasses implement ``preprocess`` and ``_encode_images``."""

    name: str = "encoder"
    preprocess_mode: str = "none"
    has_text: bool = False

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        self.images_encoded = 0

    @abstractmethod
    def preprocess(self, image) -> torch.Tensor:
        """Turn one PIL image into the model's input tensor (C x H x W)."""

    @abstractmethod
    def _encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        """The model's forward pass on a preprocessed batch (N x C x H x W) -> (N, D)."""

    def encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        """Encode a batch of preprocessed images; returns float32 (N, D) on CPU, not normalised."""
        if batch.ndim != 4:
            raise GenBenchError(f"{type(self).__name__}.encode_images expects N x C x H x W, got {tuple(batch.shape)}")
        with torch.inference_mode():
            feats = self._encode_images(batch.to(self.device))
        self.images_encoded += batch.shape[0]
        return feats.float().cpu()

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Encode texts; returns float32 (N, D) on CPU. Image-only encoders raise GenBenchError."""
        raise GenBenchError(f"encoder {self.name!r} ({type(self).__name__}) has no text tower: cannot encode texts")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, preprocess_mode={self.preprocess_mode!r})"


def file_digest(path: str | Path, length: int = 12) -> str:
    """First ``length`` hex digits of the sha256 of a file (identifies local weights)."""
    return sha256_file(path)[:length]


def _mean_name(mean) -> str:
    rounded = tuple(round(float(m), 3) for m in mean)
    if rounded == tuple(round(m, 3) for m in _OPENAI_MEAN):
        return "clip"
    if rounded == _IMAGENET_MEAN:
        return "imagenet"
    return "custom"


def open_clip_preprocess_mode(preprocess_cfg: dict) -> str:
    """Name an open_clip eval transform, e.g. ``clip-bicubic-224-centercrop``."""
    size = preprocess_cfg.get("size", 224)
    size = size[0] if isinstance(size, (tuple, list)) and size[0] == size[-1] else size
    if isinstance(size, (tuple, list)):
        size = "x".join(str(s) for s in size)
    resize = _RESIZE_MODE_NAMES.get(preprocess_cfg.get("resize_mode", "shortest"), "centercrop")
    interp = preprocess_cfg.get("interpolation", "bicubic")
    return f"{_mean_name(preprocess_cfg.get('mean', _OPENAI_MEAN))}-{interp}-{size}-{resize}"


class OpenClipEncoder(Encoder):
    """An open_clip CLIP model: image and text towers.

    ``pretrained`` is an open_clip tag (e.g. "openai", needs the weights in open_clip's
    cache on an offline machine), a local weights file, or None for random weights.
    ``config`` is an optional model config json registered with open_clip first (its file
    stem must equal ``model_name``). ``quick_gelu`` builds the towers with QuickGELU, as
    OpenAI's weights need (``load_encoder`` sets it for ``pretrained: openai``).
    """

    has_text = True

    def __init__(
        self,
        model_name: str,
        pretrained: str | None,
        device: str = "cpu",
        config: str | None = None,
        quick_gelu: bool = False,
    ):
        import open_clip

        super().__init__(device)
        if config is not None:
            _register_config(config, model_name)
        pretrained = _check_pretrained(model_name, pretrained)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, force_quick_gelu=quick_gelu
            )
        except RuntimeError as exc:
            raise GenBenchError(
                f"open_clip could not load model {model_name!r} with pretrained={pretrained!r}: {exc}"
            ) from exc
        self.model = model.to(self.device).eval()
        self._preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.name = f"open_clip:{model_name}:{_weights_identity(pretrained)}"
        self.preprocess_mode = open_clip_preprocess_mode(open_clip.get_model_preprocess_cfg(model))

    def preprocess(self, image) -> torch.Tensor:
        """open_clip's eval transform (resize, center crop, normalise)."""
        return self._preprocess(image)

    def _encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Tokenise with the model's open_clip tokenizer and encode (not normalised)."""
        if isinstance(texts, str):
            raise GenBenchError("encode_texts expects a list of strings, got one string")
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            return self.model.encode_text(tokens).float().cpu()


def _register_config(config: str | Path, model_name: str) -> None:
    from genbench.models.tiny import register_open_clip_config

    registered = register_open_clip_config(config)
    if registered != model_name:
        raise ConfigError(
            f"open_clip config {config} registers model {registered!r} (its file name), "
            f"but the encoder spec asks for model {model_name!r}"
        )


def _check_pretrained(model_name: str, pretrained: str | None) -> str | None:
    if pretrained is None or pretrained == "":
        return None
    pretrained = str(pretrained)
    if looks_like_local_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise GenBenchError(f"open_clip weights file for {model_name!r} not found: {pretrained}")
        return str(path)
    return pretrained


def _weights_identity(pretrained: str | None) -> str:
    if pretrained is None:
        return "random"
    if os.path.isfile(pretrained):
        return f"{Path(pretrained).name}@{file_digest(pretrained)}"
    return pretrained


class InceptionEncoder(Encoder):
    """clean-fid's Inception-V3 (2048-d pool features) from a local torchscript file.

    ``weights_path`` is ``inception-2015-12-05.pt`` or a directory holding it. Images are
    resized with clean-fid's "clean" mode: PIL bicubic to 299 x 299 in float, no quantisation.
    Nothing is downloaded.
    """

    preprocess_mode = "clean-pil-bicubic-299"

    def __init__(self, weights_path: str | Path, device: str = "cpu"):
        from cleanfid.inception_torchscript import InceptionV3W

        super().__init__(device)
        weights_dir = _inception_weights_dir(weights_path)
        self.model = InceptionV3W(str(weights_dir), download=False, resize_inside=False).to(self.device).eval()
        self.name = f"inception:{INCEPTION_WEIGHTS_FILE}"
        self._resize = clean_resizer()

    def preprocess(self, image) -> torch.Tensor:
        """clean-fid "clean" resize to 299 px; float tensor 3 x 299 x 299 with values in [0, 255]."""
        return clean_resize_tensor(image, self._resize)

    def _encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)


def clean_resizer():
    """clean-fid's "clean" resizer: PIL bicubic to 299 x 299 per channel in float32."""
    from cleanfid.resize import make_resizer

    return make_resizer("PIL", False, "bicubic", (299, 299))


def clean_resize_tensor(image, resizer=None) -> torch.Tensor:
    """Resize a PIL image the clean-fid way; returns float32 3 x 299 x 299 in [0, 255]."""
    resizer = resizer or clean_resizer()
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    resized = resizer(array)
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))


def _inception_weights_dir(weights_path: str | Path) -> Path:
    path = Path(weights_path).expanduser()
    weights_file = path / INCEPTION_WEIGHTS_FILE if path.is_dir() or path.suffix != ".pt" else path
    if not weights_file.is_file():
        raise GenBenchError(
            f"Inception weights not found at {weights_file}: put clean-fid's {INCEPTION_WEIGHTS_FILE} "
            f"there (the 'weights' path of the inception encoder); GenBench downloads nothing"
        )
    if weights_file.name != INCEPTION_WEIGHTS_FILE:
        raise GenBenchError(f"Inception weights file must be named {INCEPTION_WEIGHTS_FILE}, got {weights_file}")
    return weights_file.parent


class HFVisionEncoder(Encoder):
    """A transformers vision model (e.g. DINOv2) from a local directory; pooled/CLS output."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        from transformers import AutoImageProcessor, AutoModel

        super().__init__(device)
        path = Path(path).expanduser()
        if not path.is_dir():
            raise GenBenchError(f"transformers vision model directory not found: {path}")
        try:
            self.processor = AutoImageProcessor.from_pretrained(str(path))
            self.model = AutoModel.from_pretrained(str(path)).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise GenBenchError(f"could not load a transformers vision model from {path}: {exc}") from exc
        self.name = f"hf:{path.name}:{self.model.config.model_type}"
        self.preprocess_mode = hf_preprocess_mode(self.processor)

    def preprocess(self, image) -> torch.Tensor:
        """The model's image processor (resize, crop, normalise) on one image."""
        return self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def _encode_images(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=batch)
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.reshape(pooled.shape[0], -1)
        return out.last_hidden_state[:, 0]


def _size_name(size) -> str:
    if size is None:
        return "native"
    if not isinstance(size, dict):
        size = dict(size)
    if "shortest_edge" in size and size["shortest_edge"]:
        return f"s{size['shortest_edge']}"
    return f"{size.get('height')}x{size.get('width')}"


def hf_preprocess_mode(processor) -> str:
    """Name a transformers image processor's transform, e.g. ``hf-bicubic-s256-crop224x224``."""
    resample = getattr(processor, "resample", None)
    interp = _PIL_RESAMPLE_NAMES.get(resample, getattr(resample, "name", str(resample))).lower()
    mode = f"hf-{interp}-{_size_name(getattr(processor, 'size', None))}"
    if getattr(processor, "do_center_crop", False):
        mode += f"-crop{_size_name(getattr(processor, 'crop_size', None))}"
    return mode


def _require(spec: dict, key: str):
    if key not in spec:
        raise ConfigError(f"encoder spec of type {spec.get('type')!r} needs key {key!r}: {spec}")
    return spec[key]


def _open_clip_from_spec(spec: dict, device: str) -> Encoder:
    return OpenClipEncoder(
        _require(spec, "model"),
        spec.get("pretrained"),
        device=device,
        config=spec.get("config"),
        quick_gelu=open_clip_quick_gelu(spec),
    )


def _inception_from_spec(spec: dict, device: str) -> Encoder:
    return InceptionEncoder(_require(spec, "weights"), device=device)


def _hf_from_spec(spec: dict, device: str) -> Encoder:
    return HFVisionEncoder(_require(spec, "path"), device=device)


ENCODER_TYPES = {
    "open_clip": _open_clip_from_spec,
    "inception": _inception_from_spec,
    "hf": _hf_from_spec,
}


def load_encoder(spec: dict, device: str = "cpu") -> Encoder:
    """Build an encoder from a spec dict whose "type" is a key of ENCODER_TYPES."""
    from genbench.models.generators import check_device

    if not isinstance(spec, dict):
        raise ConfigError(f"encoder spec must be a mapping with a 'type' key, got {spec!r}")
    kind = spec.get("type")
    if kind not in ENCODER_TYPES:
        raise ConfigError(f"unknown encoder type {kind!r}; valid: {', '.join(ENCODER_TYPES)}")
    check_device(device)
    return ENCODER_TYPES[kind](spec, device)
