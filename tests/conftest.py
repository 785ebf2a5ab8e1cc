"""Test selection: every test without the ``workflow`` or ``slurm`` marker is a ``unit`` test
(in process, no Snakemake subprocess, no cluster): ``pytest -m unit`` runs them in about 3 minutes."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if not any(item.get_closest_marker(name) for name in ("workflow", "slurm")):
            item.add_marker(pytest.mark.unit)
