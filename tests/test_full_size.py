"""The paper's models at full size, through the real loading path and the whole workflow.

The models (genbench.models.full_size) have the published architectures and random weights, and
sit where users have them: Stable Diffusion 2.1 base as an fp16-variant diffusers repository in
a Hugging Face hub cache, resolved by hub id with HF_HUB_OFFLINE=1; open_clip ViT-B-32 and
ViT-B-16 ``openai`` (QuickGELU) as the hub files open_clip fetches; clean-fid's Inception as its
TorchScript file. They are built once (about 2.6 GB) into GENBENCH_FULL_SIZE_MODELS, by default
~/.cache/genbench/full-size-v1, outside the checkout, and reused by later runs.

The workflow runs on them for 1 dataset x 2 classes x 3 images per set (PRDC's 5 nearest
neighbours need 6 images a set) at 64 px (the smallest size the UNet and the VAE allow:
8 x 8 latents), with 2 DPM-Solver++ steps and 2 textual-inversion steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import REPO, planned_jobs, run_snakemake, write_digits_folder

from genbench.core.artifacts import find_artifacts, verify_tree
from genbench.models import full_size

pytestmark = pytest.mark.workflow

SD = full_size.SD21_BASE_REPO


@pytest.fixture(scope="session")
def full_size_models():
    """The full-size models in their user layouts (built on first use, then reused)."""
    root = Path(os.environ.get("GENBENCH_FULL_SIZE_MODELS", "~/.cache/genbench/full-size-v1")).expanduser()
    return full_size.build_reference_models(root)


@pytest.fixture
def offline_hub(full_size_models, monkeypatch):
    """HF_HUB_OFFLINE=1 with the hub cache of the full-size models (for this process and the
    snakemake it starts)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(full_size_models["hub"]))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(full_size_models["hub"]))
    return full_size_models


def test_sd21_base_loads_by_hub_id_offline_from_fp16_files(offline_hub):
    from diffusers import DPMSolverMultistepScheduler

    from genbench.models.generators import load_text_to_image_pipeline

    snapshot = next((offline_hub["hub"] / "models--stabilityai--stable-diffusion-2-1-base" / "snapshots").iterdir())
    assert (snapshot / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert not (snapshot / "unet" / "diffusion_pytorch_model.safetensors").exists()
    pipe = load_text_to_image_pipeline(SD, scheduler="dpm++")
    assert sum(p.numel() for p in pipe.unet.parameters()) == 865_910_724
    assert pipe.unet.dtype.is_floating_point and str(pipe.unet.dtype) == "torch.float32"  # auto: fp32 on CPU
    assert pipe.text_encoder.config.hidden_size == 1024 and pipe.text_encoder.config.num_hidden_layers == 23
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    assert pipe.scheduler.config.prediction_type == "epsilon"  # taken from the pipeline's own config
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"
    assert getattr(pipe, "safety_checker", None) is None


def test_open_clip_openai_tags_resolve_offline_with_quick_gelu(offline_hub):
    import open_clip

    from genbench.evaluation.encoders import load_encoder

    for name, width in (("ViT-B-32", 768), ("ViT-B-16", 768)):
        encoder = load_encoder({"type": "open_clip", "model": name, "pretrained": "openai"})
        assert encoder.name == f"open_clip:{name}:openai"
        assert encoder.preprocess_mode == "clip-bicubic-224-centercrop"
        assert encoder.model.visual.transformer.width == width
        act = encoder.model.visual.transformer.resblocks[0].mlp.gelu
        assert isinstance(act, open_clip.model.QuickGELU), type(act)
        expected = full_size.open_clip_model(name, seed=10 + list(full_size.OPEN_CLIP_REPOS).index(name))
        first = next(iter(expected.state_dict()))
        assert encoder.model.state_dict()[first].equal(
            expected.state_dict()[first].to(encoder.model.state_dict()[first])
        )


def test_clean_fid_inception_file_loads_through_clean_fid(full_size_models):
    import torch

    from genbench.evaluation.encoders import load_encoder

    encoder = load_encoder({"type": "inception", "weights": str(full_size_models["inception"])})
    batch = torch.rand(2, 3, 299, 299) * 255
    features = encoder.encode_images(batch)
    assert features.shape == (2, 2048)
    scripted = torch.jit.load(str(full_size_models["inception"] / full_size.INCEPTION_FILE))
    assert torch.allclose(scripted(batch, return_features=True), features, atol=1e-5)


def _full_size_config(workdir: Path, models: dict) -> Path:
    classes = write_digits_folder(workdir / "two_digits", per_class=20, num_classes=2)
    config = {
        "results_dir": "results",
        "datasets": ["two-digits"],
        "user_datasets": {
            "two-digits": {
                "classes": classes,
                "templates": ["a photo of the number {}."],
                "source": {"type": "folder", "path": str(workdir / "two_digits")},
            }
        },
        "models": {
            "generator": {"model": SD},
            "encoder": {"type": "open_clip", "model": "ViT-B-32", "pretrained": "openai"},
            "text2text": {"model": "tiny"},
        },
        # the paper's protocol; its packs are ranked by the feature encoder here (the paper uses a
        # ViT-B-16, which would cost a second full-size CLIP's feature jobs)
        "protocol": "paper",
        "pack": {"selection_encoder": {"type": "open_clip", "model": "ViT-B-32", "pretrained": "openai"}},
        "retrieval": {"pool": "train_split", "dedup_threshold": None},  # random weights: exact copies only
        "generation": {
            "steps": 2,
            "scheduler": "dpm++",
            "height": 64,
            "width": 64,
            "output_size": 64,
            "images_per_class": 3,
            "batch_size": 2,
            "shard_size": 6,
        },
        "strategies": ["simple_template", "ti_original"],
        "sources": ["generated", "original", "retrieval"],
        "fewshot": {"shots": [3], "seeds": [0]},
        "textual_inversion": {"steps": 2, "resolution": 64, "batch_size": 1, "ref_shot": 2},
        "metrics": {
            "kid": {"num_subsets": 2, "subset_size": 3},
            "extra_encoders": [{"type": "inception", "weights": str(models["inception"])}],
        },
        "probe": {"lrs": [0.1], "epochs_search": 2, "epochs_final": 2},
    }
    path = workdir / "full_size.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_workflow_runs_on_full_size_models(offline_hub, tmp_path):
    config = _full_size_config(tmp_path, offline_hub)
    planned = planned_jobs(tmp_path, config)
    for stage in ("sample_shard", "textual_inversion_class", "features", "elevater", "distribution_metrics"):
        assert planned[stage] >= 1, planned
    proc = run_snakemake(tmp_path, config, timeout=1800)
    total = sum(planned.values())
    assert f"{total} of {total} steps (100%) done" in proc.stdout + proc.stderr

    results = tmp_path / "results"
    checked, problems = verify_tree(results)
    assert problems == [] and checked > 0
    made = {artifact.relative_to(results).parts[0] for artifact in find_artifacts(results)}
    assert set(planned) - {"all", "summary", "sample_shard", "textual_inversion_class"} <= made, made
    verify = subprocess.run(
        [sys.executable, "-m", "genbench.workflow.cli", "verify", str(results)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

    table = pd.read_csv(results / "summary.csv")
    assert set(zip(table.source, table.strategy)) == {
        ("original", "-"),
        ("retrieval", "-"),
        ("generated", "simple_template"),
        ("generated", "ti_original"),
    }
    by_inception = table.encoder.astype(str).str.contains("inception")
    clip_rows, inception_rows = table[~by_inception], table[by_inception]
    assert len(clip_rows) == 4 and len(inception_rows) == 4, table[["source", "strategy", "encoder"]]
    for column in ("linear_probe", "zero_shot", "cler", "fd", "clip_score_100", "pad"):
        assert clip_rows[column].notna().all(), (column, clip_rows[column])
    assert inception_rows["fd"].notna().all(), inception_rows  # FD on clean-fid's Inception features
    assert planned_jobs(tmp_path, config) == {}
