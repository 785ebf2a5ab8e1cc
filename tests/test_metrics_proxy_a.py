import numpy as np
import pytest

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.proxy_a import pad_from_error, proxy_a_distance, proxy_a_distance_dann_reference


@pytest.fixture(scope="module")
def domains():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(1000, 16))
    same = rng.normal(size=(1000, 16))
    separated = rng.normal(size=(700, 16)) + 3.0  # unequal size: source gets subsampled
    return source, same, separated


def test_pad_from_error_folds_errors_above_half():
    assert pad_from_error(0.0) == 2.0 and pad_from_error(1.0) == 2.0
    assert pad_from_error(0.5) == 0.0
    assert pad_from_error(0.6) == pytest.approx(pad_from_error(0.4)) == pytest.approx(0.4)


def test_separated_gaussians_give_pad_two(domains):
    source, _, separated = domains
    result = proxy_a_distance(source, separated, seed=1)
    assert result["pad"] == pytest.approx(2.0, abs=0.02)
    assert result["error"] == pytest.approx(0.0, abs=0.005)
    assert result["C"] in (0.001, 0.01, 0.1, 1, 10)


def test_identical_distributions_give_pad_near_zero(domains):
    source, same, _ = domains
    # held-out error on 1000 samples has sd ~0.016, i.e. PAD sd ~0.06
    assert proxy_a_distance(source, same, seed=1)["pad"] < 0.3


def test_seeded_and_reproducible(domains):
    source, same, _ = domains
    first = proxy_a_distance(source[:300], same[:300], seed=4)
    assert first == proxy_a_distance(source[:300], same[:300], seed=4)


def test_dann_reference_is_order_dependent_and_optimistic(domains):
    source, same, separated = domains
    assert proxy_a_distance_dann_reference(source, separated)["pad"] == pytest.approx(2.0, abs=0.02)
    # the reference splits without shuffling: sorting a set by a feature makes the halves
    # differ, so the same data gets a different (larger) PAD (500 rows: libsvm's time grows
    # quadratically or worse on overlapping sets)
    source, same = source[:500], same[:500]
    ordered = source[np.argsort(source[:, 0])]
    shuffled = proxy_a_distance_dann_reference(source, same)["pad"]
    assert proxy_a_distance_dann_reference(ordered, same)["pad"] > shuffled + 0.5


def test_bad_inputs(domains):
    source, same, _ = domains
    with pytest.raises(GenBenchError, match="dimension"):
        proxy_a_distance(source, same[:, :5])
    with pytest.raises(GenBenchError, match="Cs"):
        proxy_a_distance_dann_reference(source, same, Cs=())
