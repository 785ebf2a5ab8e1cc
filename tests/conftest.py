"""Test selection: every test without the ``workflow`` or ``slurm`` marker is a ``unit`` test
(in process, no Snakemake subprocess, no cluster): ``pytest -m unit`` runs them in about 3 minutes."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if not any(item.get_closest_marker(name) for name in ("workflow", "slurm")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def tiny_sd_session(tmp_path_factory) -> str:
    """A tiny random Stable Diffusion saved with ``save_pretrained``, built once per run for the
    tests that only read it (img2img, LoRA)."""
    from genbench.models.tiny import build_tiny_stable_diffusion

    return str(build_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny_sd_shared"), seed=0))
