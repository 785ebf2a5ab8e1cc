"""The tidy evaluation row every stage writes to its ``metrics.csv``: one metric value per row.

Kept apart from ``genbench.evaluation.evaluate`` so that the report reads rows without
importing torch.
"""

# the external set a value belongs to
SET_COLUMNS = ("dataset", "source", "strategy", "shots", "seed", "encoder")
ROW_COLUMNS = (*SET_COLUMNS, "stage", "metric", "value")
