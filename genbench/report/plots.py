"""The report's figures: metric-vs-probe scatter plots, gain bars and sample image grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_correlations(
    table: pd.DataFrame, correlations: pd.DataFrame, path: str | Path, target: str = "linear_probe"
) -> None:
    """Scatter plots of CLER, FD, CLIP score and PAD against the probe metric: colour by
    source, and with the generator axis in use one marker shape per generator (the title's r
    is over every set; ``correlations.csv`` has each generator's too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genbench.report.correlations import pooled_rows

    correlations = pooled_rows(correlations)
    metrics = [m for m in ("cler", "fd", "clip_score_100", "pad") if m in table]
    by = ["source", "generator"] if "generator" in table else ["source"]
    generators = sorted({str(g) for g in table["generator"]}) if "generator" in table else []
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4 * max(1, len(metrics)), 3.6), squeeze=False)
    colours = {source: f"C{i}" for i, source in enumerate(sorted(set(table["source"])))}
    for ax, metric in zip(axes[0], metrics):
        for keys, group in table.groupby(by):
            source, generator = (keys[0], str(keys[1])) if len(by) == 2 else (keys[0], None)
            marker = MARKERS[generators.index(generator) % len(MARKERS)] if generator is not None else "o"
            label = source if generator in (None, "-") else f"{source} ({generator})"
            ax.scatter(group[metric], group[target], label=label, s=24, c=colours[source], marker=marker)
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
    """Bar chart per dataset of the best gain over zero-shot for each source (for each source
    and generator, with the generator axis in use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table.copy()
    if "generator" in table:
        generated = table["generator"].astype(str) != "-"
        table.loc[generated, "source"] = table["source"] + " (" + table["generator"].astype(str) + ")"
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
