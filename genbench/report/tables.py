"""The results tables: every evaluation's tidy rows in one table, and the wide table of one row
per external set.

``collect_rows`` reads every evaluation's ``metrics.csv`` (tidy: one metric per row);
``results_table`` pivots them to one row per (dataset, source, strategy, shots, seed, encoder),
the protocol's headline columns first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from genbench.core.errors import GenBenchError
from genbench.core.protocol import headline
from genbench.core.stage import StageParams, keyed
from genbench.evaluation.rows import AXIS_COLUMNS, ROW_COLUMNS, SET_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class AggregateParams(StageParams):
    """One table over every evaluation of the plan."""

    STAGE: ClassVar[str] = "aggregate"
    VERSION: ClassVar[int] = 7  # 7: cluster bootstrap, per-shot correlations, scaling.csv, break_even.csv
    SECTION: ClassVar[str | None] = None

    protocol: str = keyed("honest", doc="protocol: honest or paper (the headline columns, the probe correlated with)")


def collect_rows(csv_paths: list[str | Path]) -> pd.DataFrame:
    """All tidy metric rows of the given metrics.csv files, with the fixed columns and the axis
    columns any of them carries ("-" in the rows of sets without that axis)."""
    import pandas as pd

    frames = [pd.read_csv(p, keep_default_na=False) for p in csv_paths]
    if not frames:
        raise GenBenchError("no evaluation results to collect")
    df = pd.concat(frames, ignore_index=True)
    missing = set(ROW_COLUMNS) - set(df.columns)
    if missing:
        raise GenBenchError(f"metrics tables lack columns {sorted(missing)}")
    df["value"] = df["value"].astype(float)
    axes = _axes(df)
    df[axes] = df[axes].astype(object).fillna("-").replace("", "-")
    at = ROW_COLUMNS.index("strategy") + 1
    return df[[*ROW_COLUMNS[:at], *axes, *ROW_COLUMNS[at:]]]


def _axes(table: pd.DataFrame) -> list[str]:
    """The axis columns (``AXIS_COLUMNS``) a table has."""
    return [c for c in AXIS_COLUMNS if c in table.columns]


def set_columns(table: pd.DataFrame) -> list[str]:
    """The columns that identify an external set in this table: SET_COLUMNS, with the axis
    columns it has after ``strategy``."""
    at = SET_COLUMNS.index("strategy") + 1
    return [*SET_COLUMNS[:at], *_axes(table), *SET_COLUMNS[at:]]


def probe_column(protocol: str) -> str:
    """The linear-probe column a protocol correlates the training-free metrics with."""
    return "linear_probe_elevater" if protocol == "paper" else "linear_probe"


def results_table(rows: pd.DataFrame, protocol: str = "honest") -> pd.DataFrame:
    """One row per external set; one column per metric (zero_shot from the probe stage wins),
    the protocol's headline columns first (``genbench.core.protocol.headline``)."""
    rows = rows.copy()
    rows.loc[(rows.metric == "zero_shot") & (rows.stage == "zeroshot_metric"), "metric"] = "zero_shot_text"
    wide = rows.pivot_table(index=set_columns(rows), columns="metric", values="value", aggfunc="first")
    wide = wide.reset_index()
    wide.columns.name = None
    if "zero_shot" not in wide and "zero_shot_text" in wide:
        wide["zero_shot"] = wide["zero_shot_text"]
    wide = wide.drop(columns=[c for c in ["zero_shot_text"] if c in wide])
    first = [c for c in [*set_columns(rows), *headline(protocol)] if c in wide]
    return wide[first + sorted(c for c in wide.columns if c not in first)]
