"""Tests for genbench.evaluation.linear_probe: ELEVATER's weight-decay search, batched training, the protocol."""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from genbench.core.errors import GenBenchError
from genbench.evaluation.linear_probe import (
    WEIGHT_DECAYS,
    check_shots,
    epoch_batches,
    initial_weight,
    run_linear_probe,
    search_hyperparameters,
    summarise_epochs,
    train_heads,
    validation_split,
    weight_decay_search,
)

torch.set_num_threads(1)

COARSE = [0, 16, 32, 48, 64, 80, 96]


# --------------------------------------------------------------------------- weight-decay search


def test_search_on_unimodal_curve_visits_elevater_points():
    # peak at 37, score = -|i - 37| (ELEVATER compares with '>', earlier visit wins ties)
    best, visited = weight_decay_search(lambda i: -abs(i - 37))
    # coarse best 32 (-5); step 8: 24 (-13), 40 (-3) -> 40; step 4: 36 (-1), 44 (-7) -> 36;
    # step 2: 34 (-3), 38 (-1, tie with 36, kept 36); step 1: 35 (-2), 37 (0) -> 37
    assert visited == COARSE + [24, 40, 36, 44, 34, 38, 35, 37]
    assert best == 37


def test_search_on_flat_curve_stays_at_first_point():
    best, visited = weight_decay_search(lambda i: 50.0)
    # peak 0 all along: the left neighbour max(0 - s, 0) = 0 is the peak and is skipped
    assert visited == COARSE + [8, 4, 2, 1]
    assert best == 0


def test_search_on_increasing_curve_clips_at_the_end():
    best, visited = weight_decay_search(lambda i: float(i))
    assert visited == COARSE + [88, 92, 94, 95]
    assert best == 96


def test_search_with_peak_moving_left_within_a_stage():
    scores = {i: 0.0 for i in range(97)}
    scores.update({48: 10.0, 40: 12.0, 56: 11.0, 36: 13.0, 44: 1.0, 34: 0.5, 38: 14.0, 37: 2.0, 39: 3.0})
    best, visited = weight_decay_search(scores.__getitem__)
    # 48 -> step 8: 40 (12 > 10) then 56 (11 < 12): 40 -> step 4: 36 (13), 44 -> step 2: 34, 38 (14) -> step 1: 37, 39
    assert visited == COARSE + [40, 56, 36, 44, 34, 38, 37, 39]
    assert best == 38


def test_weight_decay_grid_matches_elevater():
    assert len(WEIGHT_DECAYS) == 97
    coarse_values = set(np.logspace(-6, 6, 7).tolist())
    assert [i for i, v in enumerate(WEIGHT_DECAYS) if v in coarse_values] == COARSE


# --------------------------------------------------------------------------- data


def _blobs(n_per_class, num_classes=4, dim=16, spread=0.6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 2.0
    labels = np.repeat(np.arange(num_classes), n_per_class)
    feats = centres[labels] + spread * rng.normal(size=(labels.size, dim))
    return feats.astype(np.float32), labels


def test_validation_split_is_class_balanced_and_seeded():
    labels = np.array([0] * 10 + [1] * 6 + [2] * 1)
    train, val = validation_split(labels, seed=3)
    assert np.bincount(labels[val], minlength=3).tolist() == [2, math.ceil(1.2), 1]
    assert sorted(np.r_[train, val].tolist()) == list(range(17))
    order = np.random.default_rng(3).permutation(17)
    assert sorted(val.tolist()) == sorted(
        [i for i in order if labels[i] == 0][:2] + [i for i in order if labels[i] == 1][:2] + [16]
    )
    again, val_again = validation_split(labels, seed=3)
    assert np.array_equal(val, val_again) and np.array_equal(train, again)


def test_check_shots_names_short_classes():
    with pytest.raises(GenBenchError, match=r"5 shots.*'dog' \(id 1\) has 3"):
        check_shots([0] * 5 + [1] * 3 + [2] * 6, 5, ["cat", "dog", "bird"])
    assert check_shots([0, 1, 1], 1, ["cat", "dog"]) == [1, 2]


# --------------------------------------------------------------------------- batched == sequential


def _sequential_reference(x, y, x_eval, y_eval, lr, wd, init, epochs, seed, multilabel, metric):
    """One head trained the plain way: torch modules, autograd, torch.optim.SGD."""
    from genbench.evaluation.metrics.classification import dataset_metric

    x, x_eval = torch.from_numpy(x), torch.from_numpy(x_eval)
    bn = torch.nn.BatchNorm1d(x.shape[1], affine=False)
    linear = torch.nn.Linear(x.shape[1], init.shape[0])
    with torch.no_grad():
        linear.weight.copy_(init)
        linear.bias.zero_()
    optimiser = torch.optim.SGD(linear.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    loss_fn = torch.nn.BCEWithLogitsLoss() if multilabel else torch.nn.CrossEntropyLoss()
    targets = torch.as_tensor(y, dtype=torch.float32 if multilabel else torch.int64)
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(epochs):
        bn.train()
        for batch in epoch_batches(len(x), 64, generator):
            optimiser.zero_grad()
            loss_fn(linear(bn(x[batch])), targets[batch]).backward()
            optimiser.step()
        bn.eval()
        with torch.no_grad():
            logits = linear(bn(x_eval))
        probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)
        scores.append(dataset_metric(metric, y_eval, probs.numpy()))
    return linear.weight.detach().numpy(), linear.bias.detach().numpy(), scores


@pytest.mark.parametrize("multilabel", [False, True])
def test_batched_heads_equal_sequential_training(multilabel):
    x, labels = _blobs(40, spread=1.5)
    x_eval, labels_eval = _blobs(10, spread=1.5, seed=1)
    if multilabel:
        y, y_eval = np.eye(4)[labels], np.eye(4)[labels_eval]
        y[::3, 0] = 1
        metric = "11point_mAP"
    else:
        y, y_eval, metric = labels, labels_eval, "accuracy"
    init = initial_weight(None, 4, x.shape[1], seed=0)
    lrs, wds = [1e-1, 1e-2, 1e-1], [1e-4, 1e-1, 3.0]
    weights, biases, scores = train_heads(
        x, y, x_eval, y_eval, lrs=lrs, wds=wds, init_weight=init, metric=metric, epochs=4, seed=7, multilabel=multilabel
    )
    for m, (lr, wd) in enumerate(zip(lrs, wds)):
        ref_w, ref_b, ref_scores = _sequential_reference(x, y, x_eval, y_eval, lr, wd, init, 4, 7, multilabel, metric)
        np.testing.assert_allclose(weights[m], ref_w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(biases[m], ref_b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(scores[m], ref_scores, atol=1e-6)


def test_diverged_head_scores_zero_without_touching_others():
    x, y = _blobs(30)
    init = initial_weight(None, 4, x.shape[1], seed=0)
    weights, _, scores = train_heads(
        x, y, x, y, lrs=[0.1, 0.1], wds=[1e6, 1e-4], init_weight=init, metric="accuracy", epochs=10
    )
    alone = train_heads(x, y, x, y, lrs=[0.1], wds=[1e-4], init_weight=init, metric="accuracy", epochs=10)[2]
    assert not np.isfinite(weights[0]).all()  # |1 - lr * wd| = 1e5 per step overflows float32
    assert scores[0][-1] == 0.0
    np.testing.assert_allclose(scores[1], alone[0])


# --------------------------------------------------------------------------- the protocol


def test_probe_matches_sklearn_logistic_regression():
    x, y = _blobs(200, num_classes=5, dim=24, spread=2.5)
    x_test, y_test = _blobs_from_same_centres(5, 24, 2.5, seed=0, n_per_class=100)
    result = run_linear_probe(x, y, x_test, y_test, metric="accuracy")  # full ELEVATER search
    reference = LogisticRegression(max_iter=2000).fit(x, y)
    sklearn_accuracy = 100.0 * np.mean(reference.predict(x_test) == y_test)
    assert 80.0 < sklearn_accuracy < 99.0  # overlapping classes: the comparison means something
    assert abs(result["test_metric"] - sklearn_accuracy) <= 2.0
    assert result["test_metric"] == result["per_epoch_test"][-1] and len(result["per_epoch_test"]) == 50
    _assert_search_is_consistent(result)


def _assert_search_is_consistent(result):
    """Replaying each lr's recorded scores through weight_decay_search gives the same visits and winner."""
    best = None
    for lr in sorted({r["lr"] for r in result["search"]}):
        runs = [r for r in result["search"] if r["lr"] == lr]
        scores = {r["wd_index"]: _score(r) for r in runs}
        best_index, visited = weight_decay_search(scores.__getitem__)
        assert visited == [r["wd_index"] for r in runs]
        if best is None or scores[best_index] > best[0]:
            best = (scores[best_index], lr, WEIGHT_DECAYS[best_index])
    assert (result["best_lr"], result["best_wd"]) == best[1:]


def _blobs_from_same_centres(num_classes, dim, spread, seed, n_per_class):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 2.0
    test_rng = np.random.default_rng(seed + 100)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    return (centres[labels] + spread * test_rng.normal(size=(labels.size, dim))).astype(np.float32), labels


def test_same_seed_same_result_and_modes():
    x, y = _blobs(25, spread=2.5)
    x_test, y_test = _blobs_from_same_centres(4, 16, 2.5, seed=0, n_per_class=20)
    text = initial_weight(None, 4, 16, seed=11).numpy()
    kwargs = dict(metric="mean-per-class", text_classifier=text, lrs=[1e-2, 1e-1], epochs_search=3, epochs_final=6)
    first = run_linear_probe(x, y, x_test, y_test, seed=1, **kwargs)
    second = run_linear_probe(x, y, x_test, y_test, seed=1, **kwargs)
    assert first == second
    elevater = run_linear_probe(x, y, x_test, y_test, seed=1, mode="elevater", **kwargs)
    assert elevater["test_metric"] == max(elevater["per_epoch_test"])
    assert first["test_metric"] == first["per_epoch_test"][-1]
    assert elevater["mode"] == "elevater" and first["mode"] == "honest"
    assert len(first["search"]) == 2 * (7 + 8)
    # stage by stage, each stage lr by lr: the coarse points of lr 1e-2, then those of lr 1e-1
    assert [(r["lr"], r["wd_index"]) for r in first["search"][:14]] == [(lr, i) for lr in (1e-2, 1e-1) for i in COARSE]


def test_language_init_is_used():
    x, y = _blobs(20)
    text = np.random.default_rng(5).normal(size=(4, 16)).astype(np.float32)
    weights, biases, _ = train_heads(
        x, y, x, y, lrs=[0.0], wds=[0.0], init_weight=initial_weight(text, 4, 16, 0), metric="accuracy", epochs=1
    )
    np.testing.assert_array_equal(weights[0], text)
    assert not biases.any()
    with pytest.raises(GenBenchError, match=r"text_classifier has shape \(4, 16\), expected \(5, 16\)"):
        initial_weight(text, 5, 16, 0)


def test_bad_arguments_raise():
    x, y = _blobs(5)
    with pytest.raises(GenBenchError, match="unknown metric"):
        run_linear_probe(x, y, x, y, metric="top5")
    with pytest.raises(GenBenchError, match="unknown mode.*honest, elevater"):
        run_linear_probe(x, y, x, y, metric="accuracy", mode="best")
    with pytest.raises(GenBenchError, match="needs both lr and wd"):
        run_linear_probe(x, y, x, y, metric="accuracy", search=False)


def test_coarse_only_search_and_array_of_lrs():
    x, y = _blobs(15)
    result = run_linear_probe(
        x, y, x, y, metric="accuracy", lrs=np.array([1e-2, 1e-1]), wd_steps=(), epochs_search=2, epochs_final=2
    )
    assert [(r["lr"], r["wd_index"]) for r in result["search"]] == [(lr, i) for lr in (1e-2, 1e-1) for i in COARSE]
    _assert_search_is_consistent_coarse(result)


def _score(record):
    """A search run's score; an unstable (lr * wd too large) run counts as -inf."""
    return float("-inf") if record["unstable"] else record["score"]


def _assert_search_is_consistent_coarse(result):
    best = max(result["search"], key=_score)  # max() keeps the first of equal scores
    assert (result["best_lr"], result["best_wd"]) == (best["lr"], best["wd"])


def test_unstable_learning_rate_weight_decay_pairs_are_never_chosen():
    x, y = _blobs(15)
    result = run_linear_probe(x, y, x, y, metric="accuracy", lrs=[1e-1], wd_steps=(), epochs_search=2, epochs_final=2)
    unstable = [r for r in result["search"] if r["unstable"]]
    assert [r["wd_index"] for r in unstable] == [i for i in COARSE if 1e-1 * WEIGHT_DECAYS[i] > 3.8]
    assert all(r["score"] is None for r in unstable)
    assert result["best_lr"] * result["best_wd"] <= 3.8


def test_summarise_epochs_takes_the_maximum_or_the_mean_of_the_late_half():
    scores = np.array([[10.0, 90.0, 0.0, 50.0, 60.0], [40.0, 40.0, 50.0, 50.0, 50.0]])
    np.testing.assert_array_equal(summarise_epochs(scores, "best"), [90.0, 50.0])
    np.testing.assert_array_equal(summarise_epochs(scores, "late_mean"), [(0 + 50 + 60) / 3, 50.0])
    with pytest.raises(GenBenchError, match="unknown score_epoch 'last'"):
        summarise_epochs(scores, "last")


def test_honest_search_scores_the_late_epochs_of_an_oscillating_head():
    """lr 0.01 and wd 100 with one step an epoch: heavy-ball SGD swings the head's weights through
    zero to their negation every few epochs, so single epochs fall far below chance. ELEVATER's
    best-epoch score sees only the peaks; the honest search scores the late half's mean."""
    x, y = _blobs(10)
    val_x, val_y = _blobs_from_same_centres(4, 16, 0.6, seed=0, n_per_class=10)
    class_means = np.stack([x[y == c].mean(0) for c in range(4)])
    init = initial_weight(class_means, 4, 16, seed=0)
    common = dict(init_weight=init, metric="accuracy", epochs=10, batch_size=64, seed=0, multilabel=False)
    _, _, curve = train_heads(x, y, val_x, val_y, lrs=[1e-2], wds=[100.0], **common)
    assert curve[0].min() < 25.0 < curve[0].max()  # below chance (4 classes) and above it
    scored = {}
    for rule in ("best", "late_mean"):
        _, _, records = search_hyperparameters(
            x,
            y,
            val_x,
            val_y,
            lrs=[1e-2],
            wd_steps=(),
            score_epoch=rule,
            **common,
        )
        scored[rule] = {r["wd"]: r["score"] for r in records}
    assert scored["best"][100.0] == pytest.approx(curve[0].max())
    assert scored["late_mean"][100.0] == pytest.approx(curve[0][5:].mean())
