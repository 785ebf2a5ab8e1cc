"""The numpy versions of the quadratic set metrics (PRDC, Vendi, CMMD, KID), kept as test
references only: GenBench computes them with ``genbench.evaluation.metrics.kernels`` (torch,
one pass over the Gram blocks), and tests/test_metrics_torch.py checks that the two agree to
1e-6. These are the straightforward row-chunked formulas."""

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics._checks import as_feature_matrix, same_width
from genbench.evaluation.metrics.cler import l2_normalize

_CHUNK_ROWS = 1024


def _squared_distances(x, y):
    """||x_i - y_j||^2 for all pairs via |x|^2 + |y|^2 - 2 x.y, clipped at 0."""
    sq = np.sum(x**2, axis=1)[:, None] + np.sum(y**2, axis=1)[None, :] - 2.0 * x @ y.T
    return np.maximum(sq, 0.0)


def _row_chunks(n):
    return [slice(start, min(start + _CHUNK_ROWS, n)) for start in range(0, n, _CHUNK_ROWS)]


def _knn_radii(x, k):
    """Distance from each row of x to its k-th nearest other row of x."""
    radii = np.empty(x.shape[0])
    for rows in _row_chunks(x.shape[0]):
        sq = _squared_distances(x[rows], x)
        sq[np.arange(sq.shape[0]), np.arange(rows.start, rows.stop)] = -np.inf  # self first
        radii[rows] = np.sqrt(np.partition(sq, k, axis=1)[:, k])
    return radii


def precision_recall_density_coverage(real, fake, k=5):
    """PRDC (Naeem et al. 2020) with Euclidean k-NN balls B(r_i, NND_k(r_i)):
    precision = mean_j [fake_j in some real ball]; recall = mean_i [real_i in some fake ball];
    density = (1 / (k M)) sum_j #{real balls holding fake_j};
    coverage = mean_i [the nearest fake to real_i lies in real_i's ball]."""
    real = as_feature_matrix(real, "real", min_rows=k + 1)
    fake = as_feature_matrix(fake, "fake", min_rows=k + 1)
    same_width(real, fake, "real", "fake")
    if k < 1:
        raise GenBenchError(f"precision_recall_density_coverage: k={k} must be >= 1")
    real_radii, fake_radii = _knn_radii(real, k), _knn_radii(fake, k)
    balls_holding_fake = np.zeros(fake.shape[0])
    real_in_fake_ball = np.zeros(real.shape[0], dtype=bool)
    nearest_fake = np.full(real.shape[0], np.inf)
    for rows in _row_chunks(fake.shape[0]):
        dist = np.sqrt(_squared_distances(fake[rows], real))  # (fake chunk, real)
        balls_holding_fake[rows] = np.sum(dist <= real_radii[None, :], axis=1)
        real_in_fake_ball |= np.any(dist <= fake_radii[rows, None], axis=0)
        nearest_fake = np.minimum(nearest_fake, dist.min(axis=0))
    return {
        "precision": float(np.mean(balls_holding_fake > 0)),
        "recall": float(np.mean(real_in_fake_ball)),
        "density": float(balls_holding_fake.sum() / (k * fake.shape[0])),
        "coverage": float(np.mean(nearest_fake <= real_radii)),
    }


def vendi_score(feats):
    """Vendi score (Friedman & Dieng 2023): exp(-sum_k lambda_k log lambda_k), lambda the
    eigenvalues of K / n, K_ij = x_i . x_j the cosine similarity of L2-normalised features.
    K / n has the same non-zero eigenvalues as X^T X / n, so the smaller Gram form is used.
    Ranges from 1 (all identical) to n (all orthogonal)."""
    x = l2_normalize(feats, "feats")
    n, d = x.shape
    gram = x @ x.T if n <= d else x.T @ x
    eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 0]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def _gaussian_kernel_sum(x, y, sigma, skip_diagonal):
    """sum_{i,j} exp(-||x_i - y_j||^2 / (2 sigma^2)), without i = j terms if skip_diagonal."""
    total = 0.0
    for rows in _row_chunks(x.shape[0]):
        kernel = np.exp(-_squared_distances(x[rows], y) / (2.0 * sigma**2))
        if skip_diagonal:
            kernel[np.arange(kernel.shape[0]), np.arange(rows.start, rows.stop)] = 0.0
        total += kernel.sum()
    return total


def cmmd(a, b, sigma=10.0):
    """CMMD (Jayasumana et al. 2024): 1000 * unbiased MMD^2 with the Gaussian kernel
    k(x, y) = exp(-||x - y||^2 / (2 sigma^2)) on L2-normalised features:
    1000 * [sum_{i!=j} k(a_i,a_j)/(n(n-1)) + sum_{i!=j} k(b_i,b_j)/(m(m-1)) - 2 mean k(a_i,b_j)].
    The factor 1000 is the scale the CMMD paper reports; its reference code uses the biased
    (V-statistic) estimate, so values differ from it by O(1/n)."""
    a = l2_normalize(as_feature_matrix(a, "a", min_rows=2), "a")
    b = l2_normalize(as_feature_matrix(b, "b", min_rows=2), "b")
    same_width(a, b, "a", "b")
    if not sigma > 0:
        raise GenBenchError(f"cmmd: sigma={sigma} must be positive")
    n, m = a.shape[0], b.shape[0]
    within_a = _gaussian_kernel_sum(a, a, sigma, skip_diagonal=True) / (n * (n - 1))
    within_b = _gaussian_kernel_sum(b, b, sigma, skip_diagonal=True) / (m * (m - 1))
    between = _gaussian_kernel_sum(a, b, sigma, skip_diagonal=False) / (n * m)
    return float(1000.0 * (within_a + within_b - 2.0 * between))


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
