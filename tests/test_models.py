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


def _fp16_variant_copy(tiny_sd_dir, out):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_dir), torch_dtype=torch.float16)
    pipe.save_pretrained(str(out), variant="fp16")
    return out


def test_fp16_variant_folder_loads_without_naming_the_variant(tiny_sd_dir, tmp_path):
    fp16 = _fp16_variant_copy(tiny_sd_dir, tmp_path / "fp16")
    assert (fp16 / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert not (fp16 / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert generators.weights_variant(fp16) == "fp16"
    assert generators.weights_variant(tiny_sd_dir) is None
    pipe = load_text_to_image_pipeline(str(fp16))
    assert pipe.unet.dtype == torch.float32  # auto on CPU: the fp16 weights, upcast
    reference = load_text_to_image_pipeline(str(tiny_sd_dir))
    for name, value in reference.unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], value.half().float()), name


def test_mixed_weight_variants_are_an_error(tiny_sd_dir, tmp_path):
    import shutil

    fp16 = _fp16_variant_copy(tiny_sd_dir, tmp_path / "fp16")
    weights = fp16 / "vae" / "diffusion_pytorch_model.fp16.safetensors"
    shutil.move(weights, weights.with_name("diffusion_pytorch_model.bf16.safetensors"))
    with pytest.raises(GenBenchError, match=r"different weight variants \['bf16', 'fp16'\]"):
        generators.weights_variant(fp16)


def test_hub_id_resolves_offline_from_a_cache_snapshot(tiny_sd_dir, tmp_path, monkeypatch):
    from genbench.core.fingerprint import hub_revision
    from genbench.models.full_size import write_hub_snapshot

    hub = tmp_path / "hub"
    snapshot = write_hub_snapshot(_fp16_variant_copy(tiny_sd_dir, tmp_path / "fp16"), hub, "someone/tiny-sd")
    assert (snapshot / "unet" / "config.json").is_symlink()
    for name, value in [("HF_HUB_OFFLINE", "1"), ("HF_HUB_CACHE", str(hub))]:
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    assert hub_revision("someone/tiny-sd") == snapshot.name
    pipe = load_text_to_image_pipeline("someone/tiny-sd", scheduler="dpm++")
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"  # from the pipeline's own config


def test_v_prediction_survives_a_scheduler_swap(tiny_sd_dir, tmp_path):
    import shutil

    folder = tmp_path / "v"
    shutil.copytree(tiny_sd_dir, folder)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "prediction_type": "v_prediction"}))
    for name in ("dpm++", "euler", "ddim"):
        pipe = load_text_to_image_pipeline(str(folder), scheduler=name)
        assert pipe.scheduler.config.prediction_type == "v_prediction", name


def test_safety_checker_is_off_unless_asked(tiny_sd_dir, tmp_path):
    from diffusers import StableDiffusionPipeline
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config=tower, vision_config={**tower, "image_size": 32, "patch_size": 8}, projection_dim=32
    )
    torch.manual_seed(0)
    parts = StableDiffusionPipeline.from_pretrained(str(tiny_sd_dir)).components
    parts.update(
        safety_checker=StableDiffusionSafetyChecker(config),
        feature_extractor=CLIPImageProcessor(crop_size=32, size={"shortest_edge": 32}),
        requires_safety_checker=True,
    )
    StableDiffusionPipeline(**parts).save_pretrained(str(tmp_path / "sd"))
    assert json.loads((tmp_path / "sd" / "model_index.json").read_text())["safety_checker"][1] == (
        "StableDiffusionSafetyChecker"
    )
    assert load_text_to_image_pipeline(str(tmp_path / "sd")).safety_checker is None
    assert load_text_to_image_pipeline(str(tmp_path / "sd"), safety_checker=True).safety_checker is not None
