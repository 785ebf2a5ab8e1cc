"""Kernel Inception Distance (Binkowski et al. 2018) on any features."""

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics._checks import as_feature_matrix, same_width


def polynomial_kernel(x, y):
    """k(x, y) = (x . y / d + 1)^3 for all row pairs: an (N1, N2) matrix."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def polynomial_mmd2_unbiased(x, y):
    """Unbiased MMD^2 with the cubic polynomial kernel, x and y both m x d (m >= 2):
    sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2."""
    m = x.shape[0]
    if m < 2 or y.shape[0] != m:
        raise GenBenchError(
            f"polynomial_mmd2_unbiased needs two sets of equal size >= 2, got {x.shape[0]} and {y.shape[0]}"
        )
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(a, b, num_subsets=100, subset_size=1000, seed=0):
    """KID: mean and std (ddof=0) over `num_subsets` draws of the unbiased polynomial MMD^2
    between m = min(N1, N2, subset_size) rows of a and m rows of b, each drawn without
    replacement by numpy.random.default_rng(seed)."""
    a = as_feature_matrix(a, "a", min_rows=2)
    b = as_feature_matrix(b, "b", min_rows=2)
    same_width(a, b, "a", "b")
    if num_subsets < 1 or subset_size < 2:
        raise GenBenchError(
            f"kernel_inception_distance: num_subsets={num_subsets} must be >= 1 and subset_size={subset_size} >= 2"
        )
    m = min(a.shape[0], b.shape[0], subset_size)
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd2_unbiased(
            a[rng.choice(a.shape[0], m, replace=False)], b[rng.choice(b.shape[0], m, replace=False)]
        )
        for _ in range(num_subsets)
    ]
    return {"kid_mean": float(np.mean(values)), "kid_std": float(np.std(values))}
