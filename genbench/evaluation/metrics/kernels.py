"""The quadratic set metrics (PRDC, CMMD, KID, Vendi): one torch implementation each, on any
device, with PRDC, CMMD and KID read from one chunked pass over the three Gram blocks.

For external features E (M x d) and real features R (N x d), every pairwise quantity these
metrics need is a function of a Gram entry and two row norms:

- squared distance ``|e|^2 + |r|^2 - 2 e.r`` (PRDC's k-NN balls),
- cosine ``e.r / (|e| |r|)``, so the squared distance of L2-normalised rows is ``2 - 2 cos``
  (CMMD's Gaussian kernel ``exp(-(2 - 2 cos) / (2 sigma^2))``),
- ``(e.r / d + 1)^3`` (KID's cubic polynomial kernel).

``set_metrics`` therefore computes each of the blocks R R^T, E E^T and E R^T once, a tile of
rows x columns at a time (``TILE``: small enough for the element-wise work to stay in cache,
and memory bounded whatever the set sizes), in that order: the two within-set blocks give
PRDC's radii (a running k+1 nearest per row across the column tiles) before the cross block
needs them. KID's subsets are drawn with numpy's generator
exactly as the reference does (for each subset, m rows of E, then m rows of R, without
replacement); each subset's kernel sums are read off the same blocks through 0/1 indicator
matrices. Vendi only needs the d x d (or n x n) Gram of one set. Float64 by default, so the
numbers equal the numpy references of ``tests/reference_metrics.py`` to round-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics._checks import as_feature_matrix, same_width
from genbench.evaluation.metrics.cler import l2_normalize

TILE = (128, 4096)  # Gram rows x columns computed at a time: 4 MiB in float64, so the element-wise
# work on a tile runs in cache; memory is bounded by a few tiles whatever the set sizes
KERNEL_METRICS = ("prdc", "cmmd", "kid")  # the metrics of the shared Gram pass


def _tensor(x, device, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)


def _chunks(n: int, chunk_rows: int) -> list[slice]:
    return [slice(start, min(start + chunk_rows, n)) for start in range(0, n, chunk_rows)]


@dataclass
class _Set:
    """One feature set on the device: rows, squared norms, norms."""

    x: torch.Tensor
    sq: torch.Tensor = field(init=False)
    norm: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.sq = (self.x * self.x).sum(1)
        self.norm = self.sq.sqrt()


@dataclass
class _Requests:
    prdc_k: int | None = None  # PRDC's k
    cmmd_sigma: float | None = None
    kid_subsets: tuple | None = None  # (indicators of E (M x S), indicators of R (N x S), m)


def _tiles(n_rows: int, n_cols: int, tile: tuple[int, int]):
    """(rows, list of column slices) covering an n_rows x n_cols block in tiles of ``tile``."""
    columns = _chunks(n_cols, tile[1])
    return [(rows, columns) for rows in _chunks(n_rows, tile[0])]


def _diagonal(rows: slice, cols: slice, device):
    """Indices, within the tile (rows, cols) of a within-set block, of its self-pairs."""
    start, stop = max(rows.start, cols.start), min(rows.stop, cols.stop)
    index = torch.arange(start, max(start, stop), device=device)
    return index - rows.start, index - cols.start


def _smallest(values: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` smallest of each row, ascending."""
    return torch.topk(values, min(count, values.shape[1]), dim=1, largest=False).values


def _within_block(s: _Set, request: _Requests, side: int, acc: dict, name: str) -> None:
    """The block S S^T, symmetric, in ``side`` x ``side`` tiles: each pair of row chunks (a <= b)
    is multiplied once, and a
    tile off the diagonal stands for itself and its transpose (twice in the CMMD and KID sums;
    its rows' and its columns' nearest neighbours). Gives PRDC's radii (a running k+1 smallest
    per row) and the within-set CMMD and KID sums, self-pairs left out."""
    x, dtype, device = s.x, s.x.dtype, s.x.device
    n, k = x.shape[0], request.prdc_k
    nearest = torch.full((n, k + 1), torch.inf, dtype=dtype, device=device) if k else None
    cmmd_total = torch.zeros((), dtype=dtype, device=device)
    indicator = request.kid_subsets[0 if name == "e" else 1] if request.kid_subsets else None
    kid_totals = torch.zeros(indicator.shape[1], dtype=dtype, device=device) if indicator is not None else None
    chunks = _chunks(n, side)
    for i, rows in enumerate(chunks):
        for cols in chunks[i:]:
            gram = x[rows] @ x[cols].T
            twice = 1.0 if cols == rows else 2.0  # a tile off the diagonal, and its transpose
            self_pairs = _diagonal(rows, cols, device)
            if request.cmmd_sigma is not None:
                kernel = _gaussian(gram, s.norm[rows], s.norm[cols], request.cmmd_sigma)
                kernel[self_pairs] = 0.0
                cmmd_total += twice * kernel.sum()
            if indicator is not None:
                kernel = _cubic(gram, x.shape[1])
                kernel[self_pairs] = 0.0
                kid_totals += twice * (indicator[rows] * (kernel @ indicator[cols])).sum(0)
            if k:  # row i ranks the others by |b_j|^2 - 2 a_i.b_j (its own |a_i|^2 is fixed)
                by_row = gram.mul(-2.0).add_(s.sq[None, cols])
                by_row[self_pairs] = -torch.inf  # self first
                nearest[rows] = _smallest(torch.cat([nearest[rows], _smallest(by_row, k + 1)], dim=1), k + 1)
                if cols != rows:  # the transpose tile: the columns' nearest among these rows
                    by_col = gram.mul_(-2.0).add_(s.sq[rows, None])
                    column_best = _smallest(by_col.T, k + 1)
                    nearest[cols] = _smallest(torch.cat([nearest[cols], column_best], dim=1), k + 1)
    radii = (nearest[:, -1] + s.sq).clamp_min_(0.0).sqrt_() if k else None
    acc[f"radii_{name}"], acc[f"cmmd_{name}{name}"], acc[f"kid_{name}{name}"] = radii, cmmd_total, kid_totals


def _cross_block(e: _Set, r: _Set, request: _Requests, tile: tuple[int, int], acc: dict) -> None:
    """The block E R^T, tile by tile: PRDC's ball counts, CMMD's and KID's cross sums."""
    m, n = e.x.shape[0], r.x.shape[0]
    dtype, device = e.x.dtype, e.x.device
    if request.prdc_k:
        balls = acc["balls_holding_e"] = torch.zeros(m, dtype=dtype, device=device)
        in_ball = acc["r_in_e_ball"] = torch.zeros(n, dtype=torch.bool, device=device)
        nearest_sq = torch.full((n,), torch.inf, dtype=dtype, device=device)
        real_radii_sq, external_radii_sq = acc["radii_r"] ** 2, acc["radii_e"] ** 2
    acc["cmmd_er"] = torch.zeros((), dtype=dtype, device=device)
    if request.kid_subsets:
        e_ind, r_ind, _ = request.kid_subsets
        acc["kid_er"] = torch.zeros(e_ind.shape[1], dtype=dtype, device=device)
    for rows, column_tiles in _tiles(m, n, tile):
        kid_rows = (
            torch.zeros(rows.stop - rows.start, e_ind.shape[1], dtype=dtype, device=device)
            if (request.kid_subsets)
            else None
        )
        for cols in column_tiles:
            gram = e.x[rows] @ r.x[cols].T
            if request.cmmd_sigma is not None:
                acc["cmmd_er"] += _gaussian(gram, e.norm[rows], r.norm[cols], request.cmmd_sigma).sum()
            if request.kid_subsets:
                kid_rows += _cubic(gram, e.x.shape[1]) @ r_ind[cols]
            if request.prdc_k:  # last: squared distances in place (compared with squared radii)
                sq = gram.mul_(-2.0).add_(e.sq[rows, None]).add_(r.sq[None, cols])
                balls[rows] += (sq <= real_radii_sq[None, cols]).sum(1).to(dtype)
                in_ball[cols] |= (sq <= external_radii_sq[rows, None]).any(0)
                nearest_sq[cols] = torch.minimum(nearest_sq[cols], sq.min(0).values)
        if request.kid_subsets:
            acc["kid_er"] += (e_ind[rows] * kid_rows).sum(0)
    if request.prdc_k:
        acc["nearest_e"] = nearest_sq.clamp_min(0.0).sqrt()


def _gaussian(gram: torch.Tensor, norm_rows: torch.Tensor, norm_cols: torch.Tensor, sigma: float) -> torch.Tensor:
    """exp(-||a - b||^2 / (2 sigma^2)) of L2-normalised rows: with ||a - b||^2 = 2 - 2 cos(a, b),
    exp((cos - 1) / sigma^2) (a new tensor)."""
    kernel = gram * (1.0 / (sigma**2 * norm_cols))[None, :]
    return kernel.mul_((1.0 / norm_rows)[:, None]).sub_(1.0 / sigma**2).exp_()


def _cubic(gram: torch.Tensor, dim: int) -> torch.Tensor:
    """KID's kernel (a.b / d + 1)^3 (a new tensor)."""
    return (gram / dim).add_(1.0).pow_(3)


def _kid_subsets(m_rows: int, n_rows: int, num_subsets: int, subset_size: int, seed: int, device) -> tuple:
    """0/1 indicators (M x S, N x S) of KID's subsets, drawn as the reference draws them."""
    size = min(m_rows, n_rows, subset_size)
    rng = np.random.default_rng(seed)
    e_ind, r_ind = np.zeros((m_rows, num_subsets)), np.zeros((n_rows, num_subsets))
    for s in range(num_subsets):
        e_ind[rng.choice(m_rows, size, replace=False), s] = 1.0
        r_ind[rng.choice(n_rows, size, replace=False), s] = 1.0
    return _tensor(e_ind, device), _tensor(r_ind, device), size


def _check_params(prdc_k, cmmd_sigma, kid_params) -> None:
    if prdc_k is not None and prdc_k < 1:
        raise GenBenchError(f"prdc: k={prdc_k} must be >= 1")
    if cmmd_sigma is not None and not cmmd_sigma > 0:
        raise GenBenchError(f"cmmd: sigma={cmmd_sigma} must be positive")
    if kid_params is not None:
        num_subsets, subset_size = kid_params.get("num_subsets", 100), kid_params.get("subset_size", 1000)
        if num_subsets < 1 or subset_size < 2:
            raise GenBenchError(f"kid: num_subsets={num_subsets} must be >= 1 and subset_size={subset_size} >= 2")


def set_metrics(
    external,
    real,
    *,
    prdc_k: int | None = None,
    cmmd_sigma: float | None = None,
    kid_params: dict | None = None,
    device="cpu",
    tile: tuple[int, int] = TILE,
) -> dict[str, float]:
    """PRDC (``prdc_k``), CMMD (``cmmd_sigma``) and KID (``kid_params``: num_subsets,
    subset_size, seed) of ``external`` (M x d) against ``real`` (N x d), those requested, from
    one pass over the Gram blocks (module docstring), ``tile`` Gram entries at a time. Returns ``prdc_precision``,
    ``prdc_recall``, ``prdc_density``, ``prdc_coverage`` (external as PRDC's fake set),
    ``cmmd`` and ``kid_mean``, ``kid_std``."""
    _check_params(prdc_k, cmmd_sigma, kid_params)
    min_rows = (prdc_k + 1) if prdc_k else 2
    external = as_feature_matrix(external, "external", min_rows=min_rows)
    real = as_feature_matrix(real, "real", min_rows=min_rows)
    same_width(external, real, "external", "real")
    if cmmd_sigma is not None:  # CMMD compares directions: a row of norm zero has none (named)
        l2_normalize(external, "external")
        l2_normalize(real, "real")
    e, r = _Set(_tensor(external, device)), _Set(_tensor(real, device))
    kid_subsets = None
    if kid_params is not None:
        p = {"num_subsets": 100, "subset_size": 1000, "seed": 0, **kid_params}
        kid_subsets = _kid_subsets(e.x.shape[0], r.x.shape[0], p["num_subsets"], p["subset_size"], p["seed"], device)
    request = _Requests(prdc_k, cmmd_sigma, kid_subsets)
    acc: dict = {}
    side = max(1, math.isqrt(tile[0] * tile[1]))  # square tiles of as many entries
    _within_block(r, request, side, acc, "r")
    _within_block(e, request, side, acc, "e")
    _cross_block(e, r, request, tile, acc)
    return _results(acc, request, e.x.shape[0], r.x.shape[0])


def _results(acc: dict, request: _Requests, m: int, n: int) -> dict[str, float]:
    out = {}
    if request.prdc_k:
        balls = acc["balls_holding_e"]
        out.update(
            prdc_precision=float((balls > 0).double().mean()),
            prdc_recall=float(acc["r_in_e_ball"].double().mean()),
            prdc_density=float(balls.sum() / (request.prdc_k * m)),
            prdc_coverage=float((acc["nearest_e"] <= acc["radii_r"]).double().mean()),
        )
    if request.cmmd_sigma is not None:
        mmd = acc["cmmd_ee"] / (m * (m - 1)) + acc["cmmd_rr"] / (n * (n - 1)) - 2.0 * acc["cmmd_er"] / (m * n)
        out["cmmd"] = float(1000.0 * mmd)  # within-set sums without their diagonal: unbiased
    if request.kid_subsets:
        size = request.kid_subsets[2]
        values = (acc["kid_ee"] + acc["kid_rr"]) / (size * (size - 1)) - 2.0 * acc["kid_er"] / size**2
        values = values.cpu().numpy()
        out.update(kid_mean=float(np.mean(values)), kid_std=float(np.std(values)))
    return out


def precision_recall_density_coverage(real, fake, k: int = 5, device="cpu", tile: tuple[int, int] = TILE) -> dict:
    """PRDC (Naeem et al. 2020) with Euclidean k-NN balls B(r_i, NND_k(r_i)):
    precision = mean_j [fake_j in some real ball]; recall = mean_i [real_i in some fake ball];
    density = (1 / (k M)) sum_j #{real balls holding fake_j};
    coverage = mean_i [the nearest fake to real_i lies in real_i's ball]."""
    values = set_metrics(fake, real, prdc_k=k, device=device, tile=tile)
    return {key.removeprefix("prdc_"): value for key, value in values.items()}


def cmmd(a, b, sigma: float = 10.0, device="cpu", tile: tuple[int, int] = TILE) -> float:
    """CMMD (Jayasumana et al. 2024): 1000 * unbiased MMD^2 with the Gaussian kernel
    k(x, y) = exp(-||x - y||^2 / (2 sigma^2)) on L2-normalised features:
    1000 * [sum_{i!=j} k(a_i,a_j)/(n(n-1)) + sum_{i!=j} k(b_i,b_j)/(m(m-1)) - 2 mean k(a_i,b_j)].
    The factor 1000 is the scale the CMMD paper reports; its reference code uses the biased
    (V-statistic) estimate, so values differ from it by O(1/n)."""
    return set_metrics(a, b, cmmd_sigma=sigma, device=device, tile=tile)["cmmd"]


def kernel_inception_distance(
    a, b, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0, device="cpu", tile: tuple[int, int] = TILE
) -> dict[str, float]:
    """KID (Binkowski et al. 2018): mean and std (ddof=0) over ``num_subsets`` draws of the
    unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3 between m = min(N1, N2,
    subset_size) rows of a and m rows of b, each drawn without replacement by
    numpy.random.default_rng(seed):
    sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2."""
    kid = {"num_subsets": num_subsets, "subset_size": subset_size, "seed": seed}
    return set_metrics(a, b, kid_params=kid, device=device, tile=tile)


def vendi_score(feats, device="cpu") -> float:
    """Vendi score (Friedman & Dieng 2023): exp(-sum_k lambda_k log lambda_k), lambda the
    eigenvalues of K / n, K_ij = x_i . x_j the cosine similarity of L2-normalised features.
    K / n has the same non-zero eigenvalues as X^T X / n, so the smaller Gram form is used.
    Ranges from 1 (all identical) to n (all orthogonal)."""
    x = _tensor(l2_normalize(feats, "feats"), device)
    n, d = x.shape
    gram = x @ x.T if n <= d else x.T @ x
    eigenvalues = torch.linalg.eigvalsh(gram / n).clamp_min(0.0)
    eigenvalues = eigenvalues[eigenvalues > 0]
    return float(torch.exp(-(eigenvalues * eigenvalues.log()).sum()))
