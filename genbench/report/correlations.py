"""How well each training-free metric tracks the probe accuracy across external sets.

``metric_correlations`` correlates each training-free metric with the probe accuracy across
the results table's rows (Pearson, Spearman, Kendall), as in the paper's figure, each with a
percentile bootstrap 95 % interval.
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


def bootstrap_interval(kind: str, x, y, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of a correlation coefficient: the 2.5th and 97.5th
    percentiles of the coefficient over ``samples`` resamples of the (x, y) pairs with
    replacement (seeded). Resamples where it is undefined (a constant column) are skipped;
    NaN when fewer than half remain."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(x), (samples, len(x)))  # row b: the b-th resample's indices
    values = correlation_rows(kind, x[picks], y[picks])
    values = values[np.isfinite(values)]
    if len(values) < samples / 2:
        return np.nan, np.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def metric_correlations(table: pd.DataFrame, target: str = "linear_probe") -> pd.DataFrame:
    """Pearson, Spearman and Kendall correlation of each training-free metric with ``target``,
    each with its bootstrap 95 % interval (``<kind>_low``, ``<kind>_high``).

    Computed over the external sets that have both values; ``n`` is that count. With fewer
    than 3 sets, or a constant column, the coefficients are NaN.
    """
    out = []
    for metric in [m for m in TRAINING_FREE if m in table]:
        pair = table[[metric, target]].dropna() if target in table else pd.DataFrame(columns=[metric, target])
        x, y = pair[metric].to_numpy(dtype=float), pair[target].to_numpy(dtype=float)
        row = {"metric": metric, "target": target, "n": len(pair)}
        for kind in CORRELATIONS:
            row[kind] = float(correlation_rows(kind, x, y)[0])
            row[f"{kind}_low"], row[f"{kind}_high"] = (
                bootstrap_interval(kind, x, y) if np.isfinite(row[kind]) else (np.nan, np.nan)
            )
        out.append(row)
    columns = ["metric", "target", "n"] + [f"{k}{s}" for k in CORRELATIONS for s in ("", "_low", "_high")]
    return pd.DataFrame(out, columns=columns)


POOLED = "all"  # the generator column's value for the correlations over every set


def _generators(table: pd.DataFrame) -> list[str]:
    """The generator axis's names in ``table`` (none when the axis is not in use)."""
    if "generator" not in table:
        return []
    return sorted({str(g) for g in table["generator"]} - {"-", "nan", ""})


def correlation_table(table: pd.DataFrame, target: str = "linear_probe") -> pd.DataFrame:
    """``metric_correlations`` over every set, and, when the table has the generator axis
    (two or more generators), per generator too: over that generator's sets with the sets no
    generator made (original, retrieved). A ``generator`` column names each group
    (``all`` for every set); without the axis the table is ``metric_correlations``' alone."""
    pooled = metric_correlations(table, target)
    names = _generators(table)
    if len(names) < 2:
        return pooled
    groups = [pooled.assign(generator=POOLED)]
    for name in names:
        rows = table[table["generator"].astype(str).isin([name, "-"])]
        groups.append(metric_correlations(rows, target).assign(generator=name))
    out = pd.concat(groups, ignore_index=True)
    return out[["generator"] + [c for c in out.columns if c != "generator"]]


def pooled_rows(correlations: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``correlation_table`` computed over every set."""
    if "generator" not in correlations:
        return correlations
    return correlations[correlations["generator"] == POOLED]
