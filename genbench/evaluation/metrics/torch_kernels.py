"""Torch versions of the quadratic set metrics (PRDC, CMMD, KID, Vendi), chunked, on any device.

Each takes the same arguments as its numpy kernel (``fidelity.py``, ``kid.py``) plus ``device``
and returns the same numbers: float64 by default, so that they agree with numpy to round-off
(tests/test_metrics_torch.py checks 1e-6). Memory is bounded by one ``chunk_rows`` x N block.
KID draws its subsets with numpy's generator exactly as ``kernel_inception_distance`` does, so
the subsets are the same on every device.
"""

from __future__ import annotations

import numpy as np
import torch

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics._checks import as_feature_matrix, same_width
from genbench.evaluation.metrics.cler import l2_normalize

CHUNK_ROWS = 4096


def _tensor(x, device, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)


def _chunks(n: int, chunk_rows: int):
    return [slice(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 = |x_i|^2 + |y_j|^2 - 2 x_i . y_j, clipped at 0: (N1, N2)."""
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return sq.clamp_min(0.0)


def knn_radii(x: torch.Tensor, k: int, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row: (N,)."""
    radii = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for rows in _chunks(x.shape[0], chunk_rows):
        sq = squared_distances(x[rows], x)
        index = torch.arange(rows.start, rows.stop, device=x.device)
        sq[torch.arange(sq.shape[0], device=x.device), index] = -torch.inf  # self first
        radii[rows] = torch.kthvalue(sq, k + 1, dim=1).values.sqrt()
    return radii


def prdc(real, fake, k: int = 5, device="cpu", chunk_rows: int = CHUNK_ROWS) -> dict[str, float]:
    """PRDC (Naeem et al. 2020), as ``fidelity.precision_recall_density_coverage``."""
    real = as_feature_matrix(real, "real", min_rows=k + 1)
    fake = as_feature_matrix(fake, "fake", min_rows=k + 1)
    same_width(real, fake, "real", "fake")
    if k < 1:
        raise GenBenchError(f"prdc: k={k} must be >= 1")
    r, f = _tensor(real, device), _tensor(fake, device)
    real_radii, fake_radii = knn_radii(r, k, chunk_rows), knn_radii(f, k, chunk_rows)
    balls_holding_fake = torch.zeros(f.shape[0], dtype=r.dtype, device=r.device)
    real_in_fake_ball = torch.zeros(r.shape[0], dtype=torch.bool, device=r.device)
    nearest_fake = torch.full((r.shape[0],), torch.inf, dtype=r.dtype, device=r.device)
    for rows in _chunks(f.shape[0], chunk_rows):
        dist = squared_distances(f[rows], r).sqrt()
        balls_holding_fake[rows] = (dist <= real_radii[None, :]).sum(1).to(r.dtype)
        real_in_fake_ball |= (dist <= fake_radii[rows, None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, dist.min(0).values)
    return {
        "precision": float((balls_holding_fake > 0).double().mean()),
        "recall": float(real_in_fake_ball.double().mean()),
        "density": float(balls_holding_fake.sum() / (k * f.shape[0])),
        "coverage": float((nearest_fake <= real_radii).double().mean()),
    }


def vendi(feats, device="cpu") -> float:
    """Vendi score exp(-sum lambda log lambda), lambda the eigenvalues of the smaller Gram form
    of the L2-normalised features divided by n, as ``fidelity.vendi_score``."""
    x = _tensor(l2_normalize(feats, "feats"), device)
    n, d = x.shape
    gram = x @ x.T if n <= d else x.T @ x
    eigenvalues = torch.linalg.eigvalsh(gram / n).clamp_min(0.0)
    eigenvalues = eigenvalues[eigenvalues > 0]
    return float(torch.exp(-(eigenvalues * eigenvalues.log()).sum()))


def _gaussian_kernel_sum(x, y, sigma, skip_diagonal, chunk_rows):
    total = torch.zeros((), dtype=x.dtype, device=x.device)
    for rows in _chunks(x.shape[0], chunk_rows):
        kernel = torch.exp(-squared_distances(x[rows], y) / (2.0 * sigma**2))
        if skip_diagonal:
            index = torch.arange(rows.start, rows.stop, device=x.device)
            kernel[torch.arange(kernel.shape[0], device=x.device), index] = 0.0
        total += kernel.sum()
    return total


def cmmd(a, b, sigma: float = 10.0, device="cpu", chunk_rows: int = CHUNK_ROWS) -> float:
    """CMMD: 1000 x unbiased Gaussian-kernel MMD^2 on L2-normalised features, as ``fidelity.cmmd``."""
    a = l2_normalize(as_feature_matrix(a, "a", min_rows=2), "a")
    b = l2_normalize(as_feature_matrix(b, "b", min_rows=2), "b")
    same_width(a, b, "a", "b")
    if not sigma > 0:
        raise GenBenchError(f"cmmd: sigma={sigma} must be positive")
    x, y = _tensor(a, device), _tensor(b, device)
    n, m = x.shape[0], y.shape[0]
    within_x = _gaussian_kernel_sum(x, x, sigma, True, chunk_rows) / (n * (n - 1))
    within_y = _gaussian_kernel_sum(y, y, sigma, True, chunk_rows) / (m * (m - 1))
    between = _gaussian_kernel_sum(x, y, sigma, False, chunk_rows) / (n * m)
    return float(1000.0 * (within_x + within_y - 2.0 * between))


def _polynomial_mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m, d = x.shape
    k_xx = (x @ x.T / d + 1.0) ** 3
    k_yy = (y @ y.T / d + 1.0) ** 3
    k_xy = (x @ y.T / d + 1.0) ** 3
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2.0 * k_xy.mean()


def kid(a, b, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0, device="cpu") -> dict[str, float]:
    """KID, as ``kid.kernel_inception_distance``: the same numpy-drawn subsets, kernels on ``device``."""
    a = as_feature_matrix(a, "a", min_rows=2)
    b = as_feature_matrix(b, "b", min_rows=2)
    same_width(a, b, "a", "b")
    if num_subsets < 1 or subset_size < 2:
        raise GenBenchError(f"kid: num_subsets={num_subsets} must be >= 1 and subset_size={subset_size} >= 2")
    m = min(a.shape[0], b.shape[0], subset_size)
    rng = np.random.default_rng(seed)
    x, y = _tensor(a, device), _tensor(b, device)
    values = []
    for _ in range(num_subsets):
        rows_a = torch.as_tensor(rng.choice(a.shape[0], m, replace=False), device=x.device)
        rows_b = torch.as_tensor(rng.choice(b.shape[0], m, replace=False), device=x.device)
        values.append(float(_polynomial_mmd2_unbiased(x[rows_a], y[rows_b])))
    return {"kid_mean": float(np.mean(values)), "kid_std": float(np.std(values))}
