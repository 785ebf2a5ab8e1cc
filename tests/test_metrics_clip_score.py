import numpy as np
import pytest

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.clip_score import (
    clip_score_100,
    clip_score_100_per_class,
    clip_score_hessel,
    clip_score_hessel_per_class,
)


def test_definitions_on_hand_computed_cosines():
    images = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 0.0]])
    texts = np.array([[2.0, 0.0], [4.0, 3.0], [-1.0, 1.0]])
    # cosines: 1, 24/25, -1/sqrt(2) (clamped to 0)
    assert clip_score_hessel(images, texts) == pytest.approx(2.5 * (1 + 0.96 + 0) / 3)
    assert clip_score_100(images, texts) == pytest.approx((100 + 96 + 0) / 3)


def test_per_class_uses_the_label_row():
    rng = np.random.default_rng(0)
    class_text = rng.normal(size=(4, 8))
    labels = np.array([3, 0, 0, 2, 1])
    images = rng.normal(size=(5, 8))
    cos = [
        images[i] @ class_text[c] / np.linalg.norm(images[i]) / np.linalg.norm(class_text[c])
        for i, c in enumerate(labels)
    ]
    assert clip_score_100_per_class(images, labels, class_text) == pytest.approx(
        np.mean([max(100 * c, 0) for c in cos])
    )
    assert clip_score_hessel_per_class(images, labels, class_text) == pytest.approx(
        np.mean([2.5 * max(c, 0) for c in cos])
    )


def test_errors():
    with pytest.raises(GenBenchError, match="paired"):
        clip_score_100(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(GenBenchError, match="norm zero"):
        clip_score_hessel(np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(GenBenchError, match="labels"):
        clip_score_100_per_class(np.ones((2, 3)), np.array([0, 5]), np.ones((2, 3)))
