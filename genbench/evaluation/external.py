"""External training sets: choose K images per class, pack them, and read their features back.

An external set is generated, retrieved or original images packed K per class. The pack
artifact records which image ids it holds (``selection.jsonl``); every metric and the probe
read those rows from the image set's feature artifact, so no image is encoded twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.stage import StageParams, keyed, keyed_if_changed, runtime
from genbench.data.imageset import ImageSetReader, class_counts
from genbench.evaluation.features import FeatureSet, load_features
from genbench.evaluation.metrics.cler import l2_normalize
from genbench.evaluation.pack import pack_elevater, select_k_per_class

SELECTION_FILE = "selection.jsonl"


@dataclass(frozen=True)
class OriginalPackParams(StageParams):
    """The pack of one K-shot subset of the real train split (recipes call K ``k``)."""

    STAGE: ClassVar[str] = "pack_original"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "fewshot"

    shots: int = keyed(key="k", config="fewshot.shots", doc="K images per class")
    seed: int = keyed(config="fewshot.seeds", doc="the K-shot subset's seed")


@dataclass(frozen=True)
class GeneratedPackParams(StageParams):
    """K images per class of a generated set, chosen by ``selection`` (recipes call K ``k``)."""

    STAGE: ClassVar[str] = "pack_generated"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "pack"

    shots: int = keyed(key="k", config="fewshot.shots", doc="K images per class")
    selection: str = keyed(doc="clip (top-K by CLIP score), similarity (retrieved sets) or random")
    seed: int = keyed(
        config="generation.seed", doc="seed of random selection (0 for retrieved sets); with draw_from, the set's seed"
    )
    draw_from: int | None = keyed_if_changed(
        None, config="pack.draw_from", doc="null: the top K per class; M: K drawn per class with `seed` from the top M"
    )
    on_shortfall: str = runtime("warn", config="fewshot.on_shortfall", doc="a class short of K images: warn or error")


@dataclass(frozen=True)
class RetrievedPackParams(GeneratedPackParams):
    """K images per class of a retrieved set (``pack.retrieval_selection``)."""

    STAGE: ClassVar[str] = "pack_retrieval"
    VERSION: ClassVar[int] = 2

    selection: str = keyed(config="pack.retrieval_selection", doc="clip, similarity or random")
    seed: int = keyed(config="-", doc="0 (one top-K pack); with draw_from, the set's seed")


def clip_scores(feats: np.ndarray, labels: np.ndarray, text_classifier: np.ndarray) -> np.ndarray:
    """Per image, cos(x_i, t_{y_i}): the cosine between the image and its class's text embedding."""
    return np.sum(l2_normalize(feats) * text_classifier[labels], axis=1)


def _record_order(records: list[dict], ids: list[str]) -> np.ndarray:
    position = {r["id"]: i for i, r in enumerate(records)}
    try:
        return np.array([position[i] for i in ids], dtype=np.int64)
    except KeyError as err:
        raise GenBenchError(f"feature id {err.args[0]!r} is not in the image index") from None


SELECTIONS = ("clip", "similarity", "random")


def select_records(
    records: list[dict],
    k: int,
    selection: str,
    seed: int,
    num_classes: int,
    features: FeatureSet | None = None,
    text_classifier: np.ndarray | None = None,
    draw_from: int | None = None,
):
    """K records per class: top-K by CLIP score (``clip``: cos of the image features and their
    class row of ``text_classifier``), top-K by retrieval similarity (``similarity``: each
    record's ``similarity``, as the original GenBench packs retrieved images), or ELEVATER's
    seeded sampler (``random``).

    With ``draw_from`` = M, the K of a class are drawn with ``seed`` (ELEVATER's sampler) from
    its top M by that ranking (``random``: its first M records in index order), so each seed
    gives another pack of equally good images: ``draw_seeded``.

    Returns (chosen records, counts per class, shortfall {class: have}).
    """
    labels = np.array([r["label"] for r in records], dtype=np.int64)
    scores, score_name = None, None
    if selection == "clip":
        if features is None or text_classifier is None:
            raise GenBenchError("clip selection needs the image set's features and the text classifier")
        order = _record_order(records, features.ids)
        scores = np.empty(len(records))
        scores[order] = clip_scores(features.feats, labels[order], text_classifier)
        score_name = "clip_score"
    elif selection == "similarity":
        missing = [r["id"] for r in records if "similarity" not in r]
        if missing:
            raise GenBenchError(f"similarity selection needs retrieved images; {missing[0]!r} has no 'similarity'")
        scores, score_name = np.array([float(r["similarity"]) for r in records]), "similarity"
    elif selection != "random":
        raise GenBenchError(f"unknown selection {selection!r}; valid: {', '.join(SELECTIONS)}")
    if draw_from is not None:
        indices, counts, shortfall = draw_seeded(labels, k, draw_from, seed, scores, num_classes)
    else:
        indices, counts, shortfall = select_k_per_class(
            labels, k, "random" if scores is None else "clip", seed=seed, clip_scores=scores, num_classes=num_classes
        )
    chosen = [dict(records[i], **({score_name: float(scores[i])} if scores is not None else {})) for i in indices]
    return chosen, counts, shortfall


def draw_seeded(labels: np.ndarray, k: int, draw_from: int, seed: int, scores, num_classes: int):
    """Per class, K of its top ``draw_from`` images (highest ``scores``, ties to the lower index;
    without scores its first ``draw_from`` in index order), drawn by ELEVATER's seeded sampler.

    labels: (N,) class ids; scores: (N,) or None. Returns ``select_k_per_class``'s
    (ascending indices, counts per class, shortfall {class: have})."""
    if draw_from < k:
        raise GenBenchError(f"pack.draw_from {draw_from} is below K = {k}: there would be no draw")
    ranking = scores if scores is not None else -np.arange(len(labels), dtype=np.float64)
    top, _, _ = select_k_per_class(labels, draw_from, "clip", clip_scores=ranking, num_classes=num_classes)
    drawn, counts, shortfall = select_k_per_class(labels[top], k, "random", seed=seed, num_classes=num_classes)
    return top[drawn], counts, shortfall


def pack_records(
    index_path: str | Path, records: list[dict], out_dir: str | Path, info, *, k: int, shortfall: dict, root_folder: str
) -> dict:
    """Pack ``records`` of an image index in the ELEVATER format and write ``selection.jsonl``.

    ``root_folder``: the artifact's final folder name (``out_dir`` may be a staging folder), so
    ``dataset_info.json`` names where the pack lives, relative to its dataset's folder."""
    reader = ImageSetReader(index_path, records=records)
    dataset_info = pack_elevater(
        records,
        reader.open_bytes,
        out_dir,
        dataset_name=info.name,
        class_names=list(info.classes),
        index_format=info.index_format,
        multilabel=info.multilabel,
        k=k,
        shortfall=shortfall,
        root_folder=root_folder,
    )
    with open(Path(out_dir) / SELECTION_FILE, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps({"id": r["id"], "label": r["label"]}, sort_keys=True) + "\n")
    return dataset_info


def pack_summary(records: list[dict], num_classes: int, k: int, shortfall: dict) -> dict:
    """The manifest summary of a pack: size, K, the smallest class and every class short of K."""
    counts = class_counts(records, num_classes)
    return {
        "images": len(records),
        "k": k,
        "min_per_class": min(counts, default=0),
        "shortfall": {str(c): int(n) for c, n in shortfall.items()},
    }


def read_selection(pack_dir: str | Path) -> list[str]:
    """The image ids an external-set pack holds, in pack order."""
    with open(Path(pack_dir) / SELECTION_FILE, encoding="utf-8") as f:
        return [json.loads(line)["id"] for line in f if line.strip()]


def load_pack_features(pack_dir: Path, feature_dir: Path) -> FeatureSet:
    """The features of the images one pack holds, in pack order."""
    return load_features(feature_dir).select(read_selection(pack_dir))


def concatenate_feature_sets(parts: list[FeatureSet]) -> FeatureSet:
    """One FeatureSet of ``parts`` in order; they must come from one encoder."""
    encoders = {p.meta.get("encoder") for p in parts}
    if len(encoders) > 1:
        raise GenBenchError(f"external sets were encoded with different encoders: {sorted(map(str, encoders))}")
    return FeatureSet(
        feats=np.concatenate([p.feats for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        ids=[i for p in parts for i in p.ids],
        meta=parts[0].meta,
    )


def pack_external_set(
    index_path,
    out_dir,
    params: GeneratedPackParams,
    dataset,
    *,
    root_folder: str,
    features=None,
    text_classifier=None,
    log=print,
) -> dict:
    """Choose K images per class of a generated or retrieved set (``select_records``), act on
    a shortfall, and pack them; returns the pack's summary."""
    from genbench.data.fewshot import check_shortfall
    from genbench.data.imageset import read_index

    records = read_index(index_path)
    chosen, _, shortfall = select_records(
        records,
        params.shots,
        params.selection,
        params.seed,
        dataset.num_classes,
        features,
        text_classifier,
        draw_from=params.draw_from,
    )
    where = f"{params.STAGE} {dataset.name} k={params.shots}"
    check_shortfall(shortfall, params.shots, dataset.classes, params.on_shortfall, where, log=log)
    pack_records(index_path, chosen, out_dir, dataset, k=params.shots, shortfall=shortfall, root_folder=root_folder)
    return pack_summary(chosen, dataset.num_classes, params.shots, shortfall)


def pack_original_subset(
    index_path, out_dir, params: OriginalPackParams, dataset, *, shortfall: dict, root_folder: str
) -> dict:
    """Pack a K-shot subset (every record of its index) as it is; returns the pack's summary."""
    from genbench.data.imageset import read_index

    records = read_index(index_path)
    pack_records(index_path, records, out_dir, dataset, k=params.shots, shortfall=shortfall, root_folder=root_folder)
    return pack_summary(records, dataset.num_classes, params.shots, shortfall)
