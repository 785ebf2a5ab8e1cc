"""Bounds that hold only when the pipeline is right. The workflow trains its CLIP, its VAE and
its generator's UNet on the printed-digit corpus (config.yaml's training settings, about 4.5
minutes on two cores, once per module), generates with the prompt strategy simple_template,
then evaluates on the real handwritten digits, whose test split no training sees:

- zero-shot of the trained CLIP is at least twice chance (10 classes);
- a linear probe on the 5-shot originals beats zero-shot;
- at least half of the generated images are recognised as the digit their prompt names, and
  retrieved corpus images at twice chance or more;
- permuting the text classifier's rows drops zero-shot to chance or below: labels, prompts and
  class order are wired the right way round;
- every training stage's loss falls;
- (locally, the trained models are kept in ``workflow_helpers.model_cache()`` and restored
  into the next run; never under CI, which trains cold);
- a second run samples again from the same trained models: the images, and every table
  made of them, are byte-identical. (Training twice gives byte-identical weights: the
  training tests run each training function twice, on smaller settings, as retraining the
  UNet here would cost another three minutes of the suite.)
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_helpers import (
    REPO,
    job_stats,
    model_cache,
    quick_config,
    restore_trained_models,
    run_snakemake,
    store_trained_models,
)

from genbench.evaluation.features import load_features
from genbench.evaluation.metrics import accuracy, zero_shot_scores

pytestmark = pytest.mark.workflow
CHANCE = 10.0
TRAINED = {"model": "trained"}
EMBEDDED_PROBE = yaml.safe_load((REPO / "config.yaml").read_text())["probe"]
# what the second run computes again from the first run's trained models: the images, and
# what is made of them
RERUN_STAGES = ("sample_images", "features", "pack_generated", "zeroshot_metric", "aggregate")


def science_config(workdir):
    return quick_config(
        workdir,
        models={"encoder": {"type": "open_clip", **TRAINED}, "generator": TRAINED},
        retrieval={"pool": "corpus"},
        strategies=["simple_template"],
        sources=["original", "generated", "retrieval"],
        fewshot={"shots": [5], "seeds": [0]},
        generation={"images_per_class": 8, "shard_size": 40, "steps": 20, "height": 16, "width": 16},
        probe=EMBEDDED_PROBE,  # the quick search (one lr, 3 epochs) underfits 50 images
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The run, and a second one that starts from the first one's trained models."""
    first = tmp_path_factory.mktemp("science")
    config = science_config(first)
    restored = restore_trained_models(first, config)  # a developer's cache; never under CI
    if restored:
        print(f"science: trained models restored from {model_cache()}: {restored}")
    run_snakemake(first, config, timeout=1500)
    store_trained_models(first, config)
    second = tmp_path_factory.mktemp("science-again")
    shutil.copytree(first / "results", second / "results", ignore=shutil.ignore_patterns(".genbench"))
    for stage in RERUN_STAGES:
        shutil.rmtree(second / "results" / stage)
    again = run_snakemake(second, science_config(second), timeout=1500)
    return first, second, job_stats(again.stdout + again.stderr)


@pytest.fixture(scope="module")
def trained(runs):
    return runs[0]


def _summary(workdir) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / "summary.csv")


def _row(summary: pd.DataFrame, source: str) -> pd.Series:
    return summary[summary.source == source].iloc[0]


def _only(folder, pattern):
    (found,) = list(folder.glob(pattern))
    return found


def test_trained_encoder_zero_shot_is_well_above_chance(trained):
    original = _row(_summary(trained), "original")
    assert original.zero_shot >= 2 * CHANCE


def test_the_original_probe_beats_zero_shot(trained):
    original = _row(_summary(trained), "original")
    assert original.linear_probe > original.zero_shot


def test_generated_images_show_the_digit_their_prompt_names(trained):
    generated = _row(_summary(trained), "generated")
    assert generated.strategy == "simple_template" and generated.gen_recognised >= 50


def test_retrieved_images_are_recognised_as_their_class(trained):
    retrieval = _row(_summary(trained), "retrieval")
    assert retrieval.gen_recognised >= 2 * CHANCE


def test_permuting_the_text_classifier_drops_zero_shot_to_chance(trained):
    results = trained / "results"
    classifier_dir = _only(results / "text_classifier" / "digits", "templates-*/MANIFEST.json").parent
    text = np.load(classifier_dir / "text_classifier.npy")
    test_dir = next(
        m.parent
        for m in (results / "features" / "digits").glob("*/MANIFEST.json")
        if json.loads(m.read_text())["recipe"]["params"].get("split") == "test"
    )
    test = load_features(test_dir)
    right = accuracy(test.labels, zero_shot_scores(test.feats, text))
    shifted = accuracy(test.labels, zero_shot_scores(test.feats, np.roll(text, 1, axis=0)))
    assert right >= 2 * CHANCE
    assert shifted <= CHANCE + 3 < right


@pytest.mark.parametrize("stage", ["train_encoder", "train_vae", "train_generator"])
def test_every_training_stage_lowers_its_loss(trained, stage):
    (manifest,) = (trained / "results" / stage).glob("*/*/MANIFEST.json")
    summary = json.loads(manifest.read_text())["summary"]
    assert summary["steps"] > 0 and summary["loss_last"] < summary["loss_first"] / 2
    assert len(summary["loss_curve"]) == 50


def _digests(workdir, stage: str) -> dict[str, str]:
    """Every file of a stage's artifacts (folder names carry the keys) -> its sha256."""
    digests = {}
    for manifest in sorted((workdir / "results" / stage).glob("*/*/MANIFEST.json")):
        folder = manifest.parent.relative_to(workdir / "results")
        files = json.loads(manifest.read_text())["files"]
        digests.update({f"{folder}/{name}": entry["sha256"] for name, entry in files.items()})
    return digests


def test_the_second_run_reuses_the_trained_models(runs):
    jobs = runs[2]
    assert jobs["sample_images"] >= 1
    assert not {rule for rule in jobs if rule.startswith(("train_", "build_corpus"))}


def test_a_second_run_gives_byte_identical_images(runs):
    first, second, _ = runs
    ours = _digests(first, "sample_images")
    assert ours and _digests(second, "sample_images") == ours
    shards = sorted((second / "results" / "sample_images").rglob("shard-*.tar"))
    assert shards
    for shard in shards:
        assert shard.read_bytes() == (first / shard.relative_to(second)).read_bytes()
    assert _summary(second).equals(_summary(first))


def test_a_reduced_digits_study_runs_over_the_demo_results_without_training(trained, tmp_path):
    """configs/digits-study.yaml, reduced to one seed and two shot counts, on a copy of the
    trained run's results folder: no training job runs, the scaling figure and the break-even
    table are written, and gc given both configs removes nothing either references (gc given
    the first config alone would remove the study's artifacts)."""
    import subprocess
    import sys

    shutil.copytree(trained / "results", tmp_path / "results", ignore=shutil.ignore_patterns(".genbench"))
    first = science_config(tmp_path)
    study = yaml.safe_load((REPO / "configs" / "digits-study.yaml").read_text())
    reduced = {**yaml.safe_load(first.read_text()), **{k: v for k, v in study.items() if k != "strategy_params"}}
    reduced["fewshot"] = {**reduced["fewshot"], "shots": [2, 5], "seeds": [0]}
    reduced["pack"] = {"draw_from": 8}  # the first run's 8 images a class: its samples are reused
    reduced["generation"] = yaml.safe_load(first.read_text())["generation"]
    study_path = tmp_path / "study.yaml"
    study_path.write_text(yaml.safe_dump(reduced))

    proc = run_snakemake(tmp_path, study_path, timeout=1200)
    jobs = job_stats(proc.stdout + proc.stderr)
    assert not [rule for rule in jobs if rule.startswith(("train_", "build_corpus", "sample"))], jobs
    report = tmp_path / "results" / "report"
    assert (report / "scaling.png").stat().st_size > 5000
    break_even = pd.read_csv(report / "break_even.csv")
    assert set(break_even.reference) == {"original", "retrieval"}
    assert set(break_even.break_even.astype(str)) <= {"2", "5", "never"}
    curves = pd.read_csv(report / "scaling.csv")
    assert set(curves.shots) == {2, 5} and set(curves.source) == {"original", "generated", "retrieval"}

    def gc(*configs):
        args = [a for c in configs for a in ("--configfile", str(c))]
        cmd = [sys.executable, "-m", "genbench.workflow.cli", "gc", "--dry-run", *args]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=True).stdout
        return int(out.strip().splitlines()[-1].split()[0])

    assert gc(first, study_path) == 0
    assert gc(first) > 0  # the study's packs and evaluations, which the first config does not plan
