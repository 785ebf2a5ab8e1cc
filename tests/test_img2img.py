"""Real-guided generation (img2img, as DA-Fusion and Diff-Mix): every image starts from a noised
reference image of its class, on the generator's own image-to-image pipeline."""

import json
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genbench.core.errors import ConfigError, GenBenchError
from genbench.data.imageset import load_image, write_index
from genbench.generation.prompts import PromptPlanParams, plan_prompts
from genbench.generation.sampling import (
    SamplingParams,
    _generate_batch,
    load_references,
    load_sampling_pipeline,
    sample_shard,
    write_image_index,
)
from genbench.injection.references import check_not_held_out, reference_images
from genbench.plan.build import build_plan
from genbench.plan.validate import load_run_config

torch.set_num_threads(1)

STEPS = 4
FIXED = {"scheduler": "ddim", "steps": STEPS, "guidance": 2.0, "height": 32, "width": 32, "output_size": 32}
FIXED |= {"resize_filter": "bicubic", "dtype": "float32", "shard_size": 10, "safety_checker": False, "device": "cpu"}


def settings(strength) -> SamplingParams:
    return SamplingParams(**FIXED, strength=strength)


@pytest.fixture(scope="module")
def model_dir(tiny_sd_session):
    return tiny_sd_session


@pytest.fixture(scope="module")
def references():
    rng = np.random.default_rng(0)
    return {key: Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)) for key in ("a", "b")}


def _vae_round_trip(pipe, image, seed: int) -> np.ndarray:
    """The reference as the pipeline's VAE returns it: encoded, its latent drawn from the VAE's
    posterior with the image's own generator (as img2img draws it), decoded. A tiny random VAE
    does not reconstruct, so this, not the reference, is what img2img can come back to."""
    with torch.no_grad():
        latent = pipe.vae.encode(pipe.image_processor.preprocess(image)).latent_dist
        decoded = pipe.vae.decode(latent.sample(torch.Generator().manual_seed(seed))).sample
    return pipe.image_processor.postprocess(decoded, output_type="np")[0]


def _outputs(model_dir, references, strength) -> dict:
    """{reference key: image} sampled from each reference with the same prompt and seed."""
    params = settings(strength)
    pipe = load_sampling_pipeline(model_dir, params)
    row = {"prompt": "a photo of a cat", "negative_prompt": None, "seed": 1}
    return {k: _generate_batch(pipe, [{**row, "reference": k}], params, references)[0] for k in references}, pipe


def test_one_denoising_step_returns_the_references_vae_round_trip(model_dir, references):
    outputs, pipe = _outputs(model_dir, references, strength=1 / STEPS)  # int(4 x 0.25) = 1 step, at t ~ 0
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    for key, image in references.items():
        round_trip = _vae_round_trip(pipe, image, seed=1)
        far = np.abs(_outputs(model_dir, references, strength=1.0)[0][key] - round_trip).mean()
        near = np.abs(outputs[key] - round_trip).mean()
        assert near < 0.06 and near < far / 3, (key, near, far)


def test_the_dependence_on_the_reference_falls_as_the_strength_rises(model_dir, references):
    """Dependence: how far apart two references' images are (same prompt and noise), over how
    far apart their VAE round trips are. About 1 at one step; at strength 1 the scheduler still
    starts from sqrt(alpha_bar) of the reference's latent, so it is bounded, not zero."""
    dependence = []
    for strength in (1 / STEPS, 0.5, 0.75, 1.0):
        outputs, pipe = _outputs(model_dir, references, strength)
        trips = [_vae_round_trip(pipe, references[k], seed=1) for k in ("a", "b")]
        spread = np.abs(outputs["a"] - outputs["b"]).mean() / np.abs(trips[0] - trips[1]).mean()
        dependence.append(float(spread))
    assert dependence[0] > 0.9, dependence
    assert all(later < earlier for earlier, later in zip(dependence, dependence[1:])), dependence
    assert dependence[-1] < 0.1, dependence


def _plan_rows(references_by_class, classes=("cat", "dog"), per_class=5):
    params = PromptPlanParams(
        strategy="img2img_original", strategy_params={}, images_per_class=per_class, seed=3, descriptions_file=None
    )
    return plan_prompts(params, list(classes), [], references=references_by_class)


def test_each_classs_images_cycle_evenly_over_its_references():
    rows = _plan_rows({0: ["c0", "c1"], 1: ["d0", "d1", "d2"]})
    assert [r["reference"] for r in rows if r["class_id"] == 0] == ["c0", "c1", "c0", "c1", "c0"]
    assert Counter(r["reference"] for r in rows if r["class_id"] == 1) == {"d0": 2, "d1": 2, "d2": 1}
    assert [r["prompt"] for r in rows[:1]] == ["cat"]  # the base strategy's prompts (simple_template)
    with pytest.raises(GenBenchError, match="class 'dog' has no reference image"):
        _plan_rows({0: ["c0"]})


def _image_folder(tmp_path, name, records):
    folder = tmp_path / name
    folder.mkdir()
    write_index(folder / "images.jsonl", records)
    return folder / "images.jsonl"


def test_a_shard_records_each_images_reference_and_is_byte_identical_on_rerun(model_dir, tmp_path):
    rng = np.random.default_rng(1)
    refs_dir = tmp_path / "refs"
    refs_dir.mkdir()
    records = []
    for i, label in enumerate((0, 0, 1)):
        Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(refs_dir / f"r{i}.png")
        records.append({"id": f"{label:04d}-r{i}", "path": f"r{i}.png", "label": label})
    write_index(refs_dir / "references.jsonl", records)
    rows = _plan_rows({0: ["0000-r0", "0000-r1"], 1: ["0001-r2"]}, per_class=3)
    params = settings(0.5)
    loaded = load_references(refs_dir / "references.jsonl", rows, params)
    assert {k: v.size for k, v in loaded.items()} == {r["id"]: (32, 32) for r in records}  # at the sampled size
    pipe = load_sampling_pipeline(model_dir, params)
    for name in ("a.tar", "b.tar"):
        sample_shard(pipe, rows, tmp_path / name, params, references=loaded)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        meta = json.load(tar.extractfile("0000-000002.json"))
    assert meta["reference"] == "0000-r0"  # image 2 of class 0 cycles back to the first reference
    write_image_index([tmp_path / "a.tar"], tmp_path / "images.jsonl")
    index = [json.loads(line) for line in (tmp_path / "images.jsonl").read_text().splitlines()]
    assert [r["reference"] for r in index] == [r["reference"] for r in rows]
    with pytest.raises(GenBenchError, match="no reference image '0001-missing'"):
        load_references(refs_dir / "references.jsonl", [{**rows[0], "reference": "0001-missing"}], params)


def test_a_test_split_image_planted_among_the_original_references_is_refused(tmp_path):
    """The leakage check: an original reference that is a val or test image stops the job,
    naming the image, its class and the split."""
    prepare = tmp_path / "prepare"
    prepare.mkdir()
    train = [{"id": f"train/{i}", "path": f"images.zip@train/{i}.png", "label": i % 2} for i in range(6)]
    test = [{"id": f"test/{i}", "path": f"images.zip@test/{i}.png", "label": i % 2} for i in range(4)]
    write_index(prepare / "train.jsonl", train)
    write_index(prepare / "test.jsonl", test)
    shots = tmp_path / "fewshot"
    shots.mkdir()
    rebased = [{**r, "path": "../prepare/" + r["path"]} for r in train[:4]]
    write_index(shots / "train.jsonl", rebased)
    refs = reference_images(shots / "train.jsonl", ["cat", "dog"], 2, source="original", seed=0)
    check_not_held_out(refs, prepare)  # train images only: no error
    planted = rebased[:3] + [{**test[1], "path": "../prepare/" + test[1]["path"]}]
    write_index(shots / "train.jsonl", planted)
    refs = reference_images(shots / "train.jsonl", ["cat", "dog"], 2, source="original", seed=0)
    with pytest.raises(GenBenchError, match=r"reference image 'test/1' of class 1 is an image of the test split"):
        check_not_held_out(refs, prepare)


REPO_TINY = {"encoder": {"type": "open_clip", "model": "tiny"}, "generator": {"model": "tiny"}}


def _load(tmp_path, **config):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "results"), "models": REPO_TINY, **config}))
    return load_run_config([str(path)])


def test_a_strength_sweep_plans_one_set_per_strength_from_one_prompt_plan(tmp_path, monkeypatch):
    from genbench.plan.build import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    config = _load(
        tmp_path,
        strategies=["ti_original", "img2img_original", "img2img_retrieval"],
        img2img={"strength": [0.5, 1.0], "ref_shot": 5, "seed": 0},
        textual_inversion={"ref_shot": 5, "seed": 0},
        retrieval={"pool": "train_split"},
        sources=["generated"],
    )
    plan = build_plan(config)
    samples = [n for n in plan.by_stage("sample_images") if n.folder.startswith("img2img")]
    assert sorted((n.folder.rsplit("-", 1)[0], n.params["strength"]) for n in samples) == [
        ("img2img_original-st0.5", 0.5),
        ("img2img_original-st1", 1.0),
        ("img2img_retrieval-st0.5", 0.5),
        ("img2img_retrieval-st1", 1.0),
    ]
    assert len({n.inputs["plan"].key for n in samples}) == 2  # the strengths share the plan (and its seeds)
    ti = next(n for n in plan.by_stage("sample_images") if n.folder.startswith("ti_original"))
    assert "strength" not in ti.params  # text-to-image sets keep their keys
    references = plan.by_stage("textual_inversion_prepare")
    assert len(references) == 2  # img2img_original and ti_original share their references
    original = next(n for n in references if n.params["source"] == "original")
    assert "prepare" in original.inputs  # for the leakage check
    labels = [n.params["labels"] for n in plan.by_stage("elevater")]
    assert {(lb["strategy"], lb.get("strength")) for lb in labels} == {
        (s, w) for s in ("img2img_original", "img2img_retrieval") for w in (0.5, 1.0)
    } | {("ti_original", None)}


def test_a_strength_that_denoises_no_step_is_refused_at_parse_time(tmp_path):
    with pytest.raises(ConfigError, match=r"'img2img.strength': strength 0.1 at generation.steps 4 denoises"):
        _load(tmp_path, strategies=["img2img_original"], generation={"steps": 4}, img2img={"strength": [0.1, 0.5]})
    _load(tmp_path, strategies=["simple_template"], generation={"steps": 4}, img2img={"strength": 0.1})  # unused
    with pytest.raises(ConfigError, match=r"'img2img.strength'"):
        _load(tmp_path, strategies=["img2img_original"], img2img={"strength": 1.5})


@pytest.mark.workflow
def test_img2img_and_lora_sets_are_sampled_through_the_workflow_on_each_family(tmp_path, monkeypatch):
    """Each tiny pipeline family (built in code, saved with ``save_pretrained``) samples an
    img2img set per strength through Snakemake, from the K-shot originals of the train split;
    then, in the same results, a lora_original set each (SD3's LoRA trained by flow matching)."""
    from workflow_helpers import job_stats, quick_config, run_snakemake

    config = quick_config(
        tmp_path,
        generators={
            "sd": {"model": "tiny"},
            "sdxl": {"model": "tiny", "pipeline": "sdxl"},
            "sd3": {"model": "tiny", "pipeline": "sd3", "scheduler": None},
        },
        strategies=["img2img_original"],
        img2img={"ref_shot": 2, "seed": 0, "strength": [0.5, 1.0]},
        generation={"images_per_class": 3, "steps": 2},
        sources=["generated"],
    )
    monkeypatch.chdir(tmp_path)
    plan = build_plan(load_run_config([str(config)]))
    samples = plan.by_stage("sample_images")
    assert len(samples) == 3 * 2
    run_snakemake(tmp_path, config, *[n.manifest for n in samples])
    train = {json.loads(line)["id"] for line in next((tmp_path / "results" / "prepare").glob("*/*/train.jsonl")).open()}
    pixels = {}
    for node in samples:
        index_path = (tmp_path / node.manifest).parent / "images.jsonl"
        index = [json.loads(line) for line in index_path.open()]
        assert len(index) == 10 * 3
        assert all(r["reference"].split("-", 1)[1] in train for r in index)  # "<class>-<train id>"
        assert len({r["reference"] for r in index if r["label"] == 0}) == 2  # cycling over ref_shot = 2
        pixels[node.folder] = np.asarray(load_image(index_path, index[0])).tobytes()
    assert len(set(pixels.values())) == 6  # every (family, strength) its own images

    config = quick_config(
        tmp_path,
        generators={
            "sd": {"model": "tiny"},
            "sdxl": {"model": "tiny", "pipeline": "sdxl"},
            "sd3": {"model": "tiny", "pipeline": "sd3", "scheduler": None},
        },
        strategies=["lora_original"],
        lora={"ref_shot": 2, "steps": 2, "batch_size": 2, "resolution": 32, "text_encoder": True},
        generation={"images_per_class": 1, "steps": 2},
        sources=["generated"],
    )
    plan = build_plan(load_run_config([str(config)]))
    samples = plan.by_stage("sample_images")
    assert len(samples) == 3 and len(plan.by_stage("lora")) == 3
    proc = run_snakemake(tmp_path, config, *[n.manifest for n in samples])
    ran = job_stats(proc.stdout + proc.stderr)
    assert ran["lora_part"] == 3 and ran["build_models"] == 0  # the generators built above, reused
    for node in plan.by_stage("lora"):
        folder = (tmp_path / node.manifest).parent
        index = json.loads((folder / "adapters.json").read_text())
        assert index["scope"] == "dataset" and set(index["files"].values()) == {"adapters/adapter-00000.safetensors"}
        assert (folder / "adapters" / "adapter-00000.safetensors").is_file()


def test_findings_compare_each_injection_set_and_strength_with_simple_template():
    import pandas as pd

    from genbench.report.findings import injection_lines

    table = pd.DataFrame(
        [
            {"source": "generated", "strategy": "simple_template", "strength": "-", "linear_probe": 44.9},
            {"source": "generated", "strategy": "img2img_original", "strength": 0.8, "linear_probe": 47.5},
            {"source": "generated", "strategy": "img2img_original", "strength": 0.5, "linear_probe": 52.25},
            {"source": "generated", "strategy": "ti_original", "strength": "-", "linear_probe": 30.0},
            {"source": "combined", "strategy": "ti_original", "strength": "-", "linear_probe": 60.0},
        ]
    )
    assert injection_lines(table, "linear_probe") == [
        "finding: linear_probe img2img_original (strength 0.5) 52.2 % vs simple_template 44.9 %",
        "finding: linear_probe img2img_original (strength 0.8) 47.5 % vs simple_template 44.9 %",
        "finding: linear_probe ti_original 30.0 % vs simple_template 44.9 %",
    ]
    assert injection_lines(table[table.strategy != "simple_template"], "linear_probe") == []
