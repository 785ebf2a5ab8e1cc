"""The torch kernels (any device) equal the numpy kernels to 1e-6 on the same input; the cap."""

import numpy as np
import pytest
import torch

from genbench.evaluation.metrics import DISTRIBUTION_METRICS, cap_rows, compute_distribution_metrics
from genbench.evaluation.metrics import torch_kernels as tk
from genbench.evaluation.metrics.fidelity import cmmd, precision_recall_density_coverage, vendi_score
from genbench.evaluation.metrics.kid import kernel_inception_distance

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(230, 24))
    fake = rng.normal(size=(170, 24)) * 1.2 + 0.3
    return real, fake


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk_rows", [7, 4096])
def test_prdc_matches_numpy(sets, device, chunk_rows):
    real, fake = sets
    ours = tk.prdc(real, fake, k=5, device=device, chunk_rows=chunk_rows)
    reference = precision_recall_density_coverage(real, fake, k=5)
    assert ours.keys() == reference.keys()
    for key in reference:
        assert ours[key] == pytest.approx(reference[key], abs=1e-6), key


@pytest.mark.parametrize("device", DEVICES)
def test_cmmd_kid_vendi_match_numpy(sets, device):
    real, fake = sets
    assert tk.cmmd(fake, real, sigma=10.0, device=device, chunk_rows=13) == pytest.approx(
        cmmd(fake, real, sigma=10.0), rel=1e-6, abs=1e-9
    )
    ours = tk.kid(fake, real, num_subsets=7, subset_size=50, seed=3, device=device)
    reference = kernel_inception_distance(fake, real, num_subsets=7, subset_size=50, seed=3)
    for key in reference:
        assert ours[key] == pytest.approx(reference[key], rel=1e-6, abs=1e-9), key
    for feats in (real, fake[:10]):  # n > d (d x d Gram) and n < d (n x n Gram)
        assert tk.vendi(feats, device) == pytest.approx(vendi_score(feats), rel=1e-6)


def test_compute_on_a_device_gives_the_numpy_numbers(sets):
    real, fake = sets
    names = list(DISTRIBUTION_METRICS)
    params = {"kid": {"num_subsets": 4, "subset_size": 40}}
    on_cpu = compute_distribution_metrics(names, fake, real, params)
    on_device = compute_distribution_metrics(names, fake, real, params, device="cpu")
    assert on_cpu.keys() == on_device.keys()
    for key in on_cpu:
        assert on_device[key] == pytest.approx(on_cpu[key], rel=1e-6, abs=1e-9), key


def test_cap_rows_is_seeded_ordered_and_a_no_op_below_the_cap():
    feats = np.arange(40, dtype=float).reshape(20, 2)
    assert cap_rows(feats, 50) is feats or np.array_equal(cap_rows(feats, 50), feats)
    capped = cap_rows(feats, 5, seed=1)
    assert capped.shape == (5, 2) and np.all(np.diff(capped[:, 0]) > 0)
    np.testing.assert_array_equal(capped, cap_rows(feats, 5, seed=1))
    assert not np.array_equal(capped, cap_rows(feats, 5, seed=2))
