"""Zero-shot scores and the training-free CLER score (definitions below).

Notation: x_i the L2-normalised real test features, t_c the text classifier rows (C x D,
L2-normalised here again, which changes nothing for an already normalised classifier),
g_j the L2-normalised external (generated / retrieved / original) training features.

Labels of the external images are either an int vector (single-label) or an N x C multi-hot
matrix (multi-label); with multi-hot labels an image counts for every class it carries: the
centroid of class c averages all images whose label row has a 1 in column c, and a k-NN
neighbour votes for every class it carries.
"""

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import l2_normalize as _l2_normalize
from genbench.evaluation.metrics._checks import as_feature_matrix, as_int_labels, as_multihot, same_width
from genbench.evaluation.metrics.classification import dataset_metric

ZERO_SHOT_LOGIT_SCALE = 100.0


def softmax(logits, axis=-1):
    """exp(z - max z) / sum exp(z - max z) along ``axis`` (scipy.special.softmax's arithmetic,
    without importing scipy into a job that needs only this)."""
    z = np.asarray(logits)
    shifted = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def l2_normalize(x, name="x"):
    """Rows of x divided by their Euclidean norm: x_i / ||x_i||_2 (float64).

    A row of norm zero has no direction and raises an error naming `name`."""
    return _l2_normalize(as_feature_matrix(x, name), axis=1, where=name)


def _class_membership(ext_labels, num_rows, num_classes):
    """(N, C) 0/1 matrix: entry (j, c) = 1 if external image j carries label c."""
    labels = np.asarray(ext_labels)
    if labels.ndim == 2:
        return as_multihot(labels, "ext_labels", num_rows=num_rows, num_classes=num_classes)
    labels = as_int_labels(labels, "ext_labels", num_rows=num_rows, num_classes=num_classes)
    membership = np.zeros((num_rows, num_classes), dtype=np.int64)
    membership[np.arange(num_rows), labels] = 1
    return membership


def zero_shot_scores(image_feats, text_classifier):
    """Zero-shot class probabilities: s_ic = softmax_c(100 * x_i . t_c)."""
    x = l2_normalize(image_feats, "image_feats")
    t = l2_normalize(text_classifier, "text_classifier")
    same_width(x, t, "image_feats", "text_classifier")
    return softmax(ZERO_SHOT_LOGIT_SCALE * x @ t.T, axis=1)


def class_centroids(ext_feats, ext_labels, num_classes, class_names=None):
    """Normalised class centroids mu_c = normalise(mean_{j carries c} g_j), (C x D).

    A class without any external image raises an error naming it (by class_names[c] when
    given, else by its id)."""
    g = l2_normalize(ext_feats, "ext_feats")
    membership = _class_membership(ext_labels, g.shape[0], num_classes)
    counts = membership.sum(axis=0)
    missing = np.nonzero(counts == 0)[0]
    if missing.size:
        names = [repr(class_names[c]) if class_names is not None else str(c) for c in missing]
        raise GenBenchError(f"no external images for class(es): {', '.join(names)}")
    means = membership.T @ g / counts[:, None]
    return l2_normalize(means, "class centroids (external images cancel out)")


def prototype_scores(test_feats, text_classifier, centroids):
    """CLER class scores s_ic = softmax_c(x_i . p_c) with p_c = normalise(t_c + mu_c).

    No temperature: the logits are cosines in [-1, 1]."""
    x = l2_normalize(test_feats, "test_feats")
    t = l2_normalize(text_classifier, "text_classifier")
    mu = as_feature_matrix(centroids, "centroids")
    if mu.shape != t.shape:
        raise GenBenchError(f"centroids shape {mu.shape} differs from text_classifier {t.shape}")
    same_width(x, t, "test_feats", "text_classifier")
    prototypes = l2_normalize(t + mu, "text_classifier + centroids")
    return softmax(x @ prototypes.T, axis=1)


def cler_scores(test_feats, text_classifier, ext_feats, ext_labels, class_names=None):
    """CLER scores: prototype_scores with mu_c the class centroids of the external images."""
    num_classes = np.asarray(text_classifier).shape[0]
    centroids = class_centroids(ext_feats, ext_labels, num_classes, class_names)
    return prototype_scores(test_feats, text_classifier, centroids)


def centroid_scores(test_feats, ext_feats, ext_labels, num_classes, class_names=None):
    """Ablation without text: s_ic = softmax_c(x_i . mu_c)."""
    x = l2_normalize(test_feats, "test_feats")
    mu = class_centroids(ext_feats, ext_labels, num_classes, class_names)
    same_width(x, mu, "test_feats", "ext_feats")
    return softmax(x @ mu.T, axis=1)


def knn_scores(test_feats, ext_feats, ext_labels, num_classes, k=10):
    """Ablation: cosine k-NN vote. s_ic = (1/k) #{j in N_k(i) : g_j carries label c}.

    N_k(i) are the k external images of highest cosine x_i . g_j; equal cosines are ordered
    by external index (stable sort), and equal votes give argmax the lowest class id."""
    x = l2_normalize(test_feats, "test_feats")
    g = l2_normalize(ext_feats, "ext_feats")
    same_width(x, g, "test_feats", "ext_feats")
    membership = _class_membership(ext_labels, g.shape[0], num_classes)
    if not 1 <= k <= g.shape[0]:
        raise GenBenchError(f"knn_scores: k={k} must be in [1, {g.shape[0]}] (external images)")
    neighbours = np.argsort(-(x @ g.T), axis=1, kind="stable")[:, :k]
    return membership[neighbours].sum(axis=1) / float(k)


def knn_zero_shot_scores(test_feats, text_classifier, ext_feats, ext_labels, num_classes, k=10):
    """The original GenBench's "kNN + zero-shot average" (``image_topk_label_mean_Average_image_
    text_contrastive``): s_ic = (softmax_c(100 x_i . t_c) + knn_c(x_i)) / 2, with knn the k-NN
    vote of ``knn_scores`` (the original's k is ``RETRIEVAL.TOP_K = 10``)."""
    zero_shot = zero_shot_scores(test_feats, text_classifier)
    return (zero_shot + knn_scores(test_feats, ext_feats, ext_labels, num_classes, k=k)) / 2.0


def cler_report(test_feats, y_test, text_classifier, ext_feats, ext_labels, metric, class_names=None):
    """The dataset metric (percent) of zero-shot, CLER and its two ablations.

    Keys: zero_shot, cler, cler_centroid, cler_knn10 (k = 10, or the number of external
    images when fewer)."""
    num_classes = np.asarray(text_classifier).shape[0]
    centroids = class_centroids(ext_feats, ext_labels, num_classes, class_names)
    k = min(10, np.asarray(ext_feats).shape[0])
    x = l2_normalize(test_feats, "test_feats")
    score_sets = {
        "zero_shot": zero_shot_scores(x, text_classifier),
        "cler": prototype_scores(x, text_classifier, centroids),
        "cler_centroid": softmax(x @ centroids.T, axis=1),
        "cler_knn10": knn_scores(x, ext_feats, ext_labels, num_classes, k=k),
    }
    return {key: dataset_metric(metric, y_test, s) for key, s in score_sets.items()}
