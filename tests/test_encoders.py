"""Encoder contract and registry, with tiny models saved to disk and loaded back."""

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.core.errors import ConfigError, GenBenchError
from genbench.evaluation.encoders import (
    ENCODER_TYPES,
    HFVisionEncoder,
    InceptionEncoder,
    OpenClipEncoder,
    clean_resize_tensor,
    load_encoder,
)
from genbench.models.tiny import build_tiny_open_clip

torch.set_num_threads(1)


def _image(seed, size=(40, 52)):
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, size=(*size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny_clip_spec(tmp_path_factory):
    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny_clip"), seed=5)


@pytest.fixture(scope="module")
def tiny_dino_dir(tmp_path_factory):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    out = tmp_path_factory.mktemp("tiny_dino")
    torch.manual_seed(0)
    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32, patch_size=8
    )
    Dinov2Model(config).save_pretrained(out)
    BitImageProcessor(
        size={"shortest_edge": 36},
        crop_size={"height": 32, "width": 32},
        do_center_crop=True,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(out)
    return out


def test_open_clip_reload_matches_in_memory_model(tiny_clip_spec):
    import open_clip

    encoder = load_encoder(tiny_clip_spec)
    assert isinstance(encoder, OpenClipEncoder) and encoder.has_text
    torch.manual_seed(5)  # the same seed rebuilds the same random weights in memory
    reference = open_clip.create_model(tiny_clip_spec["model"], pretrained=None).eval()
    images = torch.stack([encoder.preprocess(_image(i)) for i in range(3)])
    texts = ["a photo of a cat", "a photo of a dog"]
    with torch.no_grad():
        ref_img = reference.encode_image(images)
        ref_txt = reference.encode_text(open_clip.get_tokenizer(tiny_clip_spec["model"])(texts))
    torch.testing.assert_close(encoder.encode_images(images), ref_img, rtol=0, atol=0)
    torch.testing.assert_close(encoder.encode_texts(texts), ref_txt, rtol=0, atol=0)
    assert encoder.images_encoded == 3


def test_open_clip_identity_and_preprocess(tiny_clip_spec):
    encoder = load_encoder(tiny_clip_spec)
    assert encoder.name.startswith("open_clip:genbench-tiny-clip:open_clip_model.safetensors@")
    assert encoder.preprocess_mode == "clip-bicubic-32-centercrop"
    tensor = encoder.preprocess(_image(0))
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32
    feats = encoder.encode_images(tensor[None])
    assert feats.shape == (1, 32) and feats.dtype == torch.float32
    assert encoder.encode_texts(["x"] * 4).shape == (4, 32)


def test_open_clip_missing_weights_file(tiny_clip_spec, tmp_path):
    spec = dict(tiny_clip_spec, pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(GenBenchError, match="missing.safetensors"):
        load_encoder(spec)


def test_open_clip_config_name_mismatch(tiny_clip_spec):
    with pytest.raises(ConfigError, match="genbench-tiny-clip.*ViT-B-32"):
        OpenClipEncoder("ViT-B-32", tiny_clip_spec["pretrained"], config=tiny_clip_spec["config"])


def test_hf_vision_encoder_pooled_output(tiny_dino_dir):
    from transformers import Dinov2Model

    encoder = load_encoder({"type": "hf", "path": str(tiny_dino_dir)})
    assert isinstance(encoder, HFVisionEncoder) and not encoder.has_text
    assert encoder.preprocess_mode == "hf-bicubic-s36-crop32x32"
    batch = torch.stack([encoder.preprocess(_image(i)) for i in range(2)])
    assert batch.shape == (2, 3, 32, 32)
    with torch.no_grad():
        expected = Dinov2Model.from_pretrained(tiny_dino_dir).eval()(pixel_values=batch).pooler_output
    torch.testing.assert_close(encoder.encode_images(batch), expected)
    with pytest.raises(GenBenchError, match="no text tower"):
        encoder.encode_texts(["a cat"])


def test_hf_missing_dir(tmp_path):
    with pytest.raises(GenBenchError, match="no-dino"):
        load_encoder({"type": "hf", "path": str(tmp_path / "no-dino")})


def test_inception_missing_weights_says_where(tmp_path):
    with pytest.raises(GenBenchError, match=r"inception-2015-12-05\.pt.*downloads nothing") as info:
        InceptionEncoder(tmp_path / "weights")
    assert str(tmp_path / "weights") in str(info.value)


def test_clean_resize_matches_clean_fid():
    from cleanfid.resize import make_resizer

    image = _image(1, size=(64, 48))
    tensor = clean_resize_tensor(image)
    assert tensor.shape == (3, 299, 299) and tensor.dtype == torch.float32
    expected = make_resizer("PIL", False, "bicubic", (299, 299))(np.asarray(image))
    np.testing.assert_array_equal(tensor.numpy(), expected.transpose(2, 0, 1))
    assert 0 <= tensor.min() and tensor.max() <= 255


def test_unknown_encoder_type_lists_valid():
    with pytest.raises(ConfigError, match="'clip'.*open_clip.*inception.*hf"):
        load_encoder({"type": "clip"})
    with pytest.raises(ConfigError, match="'model'"):
        load_encoder({"type": "open_clip"})
    assert set(ENCODER_TYPES) == {"open_clip", "inception", "hf"}


def test_cuda_without_cuda(monkeypatch, tiny_clip_spec):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GenBenchError, match="cuda"):
        load_encoder(tiny_clip_spec, device="cuda")


def test_encode_images_rejects_single_image(tiny_clip_spec):
    encoder = load_encoder(tiny_clip_spec)
    with pytest.raises(GenBenchError, match="N x C x H x W"):
        encoder.encode_images(encoder.preprocess(_image(0)))
    assert encoder.images_encoded == 0


def test_quick_gelu_follows_the_openai_tag_or_the_spec():
    from genbench.core.config import open_clip_quick_gelu

    assert open_clip_quick_gelu({"type": "open_clip", "model": "ViT-B-32", "pretrained": "openai"})
    assert not open_clip_quick_gelu({"type": "open_clip", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"})
    assert open_clip_quick_gelu({"type": "open_clip", "model": "ViT-B-32", "pretrained": "/w.pt", "quick_gelu": True})
    assert not open_clip_quick_gelu({"model": "ViT-B-32", "pretrained": "openai", "quick_gelu": False})


def test_quick_gelu_spec_builds_quick_gelu_towers(tiny_clip_spec):
    import open_clip

    plain = load_encoder(tiny_clip_spec)
    quick = load_encoder({**tiny_clip_spec, "quick_gelu": True})
    act = quick.model.visual.transformer.resblocks[0].mlp.gelu
    assert isinstance(act, open_clip.transformer.QuickGELU)
    assert not isinstance(plain.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    batch = torch.stack([plain.preprocess(_image(0))])
    assert not torch.allclose(plain.encode_images(batch), quick.encode_images(batch))  # same weights, other activation
