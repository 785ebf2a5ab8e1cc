"""Bounds that hold only when the pipeline is right: the workflow trains its CLIP on the printed
digit corpus, then evaluates on the real handwritten digits (whose test split no training sees).

One run of the workflow (module-scoped: the encoder is trained once, about 2.5 minutes on two
cores), then:
- zero-shot of the trained encoder is at least twice chance (10 classes);
- a linear probe on the 5-shot originals beats zero-shot;
- retrieved corpus images are recognised as their class at twice chance or more;
- permuting the text classifier's rows drops zero-shot to chance or below: labels, prompts and
  class order are wired the right way round.
"""

import json

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import REPO, quick_config, run_snakemake

from genbench.evaluation.features import load_features
from genbench.evaluation.metrics import accuracy, zero_shot_scores

pytestmark = pytest.mark.workflow
CHANCE = 10.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("science")
    config = quick_config(
        workdir,
        models={"encoder": {"type": "open_clip", "model": "trained"}},
        retrieval={"pool": "corpus"},
        strategies=["simple_template"],
        sources=["original", "retrieval"],
        fewshot={"shots": [5], "seeds": [0]},
    )
    run_snakemake(workdir, config, timeout=1500)
    return workdir


def _summary(workdir) -> pd.DataFrame:
    return pd.read_csv(workdir / "results" / "summary.csv")


def _row(summary: pd.DataFrame, source: str) -> pd.Series:
    return summary[summary.source == source].iloc[0]


def test_trained_encoder_zero_shot_is_well_above_chance(trained):
    original = _row(_summary(trained), "original")
    assert original.zero_shot >= 2 * CHANCE


def test_the_original_probe_beats_zero_shot(trained):
    original = _row(_summary(trained), "original")
    assert original.linear_probe > original.zero_shot


def test_retrieved_images_are_recognised_as_their_class(trained):
    retrieval = _row(_summary(trained), "retrieval")
    assert retrieval.gen_recognised >= 2 * CHANCE


def _only(folder, pattern):
    (found,) = list(folder.glob(pattern))
    return found


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


def test_training_stages_ran_and_report_their_loss(trained):
    results = trained / "results"
    manifest = json.loads(_only(results / "train_encoder" / "encoder", "*/MANIFEST.json").read_text())
    summary = manifest["summary"]
    assert summary["steps"] > 0 and summary["loss_last"] < summary["loss_first"]
    assert len(summary["loss_curve"]) == 50
    assert (REPO / "config.yaml").is_file()
