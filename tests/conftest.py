"""Test selection and order.

- Every test without the ``workflow`` or ``slurm`` marker is a ``unit`` test (in process, no
  Snakemake subprocess, no cluster): ``pytest -m unit`` runs them.
- ``scripts/test.sh`` runs the suite on two pytest-xdist workers, a test file at a time per
  worker (``--dist loadfile``: a file's module-scoped workflow run is made once). The files
  that take longest go first, so that the two workers finish together instead of one of them
  starting the longest file last.
"""

import pytest

# slowest first (pytest's --durations on two cores); files not named here follow in their order
LONGEST_FIRST = (
    "test_science.py",
    "test_workflow.py",
    "test_full_size.py",
    "test_slurm_demo.py",
    "test_workflow_textual_inversion.py",
    "test_resume.py",
    "test_staleness.py",
    "test_cli.py",
    "test_metrics_proxy_a.py",
)


def _rank(item) -> int:
    name = item.path.name
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items):
    for item in items:
        if not any(item.get_closest_marker(name) for name in ("workflow", "slurm")):
            item.add_marker(pytest.mark.unit)
    items.sort(key=_rank)  # stable: a file's own tests keep their order
