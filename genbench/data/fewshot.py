"""Seeded K-shot subsets of a prepared train split, sampled the way ELEVATER does it."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import ClassVar

from genbench.core.errors import GenBenchError
from genbench.core.stage import StageParams, keyed, runtime
from genbench.data.imageset import class_counts, read_index, split_path, write_index


@dataclass(frozen=True)
class FewShotParams(StageParams):
    """One seeded K-shot subset of the train split: K of ``fewshot.shots``, a seed of
    ``fewshot.seeds`` (recipes call K ``k``)."""

    STAGE: ClassVar[str] = "fewshot"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "fewshot"

    shots: int = keyed(key="k", doc="K images per class: one subset per value")
    seed: int = keyed(config="fewshot.seeds", doc="the subset's seed: one subset per value")
    on_shortfall: str = runtime("warn", doc="a class with fewer than K images: warn or error")


def _as_label_list(label) -> list[int]:
    return list(label) if isinstance(label, (list, tuple)) else [label]


def sample_k_shot(labels, k: int, seed: int) -> list[int]:
    """Pick a K-shot subset with ELEVATER's greedy procedure; returns indices into ``labels``.

    ``labels[i]`` is an int class id, or a list of ids for a multi-label image.
    The indices ``0..n-1`` are shuffled with ``random.Random(seed).shuffle``; walking the
    shuffled order, an image is taken when *any* of its labels still has fewer than ``k``
    images, and then counts once toward *each* of its labels. Single-label classes end with
    exactly ``k`` images, or all they have if fewer; a multi-label class can exceed ``k``
    through images taken for another of their labels. Indices are returned in the order
    taken (shuffled order), as ELEVATER keeps them.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GenBenchError(f"k must be a positive integer, got {k!r}")
    order = list(range(len(labels)))
    random.Random(seed).shuffle(order)
    taken, counts = [], {}
    for index in order:
        image_labels = _as_label_list(labels[index])
        if any(counts.get(label, 0) < k for label in image_labels):
            taken.append(index)
            for label in image_labels:
                counts[label] = counts.get(label, 0) + 1
    return taken


def _rebase_path(path: str, source_dir: str, target_dir: str) -> str:
    """Rewrite an index path relative to ``source_dir`` so it resolves from ``target_dir``."""
    kind, location, member = split_path(path)
    rebased = os.path.relpath(os.path.join(source_dir, location), target_dir)
    rebased = rebased.replace(os.sep, "/")
    return rebased if member is None else f"{rebased}@{member}"


def write_k_shot_subset(train_index_path, out_dir, k: int, seed: int, num_classes: int) -> dict:
    """Write ``out_dir/train.jsonl``: a seeded K-shot subset of the index at ``train_index_path``.

    Records keep their ids, labels and metadata; their paths are rewritten (os.path.relpath)
    to point from ``out_dir`` back at the prepared images. Returns
    ``{"k", "seed", "counts": [images per class], "shortfall": {class_id: have}}`` where
    ``shortfall`` lists the classes that have fewer than ``k`` images. Multi-label records
    count toward each of their labels (see ``sample_k_shot``).
    """
    train_index_path = os.path.abspath(os.fspath(train_index_path))
    out_dir = os.path.abspath(os.fspath(out_dir))
    records = read_index(train_index_path)
    chosen = [records[i] for i in sample_k_shot([r["label"] for r in records], k, seed)]
    source_dir = os.path.dirname(train_index_path)
    subset = [dict(r, path=_rebase_path(r["path"], source_dir, out_dir)) for r in chosen]
    counts = class_counts(subset, num_classes)
    write_index(os.path.join(out_dir, "train.jsonl"), subset)
    shortfall = {label: have for label, have in enumerate(counts) if have < k}
    return {"k": k, "seed": seed, "counts": counts, "shortfall": shortfall}


def check_shortfall(shortfall: dict, k: int, class_names, policy: str, where: str, log=print) -> None:
    """Act on the classes that have fewer than ``k`` images: ``policy`` "error" stops with a
    GenBenchError naming them; "warn" logs them (and ``shots_actual`` shows it in summary.csv)."""
    if not shortfall:
        return
    listed = ", ".join(
        f"{class_names[int(c)]!r} has {n}" for c, n in sorted(shortfall.items(), key=lambda x: int(x[0]))
    )
    message = (
        f"{where}: {len(shortfall)} class(es) have fewer than {k} images ({listed}); "
        "set fewshot.on_shortfall: warn to go on with fewer"
    )
    if policy == "error":
        raise GenBenchError(message)
    log(f"WARNING {message.split('; set')[0]}")


def k_shot_subset(train_index_path, out_dir, params: FewShotParams, dataset, log=print) -> dict:
    """``write_k_shot_subset`` of ``dataset`` (a DatasetInfo) with ``params``, then the
    shortfall policy (``check_shortfall``); returns the subset's summary."""
    summary = write_k_shot_subset(train_index_path, out_dir, params.shots, params.seed, dataset.num_classes)
    where = f"fewshot {dataset.name} k={params.shots} seed={params.seed}"
    check_shortfall(summary["shortfall"], params.shots, dataset.classes, params.on_shortfall, where, log=log)
    return summary
