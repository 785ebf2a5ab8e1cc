"""Tiny models built in code, saved, and reloaded through the real loading paths."""

import json

import numpy as np
import pytest
import torch

from genbench.core.errors import ConfigError, GenBenchError
from genbench.models import generators
from genbench.models.generators import SCHEDULERS, load_text_to_image_pipeline
from genbench.models.tiny import (
    CLIP_VOCAB_SIZE,
    build_tiny_open_clip,
    build_tiny_stable_diffusion,
    build_tiny_tokenizer,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd"), seed=0)


def _generate(pipe, seed=0, steps=2):
    generator = torch.Generator("cpu").manual_seed(seed)
    out = pipe(
        "a photo of a cat", num_inference_steps=steps, height=32, width=32, generator=generator, output_type="np"
    )
    return out.images


def test_tokenizer_matches_open_clip(tmp_path):
    import open_clip

    tokenizer = build_tiny_tokenizer(tmp_path / "tok")
    assert len(tokenizer) == CLIP_VOCAB_SIZE
    assert tokenizer.model_max_length == 77
    text = "a photo of a cat"
    ids = tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
    expected = open_clip.get_tokenizer("ViT-B-32")([text])[0].tolist()
    assert ids == expected
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_tiny_sd_saved_layout(tiny_sd_dir):
    index = json.loads((tiny_sd_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    assert index["safety_checker"] == [None, None]
    assert index["requires_safety_checker"] is False
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_sd_dir / part).is_dir()


def test_tiny_sd_reload_is_deterministic(tiny_sd_dir):
    first = load_text_to_image_pipeline(str(tiny_sd_dir))
    second = load_text_to_image_pipeline(str(tiny_sd_dir))
    assert type(first).__name__ == "StableDiffusionPipeline"
    assert first.unet.dtype == torch.float32  # "auto" on CPU
    assert first.safety_checker is None
    assert len(first.tokenizer) == CLIP_VOCAB_SIZE
    a, b = _generate(first, seed=3), _generate(second, seed=3)
    assert a.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _generate(first, seed=4))


def test_same_seed_builds_same_weights(tmp_path):
    spec_a = build_tiny_open_clip(tmp_path / "a", seed=1)
    spec_b = build_tiny_open_clip(tmp_path / "b", seed=1)
    spec_c = build_tiny_open_clip(tmp_path / "c", seed=2)
    from safetensors.torch import load_file

    a, b, c = (load_file(s["pretrained"]) for s in (spec_a, spec_b, spec_c))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", ["euler_a", "dpm++"])
def test_scheduler_by_name(tiny_sd_dir, name):
    pipe = load_text_to_image_pipeline(str(tiny_sd_dir), scheduler=name)
    assert type(pipe.scheduler).__name__ == SCHEDULERS[name]
    assert _generate(pipe, steps=2).shape == (1, 32, 32, 3)


def test_unknown_scheduler_lists_valid(tiny_sd_dir):
    with pytest.raises(ConfigError, match="'warp'.*ddim.*unipc"):
        load_text_to_image_pipeline(str(tiny_sd_dir), scheduler="warp")


def test_missing_local_dir_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(GenBenchError, match="no-such-model"):
        load_text_to_image_pipeline(str(missing))
    with pytest.raises(GenBenchError, match="does not exist: 'models/sd/v2'"):
        load_text_to_image_pipeline("models/sd/v2")


def test_dir_without_model_index(tmp_path):
    with pytest.raises(GenBenchError, match="model_index.json"):
        load_text_to_image_pipeline(str(tmp_path))


def test_uncached_hub_id_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(GenBenchError, match="neither an existing directory nor a cached hub id"):
        load_text_to_image_pipeline("genbench-test/not-a-model")


def test_cuda_without_cuda_fails_before_loading(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GenBenchError, match="cuda.*is_available"):
        load_text_to_image_pipeline(str(tmp_path / "never-read"), device="cuda")


def test_dtype_and_hub_id_helpers():
    assert generators.resolve_dtype("auto", "cpu") == torch.float32
    assert generators.resolve_dtype("auto", "cuda:0") == torch.float16
    assert generators.resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(ConfigError, match="float8"):
        generators.resolve_dtype("float8", "cpu")
    assert generators.is_hub_id("stabilityai/stable-diffusion-2-1-base")
    assert not generators.looks_local("stabilityai/stable-diffusion-2-1-base")
    assert generators.looks_local("./sd") and generators.looks_local("/abs/sd")
    assert generators.looks_local("~/sd") and generators.looks_local("a/b/c")
