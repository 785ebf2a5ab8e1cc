"""The tidy evaluation row every stage writes to its ``metrics.csv``: one metric value per row.

Kept apart from ``genbench.evaluation.evaluate`` so that the report reads rows without
importing torch.
"""

# the external set a value belongs to
SET_COLUMNS = ("dataset", "source", "strategy", "shots", "seed", "encoder")
ROW_COLUMNS = (*SET_COLUMNS, "stage", "metric", "value")
# the axes a set may also be labelled with (``generators``, swept generation settings, an
# img2img set's strength): a
# column each, after ``strategy``, only where a run uses the axis ("-" for sets without it)
AXIS_COLUMNS = ("generator", "guidance", "steps", "scheduler", "strength")


def columns_of(rows: list[dict]) -> list[str]:
    """The columns of these rows: ROW_COLUMNS with the axis columns they carry after ``strategy``."""
    axes = [c for c in AXIS_COLUMNS if any(c in row for row in rows)]
    at = ROW_COLUMNS.index("strategy") + 1
    return [*ROW_COLUMNS[:at], *axes, *ROW_COLUMNS[at:]]
