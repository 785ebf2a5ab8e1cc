"""Input validation shared by the metric functions (arrays in, clear errors out)."""

import numpy as np

from genbench.core.errors import GenBenchError


def as_feature_matrix(x, name, min_rows=1):
    """Return `x` as a finite float64 (N, D) array with N >= min_rows, or raise naming `name`."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise GenBenchError(f"{name} must be a 2-D array (N, D), got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] == 0:
        raise GenBenchError(f"{name} needs at least {min_rows} row(s) and one column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GenBenchError(f"{name} contains NaN or infinite values")
    return arr


def as_int_labels(y, name, num_rows=None, num_classes=None):
    """Return `y` as an int64 vector (values in [0, num_classes) when given), or raise."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise GenBenchError(f"{name} must be a 1-D vector of class ids, got shape {arr.shape}")
    if arr.size == 0:
        raise GenBenchError(f"{name} is empty")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise GenBenchError(f"{name} must hold integer class ids")
    arr = arr.astype(np.int64)
    if num_rows is not None and arr.shape[0] != num_rows:
        raise GenBenchError(f"{name} has {arr.shape[0]} entries, expected {num_rows}")
    if arr.min() < 0 or (num_classes is not None and arr.max() >= num_classes):
        raise GenBenchError(f"{name} holds class ids outside [0, {num_classes})")
    return arr


def as_multihot(y, name, num_rows=None, num_classes=None):
    """Return `y` as a 0/1 int64 (N, C) matrix, or raise naming `name`."""
    arr = np.asarray(y)
    if arr.ndim != 2 or arr.size == 0:
        raise GenBenchError(f"{name} must be a non-empty (N, C) multi-hot matrix, got {arr.shape}")
    if not np.all(np.isin(arr, (0, 1))):
        raise GenBenchError(f"{name} must hold only 0 and 1")
    if num_rows is not None and arr.shape[0] != num_rows:
        raise GenBenchError(f"{name} has {arr.shape[0]} rows, expected {num_rows}")
    if num_classes is not None and arr.shape[1] != num_classes:
        raise GenBenchError(f"{name} has {arr.shape[1]} columns, expected {num_classes}")
    return arr.astype(np.int64)


def same_width(a, b, name_a, name_b):
    """Raise unless matrices `a` and `b` have the same number of columns."""
    if a.shape[1] != b.shape[1]:
        raise GenBenchError(f"{name_a} has dimension {a.shape[1]} but {name_b} has {b.shape[1]}")
