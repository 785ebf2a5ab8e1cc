"""The torch kernels (any device) equal the numpy references (tests/reference_metrics.py) to
1e-6 on the same input, computed alone or together in one Gram pass; the cap."""

import numpy as np
import pytest
import reference_metrics as ref
import torch

from genbench.evaluation.metrics import DISTRIBUTION_METRICS, cap_rows, compute_distribution_metrics
from genbench.evaluation.metrics import kernels as tk

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(230, 24))
    fake = rng.normal(size=(170, 24)) * 1.2 + 0.3
    return real, fake


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tile", [(7, 13), (1, 500), tk.TILE])
def test_prdc_matches_numpy(sets, device, tile):
    real, fake = sets
    ours = tk.precision_recall_density_coverage(real, fake, k=5, device=device, tile=tile)
    reference = ref.precision_recall_density_coverage(real, fake, k=5)
    assert ours.keys() == reference.keys()
    for key in reference:
        assert ours[key] == pytest.approx(reference[key], abs=1e-6), key


@pytest.mark.parametrize("device", DEVICES)
def test_cmmd_kid_vendi_match_numpy(sets, device):
    real, fake = sets
    assert tk.cmmd(fake, real, sigma=10.0, device=device, tile=(13, 17)) == pytest.approx(
        ref.cmmd(fake, real, sigma=10.0), rel=1e-6, abs=1e-9
    )
    ours = tk.kernel_inception_distance(fake, real, num_subsets=7, subset_size=50, seed=3, device=device, tile=(9, 31))
    reference = ref.kernel_inception_distance(fake, real, num_subsets=7, subset_size=50, seed=3)
    for key in reference:
        assert ours[key] == pytest.approx(reference[key], rel=1e-6, abs=1e-9), key
    for feats in (real, fake[:10]):  # n > d (d x d Gram) and n < d (n x n Gram)
        assert tk.vendi_score(feats, device) == pytest.approx(ref.vendi_score(feats), rel=1e-6)


@pytest.mark.parametrize("tile", [(11, 6), tk.TILE])
def test_one_gram_pass_gives_every_metric_as_alone(sets, tile):
    real, fake = sets
    kid = {"num_subsets": 5, "subset_size": 60, "seed": 1}
    together = tk.set_metrics(fake, real, prdc_k=4, cmmd_sigma=3.0, kid_params=kid, tile=tile)
    expected = {f"prdc_{k}": v for k, v in ref.precision_recall_density_coverage(real, fake, k=4).items()}
    expected["cmmd"] = ref.cmmd(fake, real, sigma=3.0)
    expected.update(ref.kernel_inception_distance(fake, real, **kid))
    assert together.keys() == expected.keys()
    for key in expected:
        assert together[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), key


def test_the_registry_computes_the_references(sets):
    real, fake = sets
    names = list(DISTRIBUTION_METRICS)
    params = {"kid": {"num_subsets": 4, "subset_size": 40}}
    ours = compute_distribution_metrics(names, fake, real, params)
    assert ours["cmmd"] == pytest.approx(ref.cmmd(fake, real), rel=1e-6)
    assert ours["vendi_real"] == pytest.approx(ref.vendi_score(real), rel=1e-6)
    kid = ref.kernel_inception_distance(fake, real, num_subsets=4, subset_size=40)
    assert ours["kid_mean"] == pytest.approx(kid["kid_mean"], rel=1e-6)
    assert {"fd", "fd_paper", "pad", "pad_dann", "prdc_density"} <= set(ours)


def test_cap_rows_is_seeded_ordered_and_a_no_op_below_the_cap():
    feats = np.arange(40, dtype=float).reshape(20, 2)
    assert cap_rows(feats, 50) is feats or np.array_equal(cap_rows(feats, 50), feats)
    capped = cap_rows(feats, 5, seed=1)
    assert capped.shape == (5, 2) and np.all(np.diff(capped[:, 0]) > 0)
    np.testing.assert_array_equal(capped, cap_rows(feats, 5, seed=1))
    assert not np.array_equal(capped, cap_rows(feats, 5, seed=2))
