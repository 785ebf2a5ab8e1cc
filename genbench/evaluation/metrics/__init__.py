"""Training-free metrics: pure functions, arrays in, numbers out.

Set-vs-set metrics are registered in DISTRIBUTION_METRICS under a uniform convention:
``fn(external_feats, real_feats, device, **params) -> dict[str, float]``, a flat dict whose
keys start with the metric's name. The quadratic ones (PRDC, CMMD, KID, Vendi) have one
implementation each, in torch (``kernels``, imported when first used, so that the light jobs
importing this package load no torch); ``compute_distribution_metrics`` computes PRDC, CMMD
and KID together, from one pass over the Gram blocks.
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
from genbench.evaluation.metrics.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_paper,
)
from genbench.evaluation.metrics.proxy_a import proxy_a_distance, proxy_a_distance_paper


def _fd(external_feats, real_feats, device):
    return {
        "fd": frechet_distance_from_features(external_feats, real_feats),
        "fd_paper": frechet_distance_paper(external_feats, real_feats),
    }


def _kernels():
    from genbench.evaluation.metrics import kernels

    return kernels


def _prdc(external_feats, real_feats, device, k=5):
    return _kernels().set_metrics(external_feats, real_feats, prdc_k=k, device=device)


def _cmmd(external_feats, real_feats, device, sigma=10.0):
    return _kernels().set_metrics(external_feats, real_feats, cmmd_sigma=sigma, device=device)


def _kid(external_feats, real_feats, device, **params):
    return _kernels().set_metrics(external_feats, real_feats, kid_params=params, device=device)


def _vendi(external_feats, real_feats, device):
    vendi_score = _kernels().vendi_score
    return {"vendi": vendi_score(external_feats, device), "vendi_real": vendi_score(real_feats, device)}


def _prefixed(prefix, values):
    return {prefix if key == "pad" else f"{prefix}_{key}": value for key, value in values.items()}


def _pad(external_feats, real_feats, device, **params):
    return _prefixed("pad", proxy_a_distance(external_feats, real_feats, **params))


def _pad_dann(external_feats, real_feats, device, **params):
    return _prefixed("pad_dann", proxy_a_distance_paper(external_feats, real_feats, **params))


DISTRIBUTION_METRICS = {
    "fd": _fd,  # {"fd", "fd_paper"}
    "kid": _kid,  # {"kid_mean", "kid_std"}; params num_subsets, subset_size, seed
    "prdc": _prdc,  # {"prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage"}; k
    "vendi": _vendi,  # {"vendi" (external set), "vendi_real"}
    "cmmd": _cmmd,  # {"cmmd"}; sigma
    "pad": _pad,  # {"pad", "pad_error", "pad_C"}; seed, Cs
    "pad_dann": _pad_dann,  # {"pad_dann", "pad_dann_error", "pad_dann_C"}; Cs, source_images, max_images, seed
}
SHARED_PASS = ("prdc", "cmmd", "kid")  # read from one pass over the Gram blocks together


def compute_distribution_metrics(names, external_feats, real_feats, params=None, device="cpu"):
    """Run the named set-vs-set metrics on ``device`` (torch's: "cpu", "cuda", ...); params maps
    a metric name to its keyword arguments. PRDC, CMMD and KID requested together share one
    pass over the Gram blocks (``kernels.set_metrics``). Returns one flat dict merging every
    metric's output."""
    params = params or {}
    unknown = [name for name in list(names) + list(params) if name not in DISTRIBUTION_METRICS]
    if unknown:
        raise GenBenchError(f"unknown distribution metric(s) {unknown}; valid: {', '.join(DISTRIBUTION_METRICS)}")
    device = device or "cpu"
    shared = [name for name in names if name in SHARED_PASS]
    results = {}
    if shared:
        results.update(
            _kernels().set_metrics(
                external_feats,
                real_feats,
                prdc_k=params.get("prdc", {}).get("k", 5) if "prdc" in shared else None,
                cmmd_sigma=params.get("cmmd", {}).get("sigma", 10.0) if "cmmd" in shared else None,
                kid_params=params.get("kid", {}) if "kid" in shared else None,
                device=device,
            )
        )
    for name in names:
        if name not in SHARED_PASS:
            results.update(DISTRIBUTION_METRICS[name](external_feats, real_feats, device, **params.get(name, {})))
    return results


def cap_rows(feats, max_images, seed=0):
    """``feats`` itself when it has at most ``max_images`` rows, else ``max_images`` rows drawn
    without replacement by ``numpy.random.default_rng(seed)``, in their original order."""
    import numpy as np

    feats = np.asarray(feats)
    if max_images is None or feats.shape[0] <= max_images:
        return feats
    return feats[np.sort(np.random.default_rng(seed).choice(feats.shape[0], max_images, replace=False))]


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
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_paper",
    "proxy_a_distance",
    "proxy_a_distance_paper",
    "DISTRIBUTION_METRICS",
    "SHARED_PASS",
    "compute_distribution_metrics",
    "cap_rows",
    "check_same_encoder",
]
