"""The evaluation stages as functions of cached features: each returns tidy metric rows.

Every row has the fixed columns ``ROW_COLUMNS`` (``genbench.evaluation.rows``); a stage's
table is its rows for one (dataset, external set, shots, seed, encoder). Nothing here encodes
an image: the features come from the feature artifacts, selected by the ids each pack holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from genbench.core.stage import StageParams, keyed, keyed_if_changed
from genbench.evaluation.features import FeatureSet
from genbench.evaluation.metrics.classification import accuracy, dataset_metric
from genbench.evaluation.metrics.cler import (
    centroid_scores,
    cler_scores,
    knn_scores,
    knn_zero_shot_scores,
    l2_normalize,
    zero_shot_scores,
)
from genbench.evaluation.metrics.clip_score import (
    clip_score_100_per_class,
    clip_score_hessel_per_class,
    clip_score_paper_per_class,
)
from genbench.evaluation.rows import AXIS_COLUMNS

LABELS_DOC = "which external set: source, strategy, shots, seed (the rows' labels)"


@dataclass(frozen=True)
class ProbeParams(StageParams):
    """The ELEVATER linear probe of one external set (``probe``: seed, lrs, epochs_search,
    epochs_final, kept whole under ``probe`` in the recipe)."""

    STAGE: ClassVar[str] = "elevater"
    VERSION: ClassVar[int] = 6  # 6: the honest search scores each run by its late epochs' mean
    SECTION: ClassVar[str] = "probe"

    probe: dict = keyed(config="probe", doc="the probe section")
    labels: dict = keyed(doc=LABELS_DOC)
    dedup_threshold: float | None = keyed(
        None, config="retrieval.dedup_threshold", doc="held_out_duplicates: the cosine of a near copy of a test image"
    )


@dataclass(frozen=True)
class CLERParams(StageParams):
    """Zero-shot, the CLER score and its ablations of one external set."""

    STAGE: ClassVar[str] = "zeroshot_metric"
    VERSION: ClassVar[int] = 5
    SECTION: ClassVar[str] = "metrics"

    cler: dict = keyed(doc="metrics.cler: knn_k, the k of the k-NN ablations")
    labels: dict = keyed(doc=LABELS_DOC)


@dataclass(frozen=True)
class DistributionParams(StageParams):
    """Set-vs-set metrics of one external set against the real test split (an extra
    encoder's identity, when the features are another encoder's, is wired in by the plan)."""

    STAGE: ClassVar[str] = "distribution_metrics"
    VERSION: ClassVar[int] = 3
    SECTION: ClassVar[str] = "metrics"

    distribution: list = keyed(key="metrics", doc="metrics.distribution: fd, kid, prdc, vendi, cmmd")
    kid: dict = keyed(factory=dict, doc="metrics.kid: num_subsets, subset_size")
    labels: dict = keyed(factory=dict, doc=LABELS_DOC)
    max_images: int = keyed(50000, doc="rows per set, a seeded subset")
    device: str = keyed_if_changed("cpu", doc="where the quadratic metrics' torch kernels run (cuda: the GPU)")


@dataclass(frozen=True)
class PADParams(StageParams):
    """The proxy-A distance of one external set against the real test split."""

    STAGE: ClassVar[str] = "proxy_distance"
    VERSION: ClassVar[int] = 3
    SECTION: ClassVar[str] = "metrics"

    pad: dict = keyed(factory=dict, doc="metrics.pad: seed, dann_source_images, dann_max_images, dann_max_iter")
    labels: dict = keyed(factory=dict, doc=LABELS_DOC)


@dataclass
class EvaluationInputs:
    """What every evaluation of one external set needs, all as arrays."""

    dataset: str
    class_names: list[str]
    metric: str
    labels: dict  # source, strategy, shots, seed
    test: FeatureSet  # real test split
    external: FeatureSet  # the packed external images
    text_classifier: np.ndarray | None  # None for an encoder without a text tower
    full_train: FeatureSet | None = None  # original / combined: the whole train split (+ the other packs)
    paper_clip: tuple[FeatureSet, np.ndarray] | None = None  # selection-encoder features, "a photo of a {}" rows
    sources: FeatureSet | None = None  # every image of the sets the packs were chosen from
    decontaminated: int | None = None  # retrieval hits removed as copies of val/test images

    @property
    def encoder(self) -> str:
        return str(self.test.meta.get("encoder", "?"))


def rows(inputs: EvaluationInputs, stage: str, values: dict[str, float]) -> list[dict]:
    """Tidy rows (one per metric) for ``values`` with the set's identifying columns."""
    base = {
        "dataset": inputs.dataset,
        "encoder": inputs.encoder,
        "stage": stage,
        **{k: inputs.labels.get(k) for k in ("source", "strategy", "shots", "seed")},
        **{k: inputs.labels[k] for k in AXIS_COLUMNS if k in inputs.labels},
    }
    return [{**base, "metric": name, "value": float(v)} for name, v in values.items()]


def zeroshot_metric(inputs: EvaluationInputs, params: CLERParams) -> dict[str, float]:
    """Zero-shot, the CLER score and its ablations, each as the dataset's metric (percent).

    zero_shot: softmax(100 x.t_c); cler: softmax(x.p_c), p_c = normalise(t_c + mu_c), mu_c the
    centroid of the external set's class c; cler_centroid: softmax(x.mu_c); cler_knn<k>: k-NN
    vote over the external images; cler_knn_zs: (zero-shot + k-NN vote) / 2, the original's
    "kNN + zero-shot average", whose neighbours are the original's training features: the
    external set, or ``inputs.full_train`` where the set has one. With ``inputs.full_train``
    (original and combined sets: the whole train split, plus the generated pack of a combined
    set, as the original GenBench's ``zeroshot_metric`` reads them): cler_full_train, the CLER
    score with mu_c over that set.
    gen_recognised (top-1 percent, ``recognised``) over every image of the sets the packs were
    chosen from (``inputs.sources``: all the images a generator made, before the pack keeps
    the K the selection encoder ranks highest), pack_recognised over the packed images only.
    """
    x, y = inputs.test.feats, inputs.test.labels
    ext, ext_y = inputs.external.feats, inputs.external.labels
    num_classes = len(inputs.class_names)
    knn_k = params.cler.get("knn_k", 10)
    full = inputs.full_train
    neighbours = full if full is not None else inputs.external
    scores = {
        "zero_shot": zero_shot_scores(l2_normalize(x), inputs.text_classifier),
        "cler": cler_scores(x, inputs.text_classifier, ext, ext_y, inputs.class_names),
        "cler_centroid": centroid_scores(x, ext, ext_y, num_classes, inputs.class_names),
        f"cler_knn{knn_k}": knn_scores(x, ext, ext_y, num_classes, k=min(knn_k, len(ext))),
        "cler_knn_zs": knn_zero_shot_scores(
            x,
            inputs.text_classifier,
            neighbours.feats,
            neighbours.labels,
            num_classes,
            k=min(knn_k, len(neighbours.feats)),
        ),
    }
    if full is not None:
        scores["cler_full_train"] = cler_scores(x, inputs.text_classifier, full.feats, full.labels, inputs.class_names)
    values = {name: dataset_metric(inputs.metric, y, s) for name, s in scores.items()}
    sources = inputs.sources if inputs.sources is not None else inputs.external
    values["gen_recognised"] = recognised(sources.feats, sources.labels, inputs.text_classifier)
    values["pack_recognised"] = recognised(ext, ext_y, inputs.text_classifier)
    return values


def recognised(ext_feats: np.ndarray, ext_labels: np.ndarray, text_classifier: np.ndarray) -> float:
    """Percent of the external images (N x D) that the encoder's zero-shot classifier (C x D)
    puts in the class they were made for: 100 * mean_j [argmax_c g_j . t_c == y_j]. For a
    generated set: how often the generator drew what the prompt asked for."""
    return accuracy(ext_labels, zero_shot_scores(ext_feats, text_classifier))


def distribution_metrics(inputs: EvaluationInputs, params: DistributionParams, seed: int = 0) -> dict[str, float]:
    """Set-vs-set metrics of the external images against the real test images, plus CLIP score.

    Each set is first capped at ``max_images`` rows (``cap_rows``, seeded; the literature's
    50 000, see ``metrics.max_images``); the quadratic metrics run as torch kernels on
    ``params.device``.

    CLIP scores (only with a text classifier) use each image's class text embedding t_c:
    clip_score_hessel = mean 2.5 max(cos, 0); clip_score_100 = mean max(100 cos, 0);
    clip_score_paper = mean 100 cos, unclamped, on the selection encoder's features and its
    "a photo of a {}" embeddings (the original GenBench's per-image score; the mean over the
    pack is GenBench's own step, the original only ranks images by it).

    fd_paper of a set with ``inputs.full_train`` (an original set) is taken over that set, as
    the original's ``zeroshot_metric`` computes its FID over the training features it reads:
    for an original run the whole train split, not the K-shot pack.
    """
    from genbench.evaluation.metrics import cap_rows, compute_distribution_metrics, frechet_distance_paper

    external = cap_rows(inputs.external.feats, params.max_images, seed)
    real = cap_rows(inputs.test.feats, params.max_images, seed + 1)
    values = compute_distribution_metrics(params.distribution, external, real, {"kid": params.kid}, params.device)
    if "fd" in params.distribution and inputs.full_train is not None:
        values["fd_paper"] = frechet_distance_paper(cap_rows(inputs.full_train.feats, params.max_images, seed), real)
    ext, labels = inputs.external.feats, inputs.external.labels
    if np.ndim(labels) == 1 and inputs.text_classifier is not None:
        values["clip_score_hessel"] = clip_score_hessel_per_class(ext, labels, inputs.text_classifier)
        values["clip_score_100"] = clip_score_100_per_class(ext, labels, inputs.text_classifier)
    if np.ndim(labels) == 1 and inputs.paper_clip is not None:
        selection, paper_text = inputs.paper_clip
        values["clip_score_paper"] = clip_score_paper_per_class(selection.feats, selection.labels, paper_text)
    return values


def proxy_distance(inputs: EvaluationInputs, params: PADParams) -> dict[str, float]:
    """Proxy-A distance against the real test features: ``pad`` (ours: the pack, seeded,
    balanced, C chosen by cross-validation) and ``pad_dann`` (the original GenBench's procedure,
    optimistic: ``dann_source_images`` images drawn, seeded, from every image of the set the
    pack was chosen from, ``inputs.sources``, as the original draws 200 from the whole
    generated folder)."""
    from genbench.evaluation.metrics import compute_distribution_metrics

    pad = params.pad
    seed = pad.get("seed", 0)
    sources = inputs.sources if inputs.sources is not None else inputs.external
    dann = {
        "seed": seed,
        "source_images": pad.get("dann_source_images", 200),
        "max_images": pad.get("dann_max_images", 1000),
        "max_iter": pad.get("dann_max_iter", 1_000_000),
    }
    values = compute_distribution_metrics(["pad"], inputs.external.feats, inputs.test.feats, {"pad": {"seed": seed}})
    values.update(compute_distribution_metrics(["pad_dann"], sources.feats, inputs.test.feats, {"pad_dann": dann}))
    return values


PROBE_VARIANTS = {"linear_probe": "honest", "linear_probe_elevater": "elevater"}


def elevater_probe(inputs: EvaluationInputs, params: ProbeParams, log=None) -> tuple[dict[str, float], dict]:
    """The ELEVATER linear probe trained on the external set, tested on the real test split,
    under both protocols of ``run_linear_probe``, seeded with ``probe.seed`` plus the set's
    seed (so a seed moves the pack and the probe together): ``linear_probe`` (honest: shuffled seeded
    validation split, sigmoid multi-label scores, last epoch) and ``linear_probe_elevater``
    (ELEVATER's code: validation in dataset order, softmax scores, best test epoch).

    Returns (metric values, the probe reports by variant). Values: both probes, zero_shot (the
    text classifier alone), gain = linear_probe - zero_shot, gain_elevater likewise, shots_actual.
    """
    from genbench.evaluation.linear_probe import run_linear_probe

    probe = params.probe
    reports = {}
    for name, mode in PROBE_VARIANTS.items():
        reports[name] = run_linear_probe(
            inputs.external.feats,
            inputs.external.labels,
            inputs.test.feats,
            inputs.test.labels,
            metric=inputs.metric,
            text_classifier=inputs.text_classifier,
            mode=mode,
            seed=probe.get("seed", 0) + int(inputs.labels.get("seed", 0)),
            lrs=probe.get("lrs"),
            epochs_search=probe.get("epochs_search", 10),
            epochs_final=probe.get("epochs_final", 50),
            num_classes=len(inputs.class_names),
            log=log,
        )
    zero_shot = dataset_metric(
        inputs.metric, inputs.test.labels, zero_shot_scores(l2_normalize(inputs.test.feats), inputs.text_classifier)
    )
    honest, elevater = reports["linear_probe"]["test_metric"], reports["linear_probe_elevater"]["test_metric"]
    values = {
        "linear_probe": honest,
        "linear_probe_elevater": elevater,
        "zero_shot": zero_shot,
        "gain": honest - zero_shot,
        "gain_elevater": elevater - zero_shot,
        "shots_actual": shots_actual(inputs.external.labels, len(inputs.class_names)),
        "held_out_duplicates": held_out_duplicates(inputs.external, inputs.test, params.dedup_threshold),
    }
    if inputs.decontaminated is not None:
        values["decontaminated"] = inputs.decontaminated
    return values, reports


def held_out_duplicates(external: FeatureSet, test: FeatureSet, threshold: float | None) -> int:
    """How many packed images are copies of a test image (``genbench.data.duplicates``): the
    same stored bytes (both feature sets' digests), or an image-embedding cosine of at least
    ``threshold``. The sanity check of decontamination: 0 is expected for generated and
    retrieved packs; an original pack counts the dataset's own train/test near-copies."""
    from genbench.core.io import l2_normalize
    from genbench.data.duplicates import HeldOut, find_duplicates

    names = [str(i) for i in test.ids]
    digests = dict(zip(test.digests or [], names))
    held = HeldOut(names, l2_normalize(np.asarray(test.feats, np.float32), where="test features"), digests)
    candidates = external.digests or [""] * len(external.ids)
    return sum(d is not None for d in find_duplicates(external.feats, candidates, held, threshold))


def shots_actual(labels: np.ndarray, num_classes: int) -> int:
    """The fewest training images any class has: ``min_c #{j: c in labels_j}``.

    ``labels``: (n,) class ids, or (n, C) 0/1 rows for multi-label sets. A set asked for K
    shots reports K here unless some class fell short."""
    labels = np.asarray(labels)
    counts = labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels.astype(int), minlength=num_classes)
    return int(counts[:num_classes].min()) if num_classes else 0
