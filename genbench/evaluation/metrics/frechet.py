"""Frechet distance between Gaussians fitted to two feature sets (FID on any encoder)."""

import warnings

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import l2_normalize
from genbench.evaluation.metrics._checks import as_feature_matrix, same_width


def feature_statistics(feats):
    """Mean and covariance of (N, D) features in float64: mu = mean_i f_i,
    S = sum_i (f_i - mu)(f_i - mu)^T / (N - 1) (each set by its own N - 1)."""
    f = as_feature_matrix(feats, "feats", min_rows=2)
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _as_statistics(mu, sigma, name):
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise GenBenchError(
            f"{name}: mean of shape {mu.shape} needs a ({mu.size}, {mu.size}) covariance, got {sigma.shape}"
        )
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise GenBenchError(f"{name}: statistics contain NaN or infinite values")
    return mu, (sigma + sigma.T) / 2.0


def _cholesky_factor(sigma):
    """Lower Cholesky factor of sigma, or None when sigma is not (numerically) positive definite."""
    from scipy.linalg import LinAlgError, cholesky

    try:
        factor = cholesky(sigma, lower=True, check_finite=False)
    except LinAlgError:
        return None
    pivots = np.diag(factor) ** 2
    if pivots.min() <= sigma.shape[0] * np.finfo(np.float64).eps * np.abs(np.diag(sigma)).max():
        return None
    return factor


def _eigh_factor(sigma):
    """A with A A^T = sigma: V diag(sqrt(max(w, 0))) from sigma = V diag(w) V^T."""
    from scipy.linalg import eigh

    w, v = eigh(sigma, check_finite=False)
    return v * np.sqrt(np.clip(w, 0.0, None))


def _lower_congruence(lower, sigma):
    """L^T S L for lower-triangular L with two triangular products (BLAS trmm, half a GEMM each)."""
    from scipy.linalg.blas import dtrmm

    sigma_l = dtrmm(1.0, lower, sigma, side=1, lower=1)  # S L
    return dtrmm(1.0, lower, sigma_l, side=0, lower=1, trans_a=1)  # L^T (S L)


def trace_sqrt_product(sigma1, sigma2):
    """tr((S1 S2)^(1/2)) = sum_k sqrt(lambda_k(A^T S2 A)) for any A with A A^T = S1.

    A is the Cholesky factor of S1 when S1 is positive definite, otherwise the eigh square
    root factor V diag(sqrt(max(w, 0))) (singular S1, e.g. fewer samples than dimensions).
    A^T S2 A is symmetric and similar to S1 S2; negative round-off eigenvalues are clipped."""
    factor = _cholesky_factor(sigma1)
    if factor is None:
        factor = _eigh_factor(sigma1)
        product = factor.T @ sigma2 @ factor
    else:
        product = _lower_congruence(factor, sigma2)
    from scipy.linalg import eigvalsh

    eigenvalues = eigvalsh((product + product.T) / 2.0, check_finite=False)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Frechet distance ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr((S1 S2)^(1/2)), float64.

    The trace of the square root is taken from symmetric eigenvalue problems
    (see trace_sqrt_product), never from the non-symmetric S1 @ S2."""
    mu1, sigma1 = _as_statistics(mu1, sigma1, "set 1")
    mu2, sigma2 = _as_statistics(mu2, sigma2, "set 2")
    if mu1.size != mu2.size:
        raise GenBenchError(f"dimension mismatch: set 1 has {mu1.size}, set 2 has {mu2.size}")
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    trace_term = float(np.trace(sigma1) + np.trace(sigma2))
    return mean_term + trace_term - 2.0 * trace_sqrt_product(sigma1, sigma2)


def frechet_distance_from_features(a, b):
    """Frechet distance between Gaussians fitted to feature sets a (N1 x D) and b (N2 x D).

    Each covariance is normalised by its own N - 1 (the original GenBench divided both by
    the first set's N - 1; we do not). Warns when a set has N <= D samples: its covariance
    is then singular (rank N - 1) and the distance is biased."""
    a = as_feature_matrix(a, "a", min_rows=2)
    b = as_feature_matrix(b, "b", min_rows=2)
    same_width(a, b, "a", "b")
    for name, feats in (("a", a), ("b", b)):
        n, d = feats.shape
        if n <= d:
            warnings.warn(
                f"Frechet distance: set {name} has n={n} samples for d={d} dimensions "
                f"(n <= d): its covariance is singular",
                stacklevel=2,
            )
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def frechet_distance_paper(external, real):
    """The original GenBench's FD (``tools/fid.py`` as ``evaluation_utils.zeroshot_metric`` calls
    it), for comparison with the paper's FID column.

    Both sets are L2-normalised row-wise first, and both covariances are divided by the
    *external* set's N_e - 1: S_e = D_e^T D_e / (N_e - 1), S_r = D_r^T D_r / (N_e - 1), with D the
    mean-centred features; then ||mu_e - mu_r||^2 + tr S_e + tr S_r - 2 tr((S_e S_r)^(1/2)).
    ``external`` (N_e x D) is the training set (``real=True`` in the original's call), ``real``
    (N_r x D) the real test split."""
    e = l2_normalize(as_feature_matrix(external, "external", min_rows=2), axis=1, where="external")
    r = l2_normalize(as_feature_matrix(real, "real", min_rows=2), axis=1, where="real")
    same_width(e, r, "external", "real")
    denominator = e.shape[0] - 1
    centred_e, centred_r = e - e.mean(axis=0), r - r.mean(axis=0)
    return frechet_distance(
        e.mean(axis=0), centred_e.T @ centred_e / denominator, r.mean(axis=0), centred_r.T @ centred_r / denominator
    )
