import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.classification import (
    accuracy,
    average_precision_11point,
    dataset_metric,
    map_11point,
    mean_per_class,
    roc_auc,
)


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, size=200)
    scores = rng.normal(size=(200, 5))
    scores[np.arange(200), y] += 0.8  # better than chance, imbalanced errors
    return y, scores


def test_accuracy_matches_sklearn(multiclass):
    y, scores = multiclass
    assert accuracy(y, scores) == pytest.approx(100 * accuracy_score(y, scores.argmax(1)))


def test_mean_per_class_matches_sklearn_balanced_accuracy():
    rng = np.random.default_rng(2)
    y = np.r_[np.zeros(150, int), rng.integers(1, 4, size=50)]  # imbalanced classes
    scores = rng.normal(size=(200, 4))
    expected = 100 * balanced_accuracy_score(y, scores.argmax(1))
    assert mean_per_class(y, scores) == pytest.approx(expected)
    assert mean_per_class(y, scores) != pytest.approx(accuracy(y, scores))


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300)
    positive = np.round(rng.random(300) * 0.5 + 0.3 * y, 1)  # rounding makes ties
    scores = np.c_[1 - positive, positive]
    assert roc_auc(y, scores) == pytest.approx(100 * roc_auc_score(y, positive))


def test_roc_auc_rejects_multiclass_and_single_class():
    with pytest.raises(GenBenchError, match="binary"):
        roc_auc(np.array([0, 1, 2]), np.eye(3))
    with pytest.raises(GenBenchError, match="both classes"):
        roc_auc(np.array([1, 1]), np.array([[0.2, 0.8], [0.4, 0.6]]))


def loop_ap_11point(relevant, score):
    """Reference: precision/recall at each distinct threshold, 11-point max interpolation."""
    points = []
    for threshold in sorted(set(score.tolist()), reverse=True):
        predicted = score >= threshold
        tp = np.sum(predicted & (relevant == 1))
        points.append((tp / predicted.sum(), tp / relevant.sum()))
    total = 0.0
    for level in [i / 10 for i in range(11)]:
        candidates = [p for p, r in points if r >= level - 1e-12]
        total += max(candidates) if candidates else 0.0
    return total / 11


def test_11point_ap_matches_hand_loop():
    rng = np.random.default_rng(4)
    Y = (rng.random((120, 6)) < 0.3).astype(int)
    scores = np.round(rng.random((120, 6)) + 0.4 * Y, 2)
    expected = np.mean([loop_ap_11point(Y[:, c], scores[:, c]) for c in range(6)])
    assert map_11point(Y, scores) == pytest.approx(100 * expected)


def test_11point_ap_by_hand():
    # ranking: +, -, +  -> (P, R) = (1, .5), (.5, .5), (2/3, 1)
    # levels 0..0.5 -> 1 (6 levels); 0.6..1.0 -> 2/3 (5 levels)
    ap = average_precision_11point(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7]))
    assert ap == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


def test_perfect_scores_give_100(multiclass):
    y, _ = multiclass
    onehot = np.eye(5)[y]
    for name in ("accuracy", "mean-per-class", "11point_mAP"):
        target = onehot if name == "11point_mAP" else y
        assert dataset_metric(name, target, onehot) == pytest.approx(100.0)


def test_dataset_metric_unknown_name_lists_valid_ones(multiclass):
    y, scores = multiclass
    with pytest.raises(GenBenchError, match="mean-per-class"):
        dataset_metric("top5", y, scores)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(GenBenchError, match="scores"):
        accuracy(np.array([0, 1]), np.array([[0.1, np.nan], [0.3, 0.7]]))
    with pytest.raises(GenBenchError, match="y has 3 entries"):
        accuracy(np.array([0, 1, 1]), np.eye(2))
    with pytest.raises(GenBenchError, match="outside"):
        accuracy(np.array([0, 2]), np.eye(2))
