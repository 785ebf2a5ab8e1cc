import numpy as np
import pytest

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.kernels import kernel_inception_distance


def loop_mmd2(x, y):
    """Unbiased polynomial MMD^2 with explicit double loops."""
    m, d = x.shape

    def k(u, v):
        return (sum(ui * vi for ui, vi in zip(u, v)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_with_whole_sets_is_the_full_mmd():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(15, 3)), rng.normal(1.0, 1.0, size=(15, 3))
    result = kernel_inception_distance(a, b, num_subsets=3, subset_size=100)
    assert result["kid_mean"] == pytest.approx(loop_mmd2(a, b), rel=1e-10)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-12)


def test_kid_subsets_match_loop_with_same_draws():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 3)), rng.normal(0.3, 1.0, size=(25, 3))
    draws = np.random.default_rng(7)
    values = []
    for _ in range(4):
        ia, ib = draws.choice(30, 10, replace=False), draws.choice(25, 10, replace=False)
        values.append(loop_mmd2(a[ia], b[ib]))
    result = kernel_inception_distance(a, b, num_subsets=4, subset_size=10, seed=7)
    assert result["kid_mean"] == pytest.approx(np.mean(values), rel=1e-10)
    assert result["kid_std"] == pytest.approx(np.std(values), rel=1e-8)


def test_kid_is_seeded_and_near_zero_for_same_distribution():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    first = kernel_inception_distance(a, b, num_subsets=20, subset_size=100, seed=5)
    assert first == kernel_inception_distance(a, b, num_subsets=20, subset_size=100, seed=5)
    shifted = kernel_inception_distance(a, b + 1.0, num_subsets=20, subset_size=100)
    assert abs(first["kid_mean"]) < 3 * first["kid_std"] + 1e-3
    assert shifted["kid_mean"] > 10 * abs(first["kid_mean"])


def test_bad_inputs():
    with pytest.raises(GenBenchError, match="dimension"):
        kernel_inception_distance(np.ones((5, 3)), np.ones((5, 2)))
    with pytest.raises(GenBenchError, match="num_subsets"):
        kernel_inception_distance(np.ones((5, 3)), np.ones((5, 3)), num_subsets=0)
