import numpy as np
import pytest

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics import (
    DISTRIBUTION_METRICS,
    check_same_encoder,
    compute_distribution_metrics,
    frechet_distance_from_features,
)
from genbench.evaluation.metrics.kernels import kernel_inception_distance


@pytest.fixture(scope="module")
def feature_sets():
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 8)), rng.normal(0.5, 1.0, size=(150, 8))


def test_every_metric_returns_flat_prefixed_floats(feature_sets):
    external, real = feature_sets
    for name, fn in DISTRIBUTION_METRICS.items():
        result = fn(external, real, "cpu")
        assert result and all(key.startswith(name) for key in result), name
        assert all(isinstance(value, float) for value in result.values()), name


def test_compute_merges_results_and_passes_params(feature_sets):
    external, real = feature_sets
    params = {"kid": {"num_subsets": 5, "subset_size": 50, "seed": 3}}
    result = compute_distribution_metrics(["fd", "kid", "pad"], external, real, params)
    assert result["fd"] == frechet_distance_from_features(external, real)
    kid = kernel_inception_distance(external, real, num_subsets=5, subset_size=50, seed=3)
    assert result["kid_mean"] == kid["kid_mean"] and result["kid_std"] == kid["kid_std"]
    assert set(result) == {"fd", "fd_paper", "kid_mean", "kid_std", "pad", "pad_error", "pad_C"}


def test_unknown_metric_lists_valid_ones(feature_sets):
    external, real = feature_sets
    with pytest.raises(GenBenchError, match="cmmd"):
        compute_distribution_metrics(["fid"], external, real, {})
    with pytest.raises(GenBenchError, match="'is'"):
        compute_distribution_metrics(["fd"], external, real, {"is": {}})


def test_check_same_encoder_names_both():
    check_same_encoder({"encoder": "ViT-B-32"}, {"encoder": "ViT-B-32"})
    with pytest.raises(GenBenchError, match="'ViT-B-32'.*'dinov2'"):
        check_same_encoder({"encoder": "ViT-B-32"}, {"encoder": "ViT-B-32"}, {"encoder": "dinov2"})
    with pytest.raises(GenBenchError, match="no 'encoder'"):
        check_same_encoder({"encoder": "ViT-B-32"}, {})
