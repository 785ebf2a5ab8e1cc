"""How well each training-free metric tracks the probe accuracy across external sets.

``metric_correlations`` correlates each training-free metric with the probe accuracy across
the results table's rows (Pearson, Spearman, Kendall), as in the paper's figure, each with a
percentile **cluster** bootstrap 95 % interval: a resample draws whole sets (a set: one way of
making a training set, the rows of one source, strategy and axes, over its shot counts and
seeds) with replacement, not rows, so the seeds of one set are not counted as independent
evidence. With one row per set it is the ordinary paired bootstrap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRAINING_FREE = [
    "cler",
    "cler_full_train",
    "cler_centroid",
    "cler_knn_zs",
    "fd",
    "fd_paper",
    "kid_mean",
    "clip_score_100",
    "clip_score_hessel",
    "clip_score_paper",
    "pad",
    "pad_dann",
    "cmmd",
    "prdc_precision",
    "prdc_recall",
    "prdc_density",
    "prdc_coverage",
    "vendi",
    "gen_recognised",
    "pack_recognised",
]


CORRELATIONS = ("pearson", "spearman", "kendall")
BOOTSTRAP_SAMPLES = 1000


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair: r = sum(xc yc) / sqrt(sum(xc^2) sum(yc^2)), with xc, yc
    the rows minus their means. x, y: (B, n) -> (B,)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    return (xc * yc).sum(axis=1) / np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair (scipy's default): sum over pairs i < j of
    sign(x_i - x_j) sign(y_i - y_j), divided by sqrt(#pairs untied in x * #pairs untied in y).
    x, y: (B, n) -> (B,); pairs are taken in chunks of rows to bound memory."""
    i, j = np.triu_indices(x.shape[1], k=1)
    rows_per_chunk = max(1, 4_000_000 // max(1, len(i)))
    out = np.empty(len(x))
    for start in range(0, len(x), rows_per_chunk):
        part = slice(start, start + rows_per_chunk)
        sx = np.sign(x[part][:, i] - x[part][:, j])
        sy = np.sign(y[part][:, i] - y[part][:, j])
        untied = np.count_nonzero(sx, axis=1) * np.count_nonzero(sy, axis=1)
        out[part] = (sx * sy).sum(axis=1) / np.sqrt(untied)
    return out


def correlation_rows(kind: str, x, y) -> np.ndarray:
    """Correlation coefficient ``kind`` (pearson, spearman: Pearson of average ranks, kendall:
    tau-b) of each row of x with the same row of y. x, y: (B, n) -> (B,). NaN for a row with
    fewer than 3 values or a constant x or y."""
    from scipy.stats import rankdata

    x, y = np.atleast_2d(np.asarray(x, dtype=np.float64)), np.atleast_2d(np.asarray(y, dtype=np.float64))
    defined = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=1) > 0) & (x.shape[1] >= 3)
    out = np.full(len(x), np.nan)
    if not defined.any():
        return out
    x, y = x[defined], y[defined]
    if kind == "spearman":
        x, y = rankdata(x, axis=1), rankdata(y, axis=1)
    rows = {"pearson": _pearson_rows, "spearman": _pearson_rows, "kendall": _kendall_rows}[kind]
    out[defined] = np.clip(rows(x, y), -1.0, 1.0)
    return out


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson's r of the sample that holds row i of (x, y) w[b, i] times, for each b.
    x, y: (B, n) or (n,); w: (B, n) non-negative counts -> (B,)."""
    total = w.sum(axis=1, keepdims=True)
    xc = x - (w * x).sum(axis=1, keepdims=True) / total
    yc = y - (w * y).sum(axis=1, keepdims=True) / total
    return (w * xc * yc).sum(axis=1) / np.sqrt((w * xc * xc).sum(axis=1) * (w * yc * yc).sum(axis=1))


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of x's values in the sample that holds x[i] w[b, i] times:
    rank_i = sum_j w_j [x_j < x_i] + (sum_j w_j [x_j == x_i] + 1) / 2. x: (n,), w: (B, n)."""
    below = (x[None, :] < x[:, None]).astype(np.float64)  # [i, j]: x_j < x_i
    tied = (x[None, :] == x[:, None]).astype(np.float64)
    return w @ below.T + (w @ tied.T + 1.0) / 2.0


def _weighted_kendall(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of the sample that holds row i w[b, i] times: copies of one row are tied
    in x and y, so only pairs of distinct rows count, each w_i w_j times:
    sum_{i<j} w_i w_j sign(dx) sign(dy) / sqrt(sum_{i<j} w_i w_j [dx != 0] * sum_{i<j} w_i w_j [dy != 0])."""
    i, j = np.triu_indices(len(x), k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    out = np.empty(len(w))
    rows_per_chunk = max(1, 4_000_000 // max(1, len(i)))
    for start in range(0, len(w), rows_per_chunk):
        pair = w[start : start + rows_per_chunk, i] * w[start : start + rows_per_chunk, j]
        untied = (pair @ (sx != 0)) * (pair @ (sy != 0))
        out[start : start + rows_per_chunk] = (pair @ (sx * sy)) / np.sqrt(untied)
    return out


def weighted_correlation_rows(kind: str, x, y, w) -> np.ndarray:
    """``correlation_rows`` of the samples that hold row i of (x, y) w[b, i] times (a
    bootstrap resample as counts). x, y: (n,); w: (B, n) counts -> (B,); NaN where the sample
    has fewer than 3 values or a constant x or y. Equal to ``correlation_rows`` on the samples
    written out row by row (``np.repeat``)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    present = w > 0
    span = lambda v: np.where(present, v, -np.inf).max(axis=1) - np.where(present, v, np.inf).min(axis=1)  # noqa: E731
    defined = (span(x) > 0) & (span(y) > 0) & (w.sum(axis=1) >= 3)
    out = np.full(len(w), np.nan)
    if not defined.any():
        return out
    wd = w[defined]
    if kind == "pearson":
        values = _weighted_pearson(x, y, wd)
    elif kind == "spearman":
        values = _weighted_pearson(_weighted_ranks(x, wd), _weighted_ranks(y, wd), wd)
    else:
        values = _weighted_kendall(x, y, wd)
    out[defined] = np.clip(values, -1.0, 1.0)
    return out


def bootstrap_interval(
    kind: str, x, y, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, clusters=None
) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of a correlation coefficient: the 2.5th and 97.5th
    percentiles of the coefficient over ``samples`` resamples (seeded). A resample draws G of
    the G ``clusters`` (one id per row; default: every row its own) with replacement and keeps
    every row of each drawn cluster: the cluster bootstrap. Resamples where the coefficient is
    undefined (a constant column) are skipped; NaN when fewer than half remain."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return np.nan, np.nan
    ids = np.arange(len(x)) if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1]
    groups = int(ids.max()) + 1
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, groups, (samples, groups))  # row b: the clusters of the b-th resample
    counts = np.stack([np.bincount(row, minlength=groups) for row in picks])  # (B, G) times drawn
    values = weighted_correlation_rows(kind, x, y, counts[:, ids.ravel()])
    values = values[np.isfinite(values)]
    if len(values) < samples / 2:
        return np.nan, np.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def set_ids(table: pd.DataFrame) -> np.ndarray:
    """The bootstrap's cluster of each row: its set (the line columns of
    ``genbench.report.scaling``: dataset, source, strategy, axes, encoder, whichever the table
    has); every row its own cluster when the table has none of them."""
    from genbench.report.scaling import line_columns

    columns = [c for c in line_columns(table) if c in table]
    if not columns:
        return np.arange(len(table))
    keys = ["\x1f".join(map(str, row)) for row in table[columns].itertuples(index=False)]
    return pd.factorize(np.asarray(keys, dtype=object), sort=True)[0]


def metric_correlations(table: pd.DataFrame, target: str = "linear_probe") -> pd.DataFrame:
    """Pearson, Spearman and Kendall correlation of each training-free metric with ``target``
    over the table's rows, each with its cluster bootstrap 95 % interval (``<kind>_low``,
    ``<kind>_high``; clusters: ``set_ids``).

    Computed over the rows that have both values; ``n`` is that count and ``sets`` the number
    of sets they belong to. With fewer than 3 rows, or a constant column, the coefficients are
    NaN.
    """
    out = []
    clusters = set_ids(table)
    for metric in [m for m in TRAINING_FREE if m in table]:
        both = table[metric].notna() & table[target].notna() if target in table else pd.Series(False, table.index)
        mask = both.to_numpy()
        x, y = table.loc[mask, metric].to_numpy(dtype=float), table.loc[mask, target].to_numpy(dtype=float)
        ids = clusters[mask]
        row = {"metric": metric, "target": target, "n": int(mask.sum()), "sets": len(set(ids.tolist()))}
        for kind in CORRELATIONS:
            row[kind] = float(correlation_rows(kind, x, y)[0])
            row[f"{kind}_low"], row[f"{kind}_high"] = (
                bootstrap_interval(kind, x, y, clusters=ids) if np.isfinite(row[kind]) else (np.nan, np.nan)
            )
        out.append(row)
    columns = ["metric", "target", "n", "sets"] + [f"{k}{s}" for k in CORRELATIONS for s in ("", "_low", "_high")]
    return pd.DataFrame(out, columns=columns)


POOLED = "all"  # the generator column's value for the correlations over every set


def _generators(table: pd.DataFrame) -> list[str]:
    """The generator axis's names in ``table`` (none when the axis is not in use)."""
    if "generator" not in table:
        return []
    return sorted({str(g) for g in table["generator"]} - {"-", "nan", ""})


def _shot_counts(table: pd.DataFrame) -> list[int]:
    return sorted({int(k) for k in table["shots"].dropna()}) if "shots" in table else []


def correlation_table(table: pd.DataFrame, target: str = "linear_probe") -> pd.DataFrame:
    """``metric_correlations`` pooled over every row (every set, shot count and seed), and:

    - when the table has the generator axis (two or more generators), per generator too: over
      that generator's sets with the sets no generator made (original, retrieved), in a
      ``generator`` column (``all``: every set);
    - when it has two or more shot counts, per shot count too (over every set), in a ``shots``
      column (``all``: every shot count).

    Without either, the table is ``metric_correlations``' alone."""
    pooled = metric_correlations(table, target)
    names, shots = _generators(table), _shot_counts(table)
    if len(names) < 2 and len(shots) < 2:
        return pooled
    groups = [pooled.assign(generator=POOLED, shots=POOLED)]
    for name in names if len(names) > 1 else []:
        rows = table[table["generator"].astype(str).isin([name, "-"])]
        groups.append(metric_correlations(rows, target).assign(generator=name, shots=POOLED))
    for k in shots if len(shots) > 1 else []:
        groups.append(metric_correlations(table[table["shots"] == k], target).assign(generator=POOLED, shots=str(k)))
    out = pd.concat(groups, ignore_index=True)
    first = [
        c for c in ("generator", "shots") if c == "shots" and len(shots) > 1 or c == "generator" and len(names) > 1
    ]
    out = out.drop(columns=[c for c in ("generator", "shots") if c not in first])
    return out[first + [c for c in out.columns if c not in first]]


def pooled_rows(correlations: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``correlation_table`` computed over every row of the table."""
    for column in ("generator", "shots"):
        if column in correlations:
            correlations = correlations[correlations[column].astype(str) == POOLED]
    return correlations
