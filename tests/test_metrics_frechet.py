import warnings

import numpy as np
import pytest
from scipy.linalg import sqrtm

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.frechet import (
    _eigh_factor,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    trace_sqrt_product,
)


def sqrtm_reference(a, b):
    """Textbook FD: covariances by np.cov (own n - 1), scipy sqrtm of S1 S2, real part."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(sqrtm(s1 @ s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def correlated(rng, n, d, shift=0.0):
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


def test_matches_sqrtm_reference_on_random_features():
    rng = np.random.default_rng(0)
    a, b = correlated(rng, 600, 48), correlated(rng, 450, 48, shift=0.3)
    assert frechet_distance_from_features(a, b) == pytest.approx(sqrtm_reference(a, b), rel=1e-6)


def test_singular_case_warns_and_matches_reference():
    rng = np.random.default_rng(1)
    a, b = correlated(rng, 20, 40), correlated(rng, 300, 40, shift=0.2)  # a: n < d
    with pytest.warns(UserWarning, match=r"n=20 samples for d=40"):
        value = frechet_distance_from_features(a, b)
    assert value == pytest.approx(sqrtm_reference(a, b), rel=1e-6)
    with pytest.warns(UserWarning, match=r"set b has n=20"):
        swapped = frechet_distance_from_features(b, a)  # singular S1 -> eigh fallback
    assert swapped == pytest.approx(value, rel=1e-6)


def test_no_warning_when_well_sampled():
    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frechet_distance_from_features(rng.normal(size=(50, 5)), rng.normal(size=(60, 5)))


def test_cholesky_and_eigh_factors_agree():
    rng = np.random.default_rng(3)
    s1 = np.cov(correlated(rng, 200, 30), rowvar=False)
    s2 = np.cov(correlated(rng, 200, 30), rowvar=False)
    factor = _eigh_factor(s1)
    product = factor.T @ s2 @ factor
    eigh_form = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    assert trace_sqrt_product(s1, s2) == pytest.approx(eigh_form, rel=1e-10)


def test_diagonal_gaussians_closed_form():
    # For commuting (diagonal) covariances: FD = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    a_diag, b_diag = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 5.0 + np.sum((np.sqrt(a_diag) - np.sqrt(b_diag)) ** 2)
    assert frechet_distance(mu1, np.diag(a_diag), mu2, np.diag(b_diag)) == pytest.approx(expected)


def test_identical_sets_give_zero():
    feats = correlated(np.random.default_rng(4), 300, 20)
    assert abs(frechet_distance_from_features(feats, feats)) < 1e-9


def test_each_covariance_uses_its_own_n_minus_1():
    feats = np.random.default_rng(5).normal(size=(7, 3))
    mu, cov = feature_statistics(feats)
    centred = feats - feats.mean(0)
    np.testing.assert_allclose(cov, centred.T @ centred / 6)
    assert cov.dtype == np.float64 and mu.dtype == np.float64


def test_bad_inputs():
    with pytest.raises(GenBenchError, match="dimension"):
        frechet_distance_from_features(np.ones((5, 3)), np.ones((5, 4)))
    with pytest.raises(GenBenchError, match="NaN"):
        frechet_distance_from_features(np.full((5, 3), np.nan), np.ones((5, 3)))
    with pytest.raises(GenBenchError, match="covariance"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
