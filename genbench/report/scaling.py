"""Scaling curves and break-even points: the probe against images per class, over seeds.

A *line* is one way of making a training set: the results table's set columns without
``shots`` and ``seed`` (dataset, source, strategy, every axis in use, encoder). Its curve has,
at each shot count K, the mean, the standard deviation and the standard error of a value over
the seeds evaluated at K.

Break-even (``break_even_table``): for each generated line of a dataset and each reference (the
retrieved sets, the originals), the smallest K at which the generated line **matches** the
reference: its mean over seeds is within one standard error of the reference's mean, or above
it, ``mean_gen >= mean_ref - se_ref`` with ``se_ref = sd_ref / sqrt(n_ref)`` (0 with one seed).
Only shot counts both lines were evaluated at count; "never" when none matches.

A combined set (K originals plus K generated images a class) is shown as its gain over the K
originals alone (``combined_gain``): the mean over seeds of ``value(combined, seed) -
value(original, seed)``, paired by seed, with its standard error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NEVER = "never"
REFERENCE_SOURCES = ("retrieval", "original")


def line_columns(table: pd.DataFrame) -> list[str]:
    """The columns that name a line: the set columns other than ``shots`` and ``seed``."""
    from genbench.report.tables import set_columns

    return [c for c in set_columns(table) if c not in ("shots", "seed")]


def scaling_table(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per line and shot count K: ``n`` seeds, ``mean``, ``sd`` (ddof 1; 0 with one seed) and
    ``se`` = sd / sqrt(n) of ``value``. Rows without the value are left out."""
    columns = [*line_columns(table), "shots"]
    if value not in table:
        return pd.DataFrame(columns=[*columns, "metric", "n", "mean", "sd", "se"])
    rows = table.dropna(subset=[value])
    grouped = rows.groupby(columns, sort=True)[value]
    out = grouped.agg(n="count", mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
    out = out.reset_index()
    out["se"] = out["sd"] / np.sqrt(out["n"])
    out.insert(len(columns), "metric", value)
    return out


def matches(mean: float, reference_mean: float, reference_se: float) -> bool:
    """The break-even rule: ``mean >= reference_mean - reference_se``."""
    return bool(mean >= reference_mean - reference_se)


def _line_name(row: pd.Series, columns: list[str]) -> str:
    """A line's readable name: its non-empty columns after the dataset, joined by ``/``."""
    return "/".join(str(row[c]) for c in columns if c not in ("dataset", "encoder") and str(row[c]) not in ("-", ""))


def break_even_table(curves: pd.DataFrame) -> pd.DataFrame:
    """For every generated line and every reference line (retrieval, original) of the same
    dataset and encoder: ``break_even`` = the smallest shot count at which it matches the
    reference (``matches``), or ``never``; ``shots_compared`` lists the shot counts both have."""
    columns = [c for c in curves.columns if c not in ("shots", "metric", "n", "mean", "sd", "se")]
    out = []
    for (dataset, encoder, _), group in curves.groupby(["dataset", "encoder", "metric"], sort=True):
        lines = {key: part for key, part in group.groupby(columns, sort=True)}
        generated = [k for k in lines if lines[k]["source"].iloc[0] == "generated"]
        references = [k for k in lines if lines[k]["source"].iloc[0] in REFERENCE_SOURCES]
        for gen_key in generated:
            gen = lines[gen_key].set_index("shots")
            for ref_key in references:
                ref = lines[ref_key].set_index("shots")
                shared = sorted(set(gen.index) & set(ref.index))
                hit = next((k for k in shared if matches(gen.at[k, "mean"], ref.at[k, "mean"], ref.at[k, "se"])), None)
                out.append(
                    {
                        "dataset": dataset,
                        "encoder": encoder,
                        "metric": gen["metric"].iloc[0],
                        "generated": _line_name(lines[gen_key].iloc[0], columns),
                        "reference": _line_name(lines[ref_key].iloc[0], columns),
                        "break_even": NEVER if hit is None else str(int(hit)),
                        "shots_compared": " ".join(str(int(k)) for k in shared),
                    }
                )
    names = ["dataset", "encoder", "metric", "generated", "reference", "break_even", "shots_compared"]
    return pd.DataFrame(out, columns=names)


def combined_gain(table: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per combined line and shot count: the gain of the combined set over the originals alone,
    paired by seed: ``gain_mean`` = mean_s (combined_s - original_s), ``gain_se`` its standard
    error (0 with one seed), ``n`` the seeds paired."""
    columns = line_columns(table)
    base = [c for c in ("dataset", "encoder") if c in table]
    names = [*columns, "shots", "metric", "n", "gain_mean", "gain_se"]
    if value not in table or not (table["source"] == "combined").any():
        return pd.DataFrame(columns=names)
    original = table[table["source"] == "original"].set_index([*base, "shots", "seed"])[value]
    out = []
    combined = table[table["source"] == "combined"].dropna(subset=[value])
    for keys, group in combined.groupby([*columns, "shots"], sort=True):
        row = dict(zip([*columns, "shots"], keys))
        gains = []
        for _, r in group.iterrows():
            key = (*(r[c] for c in base), r["shots"], r["seed"])
            if key in original.index and np.isfinite(original.loc[key]):
                gains.append(r[value] - float(original.loc[key]))
        if not gains:
            continue
        gains = np.asarray(gains, dtype=float)
        se = float(np.std(gains, ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else 0.0
        out.append({**row, "metric": value, "n": len(gains), "gain_mean": float(gains.mean()), "gain_se": se})
    return pd.DataFrame(out, columns=names)


def scaling_tables(table: pd.DataFrame, values: list[str]) -> pd.DataFrame:
    """``scaling_table`` of each of ``values`` the table has, one under the other."""
    parts = [scaling_table(table, v) for v in values if v in table]
    return pd.concat(parts, ignore_index=True) if parts else scaling_table(table, values[0])


def plot_scaling(curves: pd.DataFrame, path) -> None:
    """One panel per dataset (columns) and metric (rows): the metric against images per class
    (log axis), one line per source, strategy and axes (combined sets left out: see
    ``combined_gain``), the mean over seeds with a band of one standard deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = curves[curves["source"] != "combined"]
    datasets = sorted(set(curves["dataset"])) or ["(no results)"]
    metrics = list(dict.fromkeys(curves["metric"])) or ["-"]
    fig, axes = plt.subplots(
        len(metrics), len(datasets), figsize=(7.4 * len(datasets), 3.8 * len(metrics)), squeeze=False
    )
    columns = [c for c in curves.columns if c not in ("shots", "metric", "n", "mean", "sd", "se")]
    colours = plt.get_cmap("tab20").colors  # 20 distinct lines before a colour repeats
    for ax, (value, dataset) in zip(axes.ravel(), [(m, d) for m in metrics for d in datasets]):
        part = curves[(curves["dataset"] == dataset) & (curves["metric"] == value)]
        for i, (_, line) in enumerate(part.groupby(columns, sort=True)):
            line = line.sort_values("shots")
            style = {"retrieval": "--", "original": ":"}.get(line["source"].iloc[0], "-")
            x, y, sd = line["shots"].to_numpy(float), line["mean"].to_numpy(float), line["sd"].to_numpy(float)
            colour = colours[(2 * i) % 20 + (2 * i) // 20 % 2]  # the strong shades first, then the light
            ax.plot(x, y, style, marker="o", ms=3, color=colour, label=_line_name(line.iloc[0], columns))
            ax.fill_between(x, y - sd, y + sd, color=colour, alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        shots = sorted(set(part["shots"].astype(float)))
        ax.set_xticks(shots, [f"{k:g}" for k in shots])  # the budgets themselves, not powers of ten
        ax.minorticks_off()
        ax.set_xlabel("images per class (log)")
        ax.set_ylabel(value)
        ax.set_title(dataset, fontsize=9)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the lines, not on them
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SCALED = ("cler",)  # curves of the probe column and these


def scaling_report(table: pd.DataFrame, probe: str) -> dict[str, pd.DataFrame]:
    """The aggregate's scaling files: ``scaling.csv`` (curves of the probe and CLER),
    ``break_even.csv`` and ``combined_gain.csv``."""
    values = [probe, *SCALED]
    curves = scaling_tables(table, values)
    gains = pd.concat([combined_gain(table, v) for v in values], ignore_index=True)
    return {"scaling.csv": curves, "break_even.csv": break_even_table(curves), "combined_gain.csv": gains}
