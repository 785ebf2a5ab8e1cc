"""Training-free metrics: pure functions, numpy arrays in, numbers out.

Set-vs-set metrics are registered in DISTRIBUTION_METRICS under a uniform convention:
``fn(external_feats, real_feats, **params) -> dict[str, float]``, a flat dict whose keys
start with the metric's name.
"""

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.classification import (
    METRIC_NAMES,
    accuracy,
    dataset_metric,
    map_11point,
    mean_per_class,
    roc_auc,
)
from genbench.evaluation.metrics.cler import (
    centroid_scores,
    class_centroids,
    cler_report,
    cler_scores,
    knn_scores,
    knn_zero_shot_scores,
    l2_normalize,
    prototype_scores,
    zero_shot_scores,
)
from genbench.evaluation.metrics.clip_score import (
    clip_score_100,
    clip_score_100_per_class,
    clip_score_hessel,
    clip_score_hessel_per_class,
    clip_score_paper,
    clip_score_paper_per_class,
)
from genbench.evaluation.metrics.fidelity import cmmd, precision_recall_density_coverage, vendi_score
from genbench.evaluation.metrics.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_paper,
)
from genbench.evaluation.metrics.kid import kernel_inception_distance
from genbench.evaluation.metrics.proxy_a import proxy_a_distance, proxy_a_distance_dann_reference


def _fd(external_feats, real_feats):
    return {
        "fd": frechet_distance_from_features(external_feats, real_feats),
        "fd_paper": frechet_distance_paper(external_feats, real_feats),
    }


def _kid(external_feats, real_feats, **params):
    return kernel_inception_distance(external_feats, real_feats, **params)


def _prdc(external_feats, real_feats, **params):
    values = precision_recall_density_coverage(real_feats, external_feats, **params)
    return {f"prdc_{key}": value for key, value in values.items()}


def _vendi(external_feats, real_feats):
    return {"vendi": vendi_score(external_feats), "vendi_real": vendi_score(real_feats)}


def _cmmd(external_feats, real_feats, **params):
    return {"cmmd": cmmd(external_feats, real_feats, **params)}


def _prefixed(prefix, values):
    return {prefix if key == "pad" else f"{prefix}_{key}": value for key, value in values.items()}


def _pad(external_feats, real_feats, **params):
    return _prefixed("pad", proxy_a_distance(external_feats, real_feats, **params))


def _pad_dann(external_feats, real_feats, **params):
    return _prefixed("pad_dann", proxy_a_distance_dann_reference(external_feats, real_feats, **params))


DISTRIBUTION_METRICS = {
    "fd": _fd,  # {"fd", "fd_paper"}
    "kid": _kid,  # {"kid_mean", "kid_std"}; params num_subsets, subset_size, seed
    "prdc": _prdc,  # {"prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage"}; k
    "vendi": _vendi,  # {"vendi" (external set), "vendi_real"}
    "cmmd": _cmmd,  # {"cmmd"}; sigma
    "pad": _pad,  # {"pad", "pad_error", "pad_C"}; seed, Cs
    "pad_dann": _pad_dann,  # {"pad_dann", "pad_dann_error", "pad_dann_C"}; Cs
}


def compute_distribution_metrics(names, external_feats, real_feats, params=None):
    """Run the named set-vs-set metrics; params maps a metric name to its keyword arguments.
    Returns one flat dict merging every metric's output."""
    params = params or {}
    unknown = [name for name in list(names) + list(params) if name not in DISTRIBUTION_METRICS]
    if unknown:
        raise GenBenchError(f"unknown distribution metric(s) {unknown}; valid: {', '.join(DISTRIBUTION_METRICS)}")
    results = {}
    for name in names:
        results.update(DISTRIBUTION_METRICS[name](external_feats, real_feats, **params.get(name, {})))
    return results


def check_same_encoder(*metas):
    """Raise unless every feature-set meta dict names the same "encoder"."""
    encoders = []
    for index, meta in enumerate(metas):
        if not isinstance(meta, dict) or "encoder" not in meta:
            raise GenBenchError(f"feature set {index} has no 'encoder' in its metadata")
        encoders.append(meta["encoder"])
    for index, encoder in enumerate(encoders[1:], start=1):
        if encoder != encoders[0]:
            raise GenBenchError(
                f"features come from different encoders: {encoders[0]!r} (set 0) and {encoder!r} (set {index})"
            )


__all__ = [
    "METRIC_NAMES",
    "accuracy",
    "dataset_metric",
    "map_11point",
    "mean_per_class",
    "roc_auc",
    "clip_score_100",
    "clip_score_100_per_class",
    "clip_score_hessel",
    "clip_score_hessel_per_class",
    "clip_score_paper",
    "clip_score_paper_per_class",
    "centroid_scores",
    "class_centroids",
    "cler_report",
    "cler_scores",
    "knn_scores",
    "knn_zero_shot_scores",
    "l2_normalize",
    "prototype_scores",
    "zero_shot_scores",
    "cmmd",
    "precision_recall_density_coverage",
    "vendi_score",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_paper",
    "kernel_inception_distance",
    "proxy_a_distance",
    "proxy_a_distance_dann_reference",
    "DISTRIBUTION_METRICS",
    "compute_distribution_metrics",
    "check_same_encoder",
]
