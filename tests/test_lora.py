"""Few-shot LoRA (as DataDream): trained by GenBench, saved in diffusers' own format, loaded by
plain diffusers and by GenBench's sampling alike."""

import json
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genbench.core.errors import ConfigError, GenBenchError
from genbench.data.imageset import write_index
from genbench.generation.prompts import make_prompt_plan
from genbench.generation.sampling import SamplingParams, image_id, load_sampling_pipeline, sample_shard, to_uint8
from genbench.injection.lora import (
    ADAPTERS_INDEX,
    ClassAdapters,
    LoraParams,
    adapters_index,
    save_lora,
    train_lora,
    train_part,
)
from genbench.models.generators import load_text_to_image_pipeline
from genbench.models.tiny import build_tiny_sd3, build_tiny_sdxl
from genbench.plan.validate import load_run_config

torch.set_num_threads(1)

DATADREAM_TARGETS = ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_v_proj")


def lora_params(**changes) -> LoraParams:
    base = dict(rank=4, alpha=4.0, steps=4, lr=1e-2, batch_size=2, resolution=32, seed=0)
    base |= dict(target_modules=DATADREAM_TARGETS, text_encoder=False, device="cpu")
    return LoraParams(**base | changes)


@pytest.fixture(scope="module")
def sd_dir(tiny_sd_session):
    return tiny_sd_session


@pytest.fixture(scope="module")
def references():
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)) for _ in range(4)]
    return images, ["a photo of a cat", "a photo of a cat", "a photo of a dog", "a photo of a dog"]


def _train_and_save(model_dir, references, out_dir, **changes):
    pipe = load_text_to_image_pipeline(model_dir, device="cpu")
    history = []
    layers = train_lora(pipe, *references, lora_params(**changes), history=history)
    return save_lora(pipe, layers, out_dir), history


SAMPLING = dict(scheduler="ddim", steps=2, guidance=2.0, height=32, width=32, output_size=32, resize_filter="bicubic")
SAMPLING |= dict(dtype="float32", shard_size=10, safety_checker=False, device="cpu")


def _pixels(pipe, rows, scale=1.0):
    """Each row's image from ``pipe`` with the row's own seeded generator, as float arrays."""
    out = []
    for row in rows:
        generator = torch.Generator("cpu").manual_seed(int(row["seed"]))
        images = pipe(
            prompt=row["prompt"],
            num_inference_steps=2,
            guidance_scale=2.0,
            height=32,
            width=32,
            generator=generator,
            output_type="np",
        ).images
        out.append(np.asarray(images[0]))
    return np.stack(out)


def test_a_genbench_lora_loads_in_plain_diffusers_and_gives_genbenchs_images(sd_dir, references, tmp_path):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    weights, history = _train_and_save(sd_dir, references, tmp_path / "lora")
    assert weights.name == "pytorch_lora_weights.safetensors" and len(history) == 4 and all(np.isfinite(history))
    artifact = _artifact(tmp_path / "artifact", {0: weights}, "dataset", 2)
    rows = make_prompt_plan("simple_template", ["cat", "dog"], None, {"images_per_class": 2}, seed=5)
    params = SamplingParams(**SAMPLING, lora_scale=1.0)
    ours = load_sampling_pipeline(sd_dir, params)
    adapters = ClassAdapters(ours, artifact, params.lora_scale)
    sample_shard(ours, rows, tmp_path / "ours.tar", params, adapters=adapters)  # GenBench's own sampling
    with tarfile.open(tmp_path / "ours.tar") as tar:
        saved = [np.asarray(Image.open(tar.extractfile(f"{image_id(row)}.png"))) for row in rows]

    plain = StableDiffusionPipeline.from_pretrained(sd_dir)  # a user's own code
    plain.scheduler = DDIMScheduler.from_config(plain.scheduler.config)
    plain.load_lora_weights(str(tmp_path / "lora"))
    theirs = _pixels(plain, rows)
    assert [to_uint8(image)[0].tobytes() for image in theirs] == [image.tobytes() for image in saved]
    without = StableDiffusionPipeline.from_pretrained(sd_dir)
    without.scheduler = DDIMScheduler.from_config(without.scheduler.config)
    assert np.abs(_pixels(without, rows) - theirs).max() > 1e-3  # the adapter changes the images


def test_the_same_config_gives_byte_identical_lora_weights(sd_dir, references, tmp_path):
    first, _ = _train_and_save(sd_dir, references, tmp_path / "a", text_encoder=True)
    second, _ = _train_and_save(sd_dir, references, tmp_path / "b", text_encoder=True)
    assert first.read_bytes() == second.read_bytes()
    other, _ = _train_and_save(sd_dir, references, tmp_path / "c", text_encoder=True, seed=1)
    assert other.read_bytes() != first.read_bytes()
    from safetensors import safe_open

    with safe_open(str(first), framework="pt") as handle:
        keys = list(handle.keys())
    assert any(k.startswith("unet.") for k in keys) and any(k.startswith("text_encoder.") for k in keys)


def test_an_sdxl_lora_adapts_both_text_towers_and_loads_back(references, tmp_path):
    model_dir = str(build_tiny_sdxl(tmp_path / "sdxl"))
    pipe = load_text_to_image_pipeline(model_dir, device="cpu")
    layers = train_lora(pipe, *references, lora_params(steps=2, text_encoder=True))
    assert set(layers) == {"unet_lora_layers", "text_encoder_lora_layers", "text_encoder_2_lora_layers"}
    artifact = _artifact(tmp_path / "artifact", {0: save_lora(pipe, layers, tmp_path / "lora")}, "dataset", 2)
    params = SamplingParams(**SAMPLING, lora_scale=0.5)
    loaded = load_sampling_pipeline(model_dir, params)
    ClassAdapters(loaded, artifact, params.lora_scale).use(1)
    assert loaded.get_list_adapters() == {
        "unet": ["genbench"],
        "text_encoder": ["genbench"],
        "text_encoder_2": ["genbench"],
    }


def test_a_diverging_loss_stops_training_naming_the_step_and_classes_and_writes_nothing(sd_dir, tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "refs"
    folder.mkdir()
    records = []
    for i, label in enumerate((0, 0, 1, 1)):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
        records.append({"id": f"r{i}", "path": f"{i}.png", "label": label})
    write_index(folder / "references.jsonl", records)
    dataset = SimpleNamespace(classes=["cat", "dog"])
    out = tmp_path / "out" / "adapter-00000.safetensors"
    with pytest.raises(GenBenchError, match=r"LoRA training: loss (nan|inf) at step \d+ of 6, on images of \['a photo"):
        train_part(sd_dir, folder / "references.jsonl", dataset, lora_params(steps=6, lr=1e30), 0, out)
    assert not out.parent.exists()
    stats = train_part(sd_dir, folder / "references.jsonl", dataset, lora_params(steps=2), 0, out)
    assert stats["images"] == 4 and out.is_file() and [p.name for p in out.parent.iterdir()] == [out.name]
    one_class = train_part(sd_dir, folder / "references.jsonl", dataset, lora_params(steps=2, scope="class"), 1, out)
    assert one_class["images"] == 2  # class 1's references only


def _artifact(folder, files: dict, scope: str, num_classes: int):
    """A lora artifact's layout (adapters/ and adapters.json) made of saved LoRA files."""
    import shutil

    index = adapters_index(scope, num_classes)
    (folder / "adapters").mkdir(parents=True)
    for part, file in files.items():
        shutil.copy(file, folder / index["files"][str(part)])
    (folder / ADAPTERS_INDEX).write_text(json.dumps(index))
    return folder


def test_class_scope_samples_each_class_with_its_own_adapter(sd_dir, references, tmp_path):
    """With one LoRA per class, a shard's rows of class c are sampled with adapter c alone:
    each class's images equal those of a pipeline holding only that class's LoRA."""
    files = {c: _train_and_save(sd_dir, references, tmp_path / f"lora{c}", seed=c)[0] for c in (0, 1)}
    artifact = _artifact(tmp_path / "artifact", files, "class", 2)
    rows = make_prompt_plan("simple_template", ["cat", "dog"], None, {"images_per_class": 2}, seed=5)
    params = SamplingParams(**SAMPLING, lora_scale=1.0)
    pipe = load_sampling_pipeline(sd_dir, params)
    sample_shard(pipe, rows, tmp_path / "ours.tar", params, adapters=ClassAdapters(pipe, artifact, 1.0))
    with tarfile.open(tmp_path / "ours.tar") as tar:
        saved = {row["index"]: np.asarray(Image.open(tar.extractfile(f"{image_id(row)}.png"))) for row in rows}
    matches = {}
    for c in (0, 1):
        alone = load_sampling_pipeline(sd_dir, params)
        alone.load_lora_weights(str(files[c].parent))
        for row, image in zip(rows, _pixels(alone, rows)):
            matches[(row["class_id"], c)] = matches.get((row["class_id"], c), True) and np.array_equal(
                saved[row["index"]], to_uint8(image)[0]
            )
    assert matches == {(0, 0): True, (1, 1): True, (0, 1): False, (1, 0): False}


def test_with_adapters_no_batch_spans_two_classes():
    from genbench.generation.sampling import _batches

    rows = [{"class_id": c} for c in (0, 0, 0, 1, 1, 2)]
    assert [[r["class_id"] for r in b] for b in _batches(rows, 2, by_class=True)] == [[0, 0], [0], [1, 1], [2]]
    assert [len(b) for b in _batches(rows, 4, by_class=False)] == [4, 2]


def test_lora_on_an_untested_pipeline_family_is_refused_at_parse_time_naming_both(tmp_path):
    other = tmp_path / "flux"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    config = {
        "generators": {"sd": {"model": "tiny"}, "flux": {"model": str(other), "scheduler": None}},
        "strategies": ["simple_template", "lora_original"],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(
        ConfigError, match=r"generators.flux': prompt strategy 'lora_original' cannot run on generator 'flux'"
    ):
        load_run_config([str(path)])


def test_an_sd3_lora_trains_by_flow_matching_and_loads_in_plain_diffusers(references, tmp_path):
    """SD3: adapters on the MMDiT transformer's attention and on both CLIP towers, trained on
    the flow-matching loss; saved with StableDiffusion3Pipeline.save_lora_weights, they load in
    a plain SD3 pipeline, which then gives GenBench's images for the same seeds."""
    from diffusers import StableDiffusion3Pipeline
    from safetensors import safe_open

    model_dir = str(build_tiny_sd3(tmp_path / "sd3"))
    pipe = load_text_to_image_pipeline(model_dir, device="cpu")
    history = []
    layers = train_lora(pipe, *references, lora_params(steps=3, text_encoder=True), history=history)
    assert set(layers) == {"transformer_lora_layers", "text_encoder_lora_layers", "text_encoder_2_lora_layers"}
    assert len(history) == 3 and all(np.isfinite(history))
    weights = save_lora(pipe, layers, tmp_path / "lora")
    with safe_open(str(weights), framework="pt") as handle:
        trained = {k: handle.get_tensor(k) for k in handle.keys() if "lora_B" in k}
    for tower in ("transformer.", "text_encoder.", "text_encoder_2."):  # B starts at 0: each tower learned
        assert any(k.startswith(tower) and v.abs().max() > 0 for k, v in trained.items()), tower

    artifact = _artifact(tmp_path / "artifact", {0: weights}, "dataset", 2)
    rows = make_prompt_plan("simple_template", ["cat", "dog"], None, {"images_per_class": 1}, seed=5)
    params = SamplingParams(**SAMPLING | {"scheduler": None}, lora_scale=1.0)
    ours = load_sampling_pipeline(model_dir, params)
    sample_shard(ours, rows, tmp_path / "ours.tar", params, adapters=ClassAdapters(ours, artifact, 1.0))
    with tarfile.open(tmp_path / "ours.tar") as tar:
        saved = [np.asarray(Image.open(tar.extractfile(f"{image_id(row)}.png"))) for row in rows]
    plain = StableDiffusion3Pipeline.from_pretrained(model_dir)
    plain.load_lora_weights(str(tmp_path / "lora"))
    theirs = _pixels(plain, rows)
    assert [to_uint8(image)[0].tobytes() for image in theirs] == [image.tobytes() for image in saved]
    np.testing.assert_allclose(_pixels(pipe, rows), theirs, atol=1e-5)  # the file holds what was trained
    without = StableDiffusion3Pipeline.from_pretrained(model_dir)
    assert np.abs(_pixels(without, rows) - theirs).max() > 1e-3  # the adapter changes the images
