"""Known answers for every row of docs/PROTOCOL.md whose number changes with the protocol.

Each test builds a small hand-made feature set, computes the paper value with an independent
transcription of the original GenBench / ELEVATER formula (written out here, not imported), and
checks that GenBench's paper variant equals it and that the honest variant differs.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn import svm

from genbench.core.errors import ConfigError
from genbench.core.protocol import PAPER_CLIP_PROMPT, PAPER_SELECTION_ENCODER, headline, pack_settings
from genbench.evaluation.external import select_records
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
    proxy_a_distance_dann_reference,
)
from genbench.evaluation.metrics.classification import dataset_metric


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------ FD (tools/fid.py)


def _original_fid(train, test):
    """tools/fid.py as evaluation_utils calls it: F.normalize both, FID(real=train), both
    covariances over the *train* count, sqrtm of the product."""
    real = torch.nn.functional.normalize(torch.as_tensor(train)).double()
    fake = torch.nn.functional.normalize(torch.as_tensor(test)).double()
    n = real.shape[0]
    mean1, mean2 = real.mean(0), fake.mean(0)
    cov1 = (real - mean1).T @ (real - mean1) / (n - 1)
    cov2 = (fake - mean2).T @ (fake - mean2) / (n - 1)
    covmean = scipy.linalg.sqrtm((cov1 @ cov2).numpy()).real
    diff = (mean1 - mean2).numpy()
    return float(diff @ diff + np.trace(cov1.numpy()) + np.trace(cov2.numpy()) - 2 * np.trace(covmean))


def test_fd_paper_is_the_originals_and_differs_from_fd():
    rng = np.random.default_rng(0)
    external = rng.normal(size=(40, 6)) * 3 + 1
    real = rng.normal(size=(90, 6))
    assert frechet_distance_paper(external, real) == pytest.approx(_original_fid(external, real), rel=1e-7)
    assert abs(frechet_distance_from_features(external, real) - frechet_distance_paper(external, real)) > 0.1


# ------------------------------------------------------------------ CLIP score (packing_utils.py)


def test_clip_score_paper_is_100_cos_unclamped():
    text = np.eye(2, 3)  # class 0 -> e0, class 1 -> e1
    images = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]])
    labels = np.array([0, 0, 1])
    # by hand: cosines 1, -1/sqrt(2), -1/sqrt(2); logits_per_image = 100 cos, no clamp
    expected = 100 * (1 - 2 / math.sqrt(2)) / 3
    assert clip_score_paper_per_class(images, labels, text) == pytest.approx(expected)
    assert clip_score_100_per_class(images, labels, text) == pytest.approx(100 / 3)  # clamped at 0


# ------------------------------------------------------------------ CLER (evaluation_utils.py)


def _original_cler(test, text, train, train_labels):
    """evaluation_utils.zeroshot_metric, image_MeanTextImageCLSCenter_contrastive."""
    train, test = _unit(train), _unit(test)
    centres = _unit(np.stack([train[train_labels == c].mean(0) for c in range(text.shape[0])]))
    prototypes = _unit(text + centres)
    logits = test @ prototypes.T
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_cler_full_train_uses_every_train_image_and_differs_from_the_k_shot_centroid():
    text = _unit(np.array([[1.0, 0.2], [0.2, 1.0]]))
    full = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.9], [-0.2, 1.0], [1.0, 0.8], [0.1, 1.0]])
    full_labels = np.array([0, 1, 0, 1, 0, 1])
    shot = [0, 1]  # the 1-shot pack: the first image of each class
    test = np.array([[1.0, 0.45], [0.45, 1.0], [1.0, 1.05]])
    y = np.array([0, 1, 0])
    paper = cler_scores(test, text, full, full_labels)
    np.testing.assert_allclose(paper, _original_cler(test, text, full, full_labels), rtol=1e-12)
    honest = cler_scores(test, text, full[shot], full_labels[shot])
    assert not np.allclose(paper, honest)
    assert dataset_metric("accuracy", y, paper) != dataset_metric("accuracy", y, honest)


def _original_knn_zs(test, text, train, train_labels, k):
    """evaluation_utils: image_topk_label_mean_Average_image_text_contrastive."""
    test_t, train_t = torch.as_tensor(_unit(test)), torch.as_tensor(_unit(train))
    onehot = torch.nn.functional.one_hot(torch.as_tensor(train_labels)).double()
    top = (test_t @ train_t.T).topk(k, dim=-1).indices
    votes = torch.gather(onehot, 0, top.view(-1)[:, None].expand(-1, onehot.shape[-1])).view(*top.shape, -1)
    zero_shot = (100.0 * test_t @ torch.as_tensor(text).T).softmax(dim=-1)
    return ((zero_shot + votes.mean(dim=1)) / 2).numpy()


def test_cler_knn_zs_is_the_originals_average():
    rng = np.random.default_rng(3)
    text = _unit(rng.normal(size=(3, 5)))
    train = rng.normal(size=(30, 5))
    labels = np.arange(30) % 3
    test = rng.normal(size=(12, 5))
    ours = knn_zero_shot_scores(test, text, train, labels, 3, k=10)
    np.testing.assert_allclose(ours, _original_knn_zs(test, text, train, labels, 10), atol=1e-12)


# ------------------------------------------------------------------ PAD (tools/proxy_distance.py)


def _original_pad(source, target):
    """tools/proxy_distance.proxy_a_distance on L2-normalised features (its caller normalises)."""
    source, target = _unit(source), _unit(target)
    half_s, half_t = len(source) // 2, len(target) // 2
    train_x = np.vstack((source[:half_s], target[:half_t]))
    train_y = np.hstack((np.zeros(half_s, dtype=int), np.ones(half_t, dtype=int)))
    test_x = np.vstack((source[half_s:], target[half_t:]))
    test_y = np.hstack((np.zeros(len(source) - half_s, dtype=int), np.ones(len(target) - half_t, dtype=int)))
    best = 1.0
    for C in np.logspace(-5, 4, 10):
        risk = np.mean(svm.SVC(C=C, kernel="linear").fit(train_x, train_y).predict(test_x) != test_y)
        best = min(best, 1.0 - risk if risk > 0.5 else risk)
    return 2 * (1.0 - 2 * best)


def test_pad_dann_is_the_originals_svc_and_differs_from_pad():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(20, 8)) + 0.3  # small: the SVC at C = 1e4 costs ~20x more at 50 vs 450
    target = rng.normal(size=(180, 8))
    paper = proxy_a_distance_dann_reference(source, target)["pad"]
    assert paper == pytest.approx(_original_pad(source, target))
    # 20 vs 180 in order: answering "target" always already has error 10/100 -> PAD 1.6
    assert paper >= 1.6 - 1e-12
    assert abs(proxy_a_distance(source, target, seed=0)["pad"] - paper) > 0.3


def test_pad_dann_caps_each_set_with_a_seeded_subset():
    rng = np.random.default_rng(2)
    source, target = rng.normal(size=(30, 4)), rng.normal(size=(40, 4)) + 1
    capped = proxy_a_distance_dann_reference(source, target, max_images=20, seed=5)
    assert capped == proxy_a_distance_dann_reference(source, target, max_images=20, seed=5)
    assert proxy_a_distance_dann_reference(source, target, max_images=100) == proxy_a_distance_dann_reference(
        source, target
    )


# ------------------------------------------------------------------ probe (ELEVATER feature.py)


def _elevater_val_indices(labels, fraction=0.2):
    """vision_benchmark/evaluation/feature.py: get_dataloader's train_val_dataset."""
    labels = np.array(labels)
    if labels.ndim == 1:
        val = []
        for label, count in zip(*np.unique(labels, return_counts=True)):
            val += np.where(labels == label)[0][: math.ceil(count * fraction)].tolist()
        return sorted(val)
    need = np.ceil(np.sum(labels, axis=0) * fraction)
    targets = np.where(need > 0)[0]
    val = []
    while targets.size > 0:
        row = np.where(labels[:, targets[0]] > 0)[0][0]
        val.append(row)
        need -= labels[row]
        labels[row] = 0
        targets = np.where(need > 0)[0]
    return sorted(val)


def test_elevater_validation_split_is_dataset_order_and_differs_from_the_shuffled_one():
    labels = np.array([0] * 5 + [1] * 5 + [0] * 5)  # a combined set: real images first, then others
    _, val = validation_split_in_order(labels)
    assert val.tolist() == _elevater_val_indices(labels) == [0, 1, 5]  # ceil(0.2 * 10), ceil(0.2 * 5)
    assert validation_split(labels, seed=0)[1].tolist() != val.tolist()


def test_elevater_multilabel_validation_split_is_its_greedy_pass():
    rng = np.random.default_rng(4)
    labels = (rng.random((40, 5)) < 0.35).astype(int)
    labels[np.arange(5), np.arange(5)] = 1
    train, val = validation_split_in_order(labels)
    assert val.tolist() == _elevater_val_indices(labels.copy())
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
