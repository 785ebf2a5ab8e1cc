"""Known answers for every row of docs/PROTOCOL.md whose number changes with the protocol.

Each test builds a small hand-made feature set, computes the paper value with a transcription of
the original GenBench / ELEVATER code (``tests/reference/original_genbench.py``, written from
reading it, not imported), and checks that GenBench's paired column equals it and that the
honest variant differs. The paired columns are computed by the functions their jobs call.
"""

import math
import re

import numpy as np
import pytest
import torch
from reference import original_genbench as original

from genbench.core.errors import ConfigError
from genbench.core.protocol import PAPER_CLIP_PROMPT, PAPER_SELECTION_ENCODER, headline, pack_settings
from genbench.evaluation.evaluate import (
    PROBE_VARIANTS,
    CLERParams,
    DistributionParams,
    EvaluationInputs,
    PADParams,
    distribution_metrics,
    proxy_distance,
    zeroshot_metric,
)
from genbench.evaluation.external import concatenate_feature_sets, select_records
from genbench.evaluation.features import FeatureSet
from genbench.evaluation.linear_probe import _metric_or_zero, validation_split, validation_split_in_order
from genbench.evaluation.metrics import (
    cler_scores,
    clip_score_100_per_class,
    clip_score_paper_per_class,
    frechet_distance_from_features,
    frechet_distance_paper,
    knn_zero_shot_scores,
    proxy_a_distance,
    proxy_a_distance_paper,
)
from genbench.evaluation.metrics.classification import dataset_metric


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------ the paired columns, set by set
#
# Each test runs GenBench's evaluation stage (the function its job calls) on small arrays, and the
# original's arithmetic (tests/reference/original_genbench.py) on the very features the original
# would read for that set.


def _set(feats, labels, prefix):
    return FeatureSet(feats=feats, labels=labels, ids=[f"{prefix}{i}" for i in range(len(labels))])


@pytest.fixture(scope="module")
def digits_like():
    """A 3-class problem: a train split of 36 rows, its 2-shot pack, 60 generated images, a
    test split of 30 rows, and a text classifier (C x D), all in 6 dimensions."""
    rng = np.random.default_rng(7)
    means = rng.normal(size=(3, 6)) * 1.5
    train_y = np.repeat(np.arange(3), 12)
    rng.shuffle(train_y)
    train = means[train_y] + rng.normal(size=(36, 6))
    test_y = np.arange(30) % 3
    test = means[test_y] + rng.normal(size=(30, 6))
    generated_y = np.repeat(np.arange(3), 20)
    generated = means[generated_y] * 0.7 + rng.normal(size=(60, 6)) * 0.8 + 0.5
    text = _unit(means + rng.normal(size=(3, 6)))
    shot = np.concatenate([np.nonzero(train_y == c)[0][:2] for c in range(3)])
    return {
        "train": _set(train, train_y, "t"),
        "pack": _set(train[shot], train_y[shot], "t"),
        "generated": _set(generated, generated_y, "g"),
        "generated_pack": _set(generated[::10], generated_y[::10], "g"),
        "test": _set(test, test_y, "x"),
        "text": text,
    }


def _inputs(data, source, external, full_train=None, sources=None):
    return EvaluationInputs(
        dataset="toy",
        class_names=["a", "b", "c"],
        metric="accuracy",
        labels={"source": source, "strategy": "-", "shots": 2, "seed": 0},
        test=data["test"],
        external=external,
        text_classifier=data["text"],
        full_train=full_train,
        sources=sources,
    )


def _accuracy(labels, scores):
    return dataset_metric("accuracy", labels, scores)


def _original_train(data, mode):
    """The rows the original's zeroshot_metric reads for ``mode``: the train manifest carved
    into train and val parts (feature.py), then put back together (evaluation_utils.py)."""
    train = data["train"]
    carved_train, carved_val = original.carve_validation(train.labels)
    parts = {
        "train": (train.feats[carved_train], train.labels[carved_train]),
        "val": (train.feats[carved_val], train.labels[carved_val]),
        "pack": (data["generated_pack"].feats, data["generated_pack"].labels),
    }
    return original.zeroshot_train_set(mode, parts["train"], parts["val"], parts["pack"])


@pytest.mark.parametrize("mode", ["original", "combined"])
def test_cler_knn_zs_and_cler_full_train_read_the_whole_train_split(digits_like, mode):
    data = digits_like
    if mode == "original":
        inputs = _inputs(data, "original", data["pack"], full_train=data["train"])
    else:  # a combined set: pack 0 the K-shot originals, then the generated pack
        external = concatenate_feature_sets([data["pack"], data["generated_pack"]])
        full = concatenate_feature_sets([data["train"], data["generated_pack"]])
        inputs = _inputs(data, "combined", external, full_train=full)
    ours = zeroshot_metric(inputs, CLERParams(cler={"knn_k": 10}, labels=inputs.labels))
    train, train_y = _original_train(data, mode)
    theirs = original.zeroshot_scores(train, train_y, data["test"].feats, data["text"].T, top_k=10)
    y = data["test"].labels
    assert ours["cler_knn_zs"] == pytest.approx(
        _accuracy(y, theirs["image_topk_label_mean_Average_image_text_contrastive"])
    )
    assert ours["cler_full_train"] == pytest.approx(_accuracy(y, theirs["image_MeanTextImageCLSCenter_contrastive"]))
    assert ours["zero_shot"] == pytest.approx(_accuracy(y, theirs["image_text_contrastive"]))
    # the neighbours are the 36 (or 42) training rows, not the 6 (or 12) rows of the pack
    ext = inputs.external
    on_pack = knn_zero_shot_scores(
        data["test"].feats, data["text"], ext.feats, ext.labels, 3, k=min(10, len(ext.feats))
    )
    assert not np.allclose(on_pack, theirs["image_topk_label_mean_Average_image_text_contrastive"])


def test_cler_knn_zs_of_a_generated_set_reads_its_pack(digits_like):
    data = digits_like
    pack = data["generated_pack"]
    inputs = _inputs(data, "generated", pack, sources=data["generated"])
    ours = zeroshot_metric(inputs, CLERParams(cler={"knn_k": 5}, labels=inputs.labels))
    train, train_y = original.zeroshot_train_set("extended", None, None, (pack.feats, pack.labels))
    theirs = original.zeroshot_scores(train, train_y, data["test"].feats, data["text"].T, top_k=5)
    assert ours["cler_knn_zs"] == pytest.approx(
        _accuracy(data["test"].labels, theirs["image_topk_label_mean_Average_image_text_contrastive"])
    )
    assert "cler_full_train" not in ours


def test_cler_knn_zs_is_the_originals_average():
    rng = np.random.default_rng(3)
    text = _unit(rng.normal(size=(3, 5)))
    train = rng.normal(size=(30, 5))
    labels = np.arange(30) % 3
    test = rng.normal(size=(12, 5))
    ours = knn_zero_shot_scores(test, text, train, labels, 3, k=10)
    theirs = original.zeroshot_scores(train, labels, test, text.T, top_k=10)
    np.testing.assert_allclose(ours, theirs["image_topk_label_mean_Average_image_text_contrastive"], atol=1e-12)


def test_fd_paper_of_an_original_set_is_the_originals_fid_over_the_whole_train_split(digits_like):
    data = digits_like
    params = DistributionParams(distribution=["fd"], labels={"source": "original"})
    inputs = _inputs(data, "original", data["pack"], full_train=data["train"])
    ours = distribution_metrics(inputs, params)
    train, _ = _original_train(data, "original")
    assert ours["fd_paper"] == pytest.approx(original.fid(train, data["test"].feats), rel=1e-6)
    on_pack = frechet_distance_paper(data["pack"].feats, data["test"].feats)
    assert abs(ours["fd_paper"] - on_pack) > 0.1  # the pack's would differ


def test_fd_paper_of_a_generated_set_is_the_originals_fid_over_its_pack(digits_like):
    data = digits_like
    params = DistributionParams(distribution=["fd"], labels={"source": "generated"})
    pack = data["generated_pack"]
    ours = distribution_metrics(_inputs(data, "generated", pack, sources=data["generated"]), params)
    assert ours["fd_paper"] == pytest.approx(original.fid(pack.feats, data["test"].feats), rel=1e-6)
    assert abs(ours["fd"] - ours["fd_paper"]) > 0.1


def test_fd_paper_is_the_originals_and_differs_from_fd():
    rng = np.random.default_rng(0)
    external = rng.normal(size=(40, 6)) * 3 + 1
    real = rng.normal(size=(90, 6))
    assert frechet_distance_paper(external, real) == pytest.approx(original.fid(external, real), rel=1e-7)
    assert abs(frechet_distance_from_features(external, real) - frechet_distance_paper(external, real)) > 0.1


def test_pad_dann_draws_from_every_generated_image_and_standardises(digits_like):
    """The original's feature_distances: 200 images drawn from the whole generated folder (here
    seeded: the rows ``default_rng(seed).permutation`` puts first), the test split in order."""
    rng = np.random.default_rng(11)
    generated = _set(rng.normal(size=(260, 6)) + 1.5, np.arange(260) % 3, "g")
    data = {**digits_like, "test": _set(rng.normal(size=(90, 6)), np.arange(90) % 3, "x")}
    pack = _set(generated.feats[:9], generated.labels[:9], "g")
    params = PADParams(pad={"seed": 3, "dann_source_images": 200, "dann_max_images": 1000}, labels={})
    ours = proxy_distance(_inputs(data, "generated", pack, sources=generated), params)
    assert ours["pad_dann_stopped"] == 0  # every C converged: the original's answer exactly
    drawn = generated.feats[np.random.default_rng(3).permutation(260)[:200]]
    assert ours["pad_dann"] == pytest.approx(original.feature_distances_pad(drawn, data["test"].feats))
    assert ours["pad"] == pytest.approx(proxy_a_distance(pack.feats, data["test"].feats, seed=3)["pad"])
    seeded = proxy_a_distance_paper(generated.feats, data["test"].feats, seed=3)
    assert seeded == proxy_a_distance_paper(generated.feats, data["test"].feats, seed=3)  # the draw is seeded


def test_pad_dann_is_optimistic_on_unbalanced_sets():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(20, 8)) + 0.3
    target = rng.normal(size=(180, 8))
    paper = proxy_a_distance_paper(source, target, max_iter=20_000)  # overlapping sets: capped for time
    # 20 vs 180 in order: answering "target" always already has error 10/100 -> PAD 1.6
    assert paper["pad"] >= 1.6 - 1e-12
    assert abs(proxy_a_distance(source, target, seed=0)["pad"] - paper["pad"]) > 0.3


def test_pad_dann_caps_the_test_split_with_a_seeded_subset():
    rng = np.random.default_rng(2)
    source, target = rng.normal(size=(30, 4)), rng.normal(size=(40, 4)) + 1
    capped = proxy_a_distance_paper(source, target, max_images=20, seed=5)
    assert capped == proxy_a_distance_paper(source, target, max_images=20, seed=5)
    assert proxy_a_distance_paper(source, target, max_images=100) == proxy_a_distance_paper(source, target)


# ------------------------------------------------------------------ CLIP score (packing_utils.py)


def test_clip_score_paper_is_the_pack_mean_of_the_originals_per_image_score():
    text = np.eye(2, 3)  # class 0 -> e0, class 1 -> e1
    images = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]])
    labels = np.array([0, 0, 1])
    per_image = np.concatenate([original.clip_score(images[:2], text[0]), original.clip_score(images[2:], text[1])])
    # by hand: cosines 1, -1/sqrt(2), -1/sqrt(2); logits_per_image = 100 cos, no clamp
    np.testing.assert_allclose(per_image, 100 * np.array([1, -1 / math.sqrt(2), -1 / math.sqrt(2)]))
    assert clip_score_paper_per_class(images, labels, text) == pytest.approx(per_image.mean())
    assert clip_score_100_per_class(images, labels, text) == pytest.approx(100 / 3)  # clamped at 0


# ------------------------------------------------------------------ CLER (evaluation_utils.py)


def test_cler_full_train_uses_every_train_image_and_differs_from_the_k_shot_centroid():
    text = _unit(np.array([[1.0, 0.2], [0.2, 1.0]]))
    full = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.9], [-0.2, 1.0], [1.0, 0.8], [0.1, 1.0]])
    full_labels = np.array([0, 1, 0, 1, 0, 1])
    shot = [0, 1]  # the 1-shot pack: the first image of each class
    test = np.array([[1.0, 0.45], [0.45, 1.0], [1.0, 1.05]])
    y = np.array([0, 1, 0])
    paper = cler_scores(test, text, full, full_labels)
    theirs = original.zeroshot_scores(full, full_labels, test, text.T, top_k=2)
    np.testing.assert_allclose(paper, theirs["image_MeanTextImageCLSCenter_contrastive"], rtol=1e-12)
    honest = cler_scores(test, text, full[shot], full_labels[shot])
    assert not np.allclose(paper, honest)
    assert dataset_metric("accuracy", y, paper) != dataset_metric("accuracy", y, honest)


# ------------------------------------------------------------------ probe (ELEVATER feature.py)


def test_elevater_validation_split_is_dataset_order_and_differs_from_the_shuffled_one():
    labels = np.array([0] * 5 + [1] * 5 + [0] * 5)  # a combined set: real images first, then others
    _, val = validation_split_in_order(labels)
    assert val.tolist() == original.carve_validation(labels)[1] == [0, 1, 5]  # ceil(0.2 * 10), ceil(0.2 * 5)
    assert validation_split(labels, seed=0)[1].tolist() != val.tolist()


def test_elevater_multilabel_validation_split_is_its_greedy_pass():
    rng = np.random.default_rng(4)
    labels = (rng.random((40, 5)) < 0.35).astype(int)
    labels[np.arange(5), np.arange(5)] = 1
    train, val = validation_split_in_order(labels)
    assert (train.tolist(), val.tolist()) == original.carve_validation(labels.copy())
    assert sorted(train.tolist() + val.tolist()) == list(range(40))


def test_elevater_scores_multilabel_heads_with_a_softmax():
    labels = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    logits = torch.tensor([[4.0, 0.0], [1.0, -1.0], [0.5, 0.6], [-3.0, -2.0]])
    softmax = _metric_or_zero("11point_mAP", labels, logits, multilabel=True, softmax_scores=True)
    sigmoid = _metric_or_zero("11point_mAP", labels, logits, multilabel=True)
    expected = dataset_metric("11point_mAP", labels, torch.softmax(logits, dim=1).numpy())
    assert softmax == pytest.approx(expected)
    assert sigmoid == pytest.approx(dataset_metric("11point_mAP", labels, torch.sigmoid(logits).numpy()))
    assert softmax != pytest.approx(sigmoid)


# ------------------------------------------------------------------ pack selection (packing_utils.py)


def test_retrieved_images_pack_by_similarity_in_paper_mode():
    records = [{"id": f"r{i}", "label": i % 2, "similarity": s} for i, s in enumerate([0.1, 0.9, 0.8, 0.2, 0.5, 0.4])]
    feats = FeatureSet(
        feats=np.array([[1, 0], [0, 1], [0.1, 1], [1, 0.1], [1, 1], [-1, 1]], dtype=float),
        labels=[r["label"] for r in records],
        ids=[r["id"] for r in records],
    )
    text = np.eye(2)
    by_similarity, _, _ = select_records(records, 1, "similarity", 0, 2)
    by_clip, _, _ = select_records(records, 1, "clip", 0, 2, features=feats, text_classifier=text)
    assert [r["id"] for r in by_similarity] == ["r1", "r2"]  # class 1: 0.9; class 0: 0.8
    assert [r["id"] for r in by_clip] == ["r0", "r1"]


def test_paper_protocol_defaults_and_headline():
    paper = pack_settings({"selection": "clip", "selection_encoder": None, "selection_prompt": None}, "paper")
    assert paper["selection_encoder"] == PAPER_SELECTION_ENCODER and paper["selection_prompt"] == PAPER_CLIP_PROMPT
    assert paper["retrieval_selection"] == "similarity"
    honest = pack_settings({"selection": "clip"}, "honest")
    assert honest["selection_encoder"] is None and honest["selection_prompt"] is None
    assert honest["retrieval_selection"] == "clip"
    assert headline("paper")[1] == "linear_probe_elevater" and headline("honest")[1] == "linear_probe"
    assert len(set(headline("paper"))) == len(headline("paper"))


def test_paper_plan_ranks_packs_with_vit_b16_and_one_prompt():
    from genbench.core.config import DEFAULT_CONFIG, deep_merge, load_config
    from genbench.plan.build import build_plan
    from genbench.plan.validate import validate_config

    config = deep_merge(load_config(DEFAULT_CONFIG), {"protocol": "paper"})
    validate_config(config)
    plan = build_plan(config)
    packs = plan.by_stage("pack_generated")
    assert packs and all(p.inputs["features"].params["encoder"]["model"] == "ViT-B-16" for p in packs)
    assert all(p.inputs["text_classifier"].params["prompt"] == "a photo of a {}" for p in packs)
    assert {p.params["selection"] for p in plan.by_stage("pack_retrieval")} == {"similarity"}


def test_selection_encoder_without_text_tower_names_the_key():
    from genbench.core.config import DEFAULT_CONFIG, deep_merge, load_config
    from genbench.plan.validate import validate_config

    config = deep_merge(load_config(DEFAULT_CONFIG), {"pack": {"selection_encoder": {"type": "inception"}}})
    with pytest.raises(ConfigError, match=r"pack.selection_encoder': type 'inception' has no text tower"):
        validate_config(config)


def test_feature_encoder_without_text_tower_names_the_key():
    from genbench.core.config import DEFAULT_CONFIG, deep_merge, load_config
    from genbench.plan.validate import validate_config

    config = deep_merge(load_config(DEFAULT_CONFIG), {"models": {"encoder": {"type": "inception"}}})
    with pytest.raises(ConfigError, match=r"models.encoder': type 'inception' has no text tower.*cler"):
        validate_config(config)


# ------------------------------------------------------------------ docs/PROTOCOL.md names every paired column

ORIGINALS_NAMES = ("cler_full_train", "cler_knn_zs")  # the original's columns without a suffix


def _paired(columns):
    return sorted(c for c in columns if c in ORIGINALS_NAMES or c.endswith(("_paper", "_dann", "_elevater")))


def _protocol_rows():
    """docs/PROTOCOL.md's provenance table: column -> the cells after it."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text.split("## Where each paired column comes from", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_paired_column_written_has_a_provenance_row(digits_like):
    """The columns the evaluation stages write for an original, a combined and a generated set
    (the probe's names are its variants and gains); each paired one has a row that cites the
    original's file and lines, or says it is GenBench's own."""
    data = digits_like
    original_set = _inputs(data, "original", data["pack"], full_train=data["train"], sources=data["train"])
    original_set.paper_clip = (data["pack"], data["text"])
    combined = _inputs(
        data,
        "combined",
        concatenate_feature_sets([data["pack"], data["generated_pack"]]),
        full_train=concatenate_feature_sets([data["train"], data["generated_pack"]]),
    )
    written = set()
    for inputs in (original_set, combined):
        written |= set(zeroshot_metric(inputs, CLERParams(cler={"knn_k": 3}, labels=inputs.labels)))
    distribution = DistributionParams(distribution=["fd"], labels={})
    written |= set(distribution_metrics(original_set, distribution))
    written |= set(proxy_distance(original_set, PADParams(pad={"dann_max_iter": 1000}, labels={})))
    written |= {*PROBE_VARIANTS, "gain", "gain_elevater"}  # elevater_probe's values
    paired = _paired(written)
    assert paired == sorted(
        ["cler_full_train", "cler_knn_zs", "clip_score_paper", "fd_paper", "gain_elevater"]
        + ["linear_probe_elevater", "pad_dann"]
    )
    rows = _protocol_rows()
    assert sorted(rows) == paired, "docs/PROTOCOL.md's provenance table and the columns written differ"
    for column, (_, code, _, computes) in rows.items():
        assert re.search(r"\.py:\d+", code) or "GenBench's own" in computes, column
