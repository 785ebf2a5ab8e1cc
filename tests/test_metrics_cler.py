import numpy as np
import pytest

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.cler import (
    centroid_scores,
    class_centroids,
    cler_report,
    cler_scores,
    knn_scores,
    l2_normalize,
    prototype_scores,
    zero_shot_scores,
)

# Hand-built 2-class case in 2-D. Text: t0 = (1, 0), t1 = (0, 1).
# External class 0: one image along (0.6, 0.8); class 1: two images along (0, 1).
# -> mu0 = (0.6, 0.8), mu1 = (0, 1); p0 = (1.6, 0.8)/|.| = (2, 1)/sqrt5, p1 = (0, 1).
TEXT = np.array([[1.0, 0.0], [0.0, 1.0]])
EXT = np.array([[3.0, 4.0], [0.0, 2.0], [0.0, 5.0]])  # unnormalised on purpose
EXT_LABELS = np.array([0, 1, 1])
TEST = np.array([[0.6, 0.8], [2.0, 0.0], [0.0, 0.5]])
Y_TEST = np.array([0, 0, 1])


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_cler_scores_hand_computed():
    s5 = np.sqrt(5.0)
    # x . p_c for each test image, computed by hand from the prototypes above
    logits = np.array([[2 / s5, 0.8], [2 / s5, 0.0], [1 / s5, 1.0]])
    np.testing.assert_allclose(cler_scores(TEST, TEXT, EXT, EXT_LABELS), softmax_rows(logits), rtol=1e-12)
    np.testing.assert_allclose(class_centroids(EXT, EXT_LABELS, 2), [[0.6, 0.8], [0, 1]], atol=1e-15)


def test_cler_report_hand_computed():
    # zero-shot misclassifies image 0 (0.6 < 0.8); CLER and centroids get all three;
    # k-NN with k = 3 (all external images) votes 1/3 vs 2/3 -> always class 1.
    report = cler_report(TEST, Y_TEST, TEXT, EXT, EXT_LABELS, "accuracy")
    assert report == pytest.approx({"zero_shot": 200 / 3, "cler": 100.0, "cler_centroid": 100.0, "cler_knn10": 100 / 3})


def test_zero_shot_is_softmax_of_100_cosines():
    logits = 100 * l2_normalize(TEST) @ TEXT.T
    np.testing.assert_allclose(zero_shot_scores(TEST, TEXT), softmax_rows(logits), rtol=1e-12)


def test_zero_centroids_reduce_cler_to_zero_shot_up_to_temperature():
    rng = np.random.default_rng(0)
    text = l2_normalize(rng.normal(size=(7, 16)))
    test = rng.normal(size=(50, 16))
    proto = prototype_scores(test, text, np.zeros_like(text))
    zero_shot = zero_shot_scores(test, text)
    np.testing.assert_array_equal(proto.argmax(1), zero_shot.argmax(1))
    np.testing.assert_allclose(proto, softmax_rows(l2_normalize(test) @ text.T), rtol=1e-12)
    # softmax(100 z) = softmax(z)^100 renormalised: the only difference is the temperature
    sharpened = proto**100
    np.testing.assert_allclose(sharpened / sharpened.sum(1, keepdims=True), zero_shot, rtol=1e-9, atol=1e-300)


def test_missing_class_error_names_the_class():
    with pytest.raises(GenBenchError, match="'tabby cat'"):
        cler_scores(TEST, np.r_[TEXT, [[1.0, 1.0]]], EXT, EXT_LABELS, class_names=["dog", "bird", "tabby cat"])
    with pytest.raises(GenBenchError, match="class\\(es\\): 2"):
        class_centroids(EXT, EXT_LABELS, 3)


def test_multilabel_centroid_averages_every_image_with_the_label():
    rng = np.random.default_rng(1)
    ext = rng.normal(size=(20, 5))
    multihot = (rng.random((20, 3)) < 0.5).astype(int)
    multihot[0] = 1  # every class present
    normed = l2_normalize(ext)
    expected = l2_normalize(np.stack([normed[multihot[:, c] == 1].mean(0) for c in range(3)]))
    np.testing.assert_allclose(class_centroids(ext, multihot, 3), expected, rtol=1e-12)


def test_centroid_scores_are_softmax_of_centroid_cosines():
    mu = class_centroids(EXT, EXT_LABELS, 2)
    np.testing.assert_allclose(
        centroid_scores(TEST, EXT, EXT_LABELS, 2), softmax_rows(l2_normalize(TEST) @ mu.T), rtol=1e-12
    )


def test_knn_votes_against_brute_force():
    rng = np.random.default_rng(2)
    ext, labels = rng.normal(size=(40, 6)), rng.integers(0, 4, size=40)
    test = rng.normal(size=(15, 6))
    scores = knn_scores(test, ext, labels, 4, k=5)
    for i in range(15):
        cos = [test[i] @ g / np.linalg.norm(test[i]) / np.linalg.norm(g) for g in ext]
        nearest = sorted(range(40), key=lambda j: -cos[j])[:5]
        np.testing.assert_allclose(scores[i], np.bincount(labels[nearest], minlength=4) / 5)


def test_knn_tie_break_is_by_external_index():
    ext = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # images 0 and 1 tie
    scores = knn_scores(np.array([[1.0, 0.0]]), ext, np.array([1, 0, 0]), 2, k=1)
    np.testing.assert_array_equal(scores, [[0.0, 1.0]])  # image 0 (label 1) wins the tie
    with pytest.raises(GenBenchError, match="k=4"):
        knn_scores(TEST, EXT, EXT_LABELS, 2, k=4)


def test_bad_inputs():
    with pytest.raises(GenBenchError, match="norm zero"):
        l2_normalize(np.zeros((2, 3)))
    with pytest.raises(GenBenchError, match="dimension"):
        zero_shot_scores(np.ones((2, 3)), TEXT)
    with pytest.raises(GenBenchError, match="ext_labels"):
        cler_scores(TEST, TEXT, EXT, np.array([0, 1]))
