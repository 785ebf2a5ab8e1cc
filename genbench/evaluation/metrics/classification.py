"""Dataset metrics of the ELEVATER benchmark. Every function returns a percentage (0-100).

`scores` is always an (N, C) array of per-class scores (probabilities or logits): the
predicted class is the row argmax (ties go to the lowest class id).
"""

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics._checks import as_feature_matrix, as_int_labels, as_multihot

METRIC_NAMES = ("accuracy", "mean-per-class", "roc_auc", "11point_mAP")


def _labels_and_scores(y, scores):
    scores = as_feature_matrix(scores, "scores")
    y = as_int_labels(y, "y", num_rows=scores.shape[0], num_classes=scores.shape[1])
    return y, scores


def accuracy(y, scores):
    """Top-1 accuracy in percent: 100 * mean_i [argmax_c scores[i, c] == y_i]."""
    y, scores = _labels_and_scores(y, scores)
    return float(100.0 * np.mean(np.argmax(scores, axis=1) == y))


def mean_per_class(y, scores):
    """Balanced accuracy in percent: 100 * mean over classes c present in y of recall_c,
    recall_c = #{i: y_i = c and argmax scores[i] = c} / #{i: y_i = c}."""
    y, scores = _labels_and_scores(y, scores)
    predicted = np.argmax(scores, axis=1)
    recalls = [np.mean(predicted[y == c] == c) for c in np.unique(y)]
    return float(100.0 * np.mean(recalls))


def roc_auc(y, scores):
    """Binary ROC AUC in percent, scores[:, 1] being the positive-class score:
    100 * P(s_pos > s_neg) + 50 * P(s_pos == s_neg) (Mann-Whitney U / (n_pos * n_neg))."""
    y, scores = _labels_and_scores(y, scores)
    if scores.shape[1] != 2:
        raise GenBenchError(f"roc_auc is binary only: scores need 2 columns, got {scores.shape[1]}")
    positive = y == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise GenBenchError("roc_auc needs both classes 0 and 1 in y")
    from scipy.stats import rankdata

    ranks = rankdata(scores[:, 1])  # average ranks for ties
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(100.0 * u_statistic / (n_pos * n_neg))


def _precision_recall_at_thresholds(relevant, score):
    """Precision and recall of `score >= t` for every distinct score t (ties grouped)."""
    order = np.argsort(-score, kind="stable")
    relevant, score = relevant[order], score[order]
    last_of_tie = np.r_[np.nonzero(np.diff(score))[0], score.size - 1]
    true_positives = np.cumsum(relevant)[last_of_tie]
    predicted_positives = last_of_tie + 1
    return true_positives / predicted_positives, true_positives / relevant.sum()


def average_precision_11point(relevant, score):
    """11-point interpolated AP (PASCAL VOC 2007), as a fraction:
    mean over t in {0, 0.1, ..., 1} of max{precision(k) : recall(k) >= t} (0 if none)."""
    precision, recall = _precision_recall_at_thresholds(np.asarray(relevant), np.asarray(score))
    levels = np.linspace(0.0, 1.0, 11)
    interpolated = [precision[recall >= t - 1e-12].max(initial=0.0) for t in levels]
    return float(np.mean(interpolated))


def map_11point(Y_multihot, scores):
    """Mean over classes of the 11-point interpolated AP, in percent.

    Y_multihot: (N, C) 0/1 matrix. Classes with no positive example have no defined AP and
    are left out of the mean (an error is raised if no class has a positive)."""
    scores = as_feature_matrix(scores, "scores")
    Y = as_multihot(Y_multihot, "Y_multihot", num_rows=scores.shape[0], num_classes=scores.shape[1])
    with_positives = np.nonzero(Y.sum(axis=0) > 0)[0]
    if with_positives.size == 0:
        raise GenBenchError("map_11point: no class has a positive example in Y_multihot")
    aps = [average_precision_11point(Y[:, c], scores[:, c]) for c in with_positives]
    return float(100.0 * np.mean(aps))


_DISPATCH = {
    "accuracy": accuracy,
    "mean-per-class": mean_per_class,
    "roc_auc": roc_auc,
    "11point_mAP": map_11point,
}


def dataset_metric(name, y, scores):
    """The dataset's ELEVATER metric `name` (one of METRIC_NAMES) on (y, scores), in percent."""
    if name not in _DISPATCH:
        raise GenBenchError(f"unknown metric {name!r}; valid metrics: {', '.join(METRIC_NAMES)}")
    return _DISPATCH[name](y, scores)
