"""Results tables, metric-vs-accuracy correlations and plots, from the evaluation rows.

``collect_rows`` reads every evaluation's ``metrics.csv`` (tidy: one metric per row);
``results_table`` pivots them to one row per (dataset, source, strategy, shots, seed, encoder);
``metric_correlations`` correlates each training-free metric with the probe accuracy across
those rows (Pearson, Spearman, Kendall), as in the paper's figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genbench.core.errors import GenBenchError
from genbench.core.protocol import headline
from genbench.evaluation.rows import ROW_COLUMNS, SET_COLUMNS

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


def collect_rows(csv_paths: list[str | Path]) -> pd.DataFrame:
    """All tidy metric rows of the given metrics.csv files, with the fixed columns."""
    frames = [pd.read_csv(p, keep_default_na=False) for p in csv_paths]
    if not frames:
        raise GenBenchError("no evaluation results to collect")
    df = pd.concat(frames, ignore_index=True)
    missing = set(ROW_COLUMNS) - set(df.columns)
    if missing:
        raise GenBenchError(f"metrics tables lack columns {sorted(missing)}")
    df["value"] = df["value"].astype(float)
    return df[list(ROW_COLUMNS)]


def probe_column(protocol: str) -> str:
    """The linear-probe column a protocol correlates the training-free metrics with."""
    return "linear_probe_elevater" if protocol == "paper" else "linear_probe"


def results_table(rows: pd.DataFrame, protocol: str = "honest") -> pd.DataFrame:
    """One row per external set; one column per metric (zero_shot from the probe stage wins),
    the protocol's headline columns first (``genbench.core.protocol.headline``)."""
    rows = rows.copy()
    rows.loc[(rows.metric == "zero_shot") & (rows.stage == "zeroshot_metric"), "metric"] = "zero_shot_text"
    wide = rows.pivot_table(index=list(SET_COLUMNS), columns="metric", values="value", aggfunc="first")
    wide = wide.reset_index()
    wide.columns.name = None
    if "zero_shot" not in wide and "zero_shot_text" in wide:
        wide["zero_shot"] = wide["zero_shot_text"]
    wide = wide.drop(columns=[c for c in ["zero_shot_text"] if c in wide])
    first = [c for c in [*SET_COLUMNS, *headline(protocol)] if c in wide]
    return wide[first + sorted(c for c in wide.columns if c not in first)]


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


def plot_correlations(
    table: pd.DataFrame, correlations: pd.DataFrame, path: str | Path, target: str = "linear_probe"
) -> None:
    """Scatter plots of CLER, FD, CLIP score and PAD against the probe metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("cler", "fd", "clip_score_100", "pad") if m in table]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4 * max(1, len(metrics)), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for source, group in table.groupby("source"):
            ax.scatter(group[metric], group[target], label=source, s=24)
        row = correlations[correlations.metric == metric]
        r = row["pearson"].iloc[0] if len(row) else np.nan
        ax.set_title(f"{metric} (Pearson r = {r:.2f})", fontsize=9)
        ax.set_xlabel(metric)
        ax.set_ylabel(target)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gain(table: pd.DataFrame, path: str | Path) -> None:
    """Bar chart per dataset of the best gain over zero-shot for each source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = table.groupby(["dataset", "source"])["gain"].max().unstack("source")
    ax = best.plot.bar(figsize=(max(4, 0.6 * len(best) + 3), 3.6))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("gain over zero-shot (points)")
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=110)
    plt.close(ax.figure)


def image_grid(
    index_path: str | Path,
    path: str | Path,
    *,
    per_class: int = 4,
    max_classes: int = 10,
    class_names: list[str] | None = None,
    title: str = "",
) -> None:
    """A grid of ``per_class`` images for the first ``max_classes`` classes of an image index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genbench.data.imageset import ImageSetReader

    reader = ImageSetReader(index_path)
    by_class: dict[int, list[int]] = {}
    for i, record in enumerate(reader.records):
        label = record["label"] if isinstance(record["label"], int) else record["label"][0]
        by_class.setdefault(label, []).append(i)
    classes = sorted(by_class)[:max_classes]
    fig, axes = plt.subplots(len(classes), per_class, figsize=(1.2 * per_class, 1.2 * len(classes)), squeeze=False)
    for row, label in zip(axes, classes):
        for col, ax in enumerate(row):
            ax.axis("off")
            if col < len(by_class[label]):
                ax.imshow(reader.load(by_class[label][col]))
        name = class_names[label] if class_names else str(label)
        row[0].set_title(name[:18], fontsize=6, loc="left")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


STUDY_METRICS = ("cler", "fd", "clip_score_100", "pad", "gen_recognised")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _first(table: pd.DataFrame, source: str, column: str, strategy: str | None = None) -> float:
    rows = table[(table.source == source) & ((table.strategy == strategy) if strategy else True)]
    return float(rows[column].iloc[0]) if len(rows) and column in rows else np.nan


TRAINING_TARGET_SECONDS = 300


def job_seconds(benchmark_tsv: str | Path) -> float | None:
    """Wall seconds of a finished job from its Snakemake ``benchmark:`` file (column ``s``);
    None when the job has not run in this results folder."""
    path = Path(benchmark_tsv)
    if not path.is_file():
        return None
    table = pd.read_csv(path, sep="\t")
    return float(table["s"].iloc[-1]) if len(table) else None


def job_window(log_path: str | Path) -> tuple[float, float] | None:
    """(start, end) of a job in seconds since the epoch: the first timestamp its log has (the
    job's first line) and the log's last modification; None without a log."""
    import datetime

    path = Path(log_path)
    if not path.is_file():
        return None
    first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
    try:
        start = datetime.datetime.strptime(first[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
    except ValueError:
        return None
    return start, path.stat().st_mtime


def training_times(jobs: list[dict]) -> dict:
    """How long the training stages took: ``jobs`` has one ``{"stage", "benchmark", "log"}``
    per training artifact. Returns ``{"per_stage": {stage: s}, "total": s, "elapsed": s}``:
    elapsed from the first start to the last end (stages run side by side), total the sum of
    their job times; None values when a job's files are missing."""
    seconds = {job["stage"]: job_seconds(job["benchmark"]) for job in jobs}
    windows = [job_window(job["log"]) for job in jobs]
    complete = jobs and all(v is not None for v in seconds.values()) and all(windows)
    return {
        "per_stage": seconds,
        "total": sum(seconds.values()) if complete else None,
        "elapsed": max(w[1] for w in windows) - min(w[0] for w in windows) if complete else None,
    }


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:02.0f}s"


def training_finding(times: dict) -> list[str]:
    """The target line for the training stages (elapsed <= 5 minutes), when they ran here."""
    if times["elapsed"] is None:
        return []
    stages = ", ".join(f"{stage} {_minutes(s)}" for stage, s in times["per_stage"].items())
    return [
        f"{_verdict(times['elapsed'] <= TRAINING_TARGET_SECONDS)} training stages took {_minutes(times['elapsed'])} "
        f"from the first start to the last end (target <= {TRAINING_TARGET_SECONDS // 60} minutes); "
        f"{_minutes(times['total'])} of job time in all ({stages})"
    ]


def study_findings(
    table: pd.DataFrame, correlations: pd.DataFrame, probe: str = "linear_probe", training: dict | None = None
) -> list[str]:
    """The demo's targets and findings, one line each, from the results table (first seed and
    shot count per source), the correlations and the training times (``training_times``):
    what the README's demo section reports."""
    zero_shot = _first(table, "original", "zero_shot")
    original = _first(table, "original", probe)
    shots = _first(table, "original", "shots")
    recognised = _first(table, "generated", "gen_recognised", "simple_template")
    external = table[table.source.isin(["generated", "retrieval"])]
    columns = [c for c in STUDY_METRICS if c in external]
    constant = [c for c in columns if external[c].nunique(dropna=True) <= 1]
    missing = [c for c in columns if external[c].isna().any()]
    lines = [
        f"{_verdict(zero_shot >= 30 and zero_shot < original)} zero-shot {zero_shot:.1f} % "
        f"(target >= 30 % and below the {f'{shots:.0f}-shot ' if np.isfinite(shots) else ''}original probe, "
        f"{original:.1f} %)",
        f"{_verdict(recognised >= 60)} gen_recognised for simple_template {recognised:.1f} % (target >= 60 %)",
        f"{_verdict(not constant and not missing)} metric columns over generated and retrieved sets: "
        f"constant {constant or 'none'}, NaN {missing or 'none'}",
    ]
    lines += training_finding(training) if training else []
    for metric in ("cler", "fd", "clip_score_100", "pad"):
        row = correlations[correlations.metric == metric]
        if len(row):
            r = row.iloc[0]
            lines.append(
                f"finding: {metric} vs {probe} over {int(r.n)} sets: Pearson {r.pearson:.2f} "
                f"[{r.pearson_low:.2f}, {r.pearson_high:.2f}], Spearman {r.spearman:.2f} "
                f"[{r.spearman_low:.2f}, {r.spearman_high:.2f}], Kendall {r.kendall:.2f} "
                f"[{r.kendall_low:.2f}, {r.kendall_high:.2f}]"
            )
    ti, simple = _first(table, "generated", probe, "ti_original"), _first(table, "generated", probe, "simple_template")
    if np.isfinite(ti) and np.isfinite(simple):
        lines.append(f"finding: {probe} ti_original {ti:.1f} % vs simple_template {simple:.1f} %")
    return lines
