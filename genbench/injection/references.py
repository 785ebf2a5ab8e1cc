"""The light half of injection: class tokens and reference images (no torch).

The reference picking job (``textual_inversion_prepare``: the references of textual inversion
and of img2img), the gathering job (``textual_inversion``) and the img2img prompt plans need
only these; ``genbench.injection.textual_inversion`` trains the tokens and imports torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import ClassVar

from genbench.core.errors import GenBenchError
from genbench.core.io import emit
from genbench.core.stage import StageParams, keyed

REFERENCE_SOURCES = ("original", "retrieved")


# ----------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class ReferenceParams(StageParams):
    """Which reference images textual inversion learns from, or img2img starts from (their own
    sections give ``ref_shot`` and ``seed``): ``ref_shot`` per class, from the original train
    split (seeded K-shot, checked against the held-out splits) or the top retrieval hits."""

    STAGE: ClassVar[str] = "textual_inversion_prepare"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "textual_inversion"

    source: str = keyed(doc="original or retrieval (from the strategy: ti_original, img2img_retrieval, ...)")
    ref_shot: int = keyed(doc="reference images per class")
    seed: int = keyed(doc="seed of the original references' K-shot draw; class c's token trains with seed + c")


def class_token(dataset: str, class_slug: str) -> str:
    """The placeholder token of a class: ``f"<{dataset}-{class_slug}>"`` (no whitespace allowed)."""
    token = f"<{dataset}-{class_slug}>"
    if not dataset or not class_slug or re.search(r"\s", token):
        raise GenBenchError(f"cannot make a token from dataset {dataset!r} and class slug {class_slug!r}")
    return token


# ----------------------------------------------------------------------------- references


def _select_original(records: list[dict], ref_shot: int, seed: int) -> list[int]:
    from genbench.data.fewshot import sample_k_shot

    return sample_k_shot([r["label"] for r in records], ref_shot, seed)


def _select_retrieved(records: list[dict], index_path) -> list[int]:
    missing = [r["id"] for r in records if "similarity" not in r]
    if missing:
        raise GenBenchError(f"{index_path}: retrieved records need a 'similarity' (first missing: id {missing[0]!r})")
    return sorted(range(len(records)), key=lambda i: (-float(records[i]["similarity"]), records[i]["id"]))


def reference_images(
    index_path, class_names, ref_shot: int, *, source: str = "original", seed: int = 0, log=None
) -> dict:
    """Pick up to ``ref_shot`` reference records per class from an image index.

    ``source="original"``: a K-shot index; the records are those chosen by
    ``sample_k_shot(labels, ref_shot, seed)``, in its order. ``source="retrieved"``: an
    ``images.jsonl`` with ``similarity``; the ``ref_shot`` most similar records per class
    (ties: smaller id). A multi-label record counts for each of its labels. Returns
    ``{"index": index_path, "per_class": {class_id: [records]}, "shortfall": {class_id: n}}``
    (shortfall: classes with fewer than ``ref_shot``). GenBenchError naming the class when a
    class has no reference image, or on a label outside the class list.
    """
    from genbench.data.imageset import labels_of, read_index

    if source not in REFERENCE_SOURCES:
        raise GenBenchError(f"reference source must be one of {REFERENCE_SOURCES}, got {source!r}")
    if isinstance(ref_shot, bool) or not isinstance(ref_shot, int) or ref_shot < 1:
        raise GenBenchError(f"ref_shot must be a positive int, got {ref_shot!r}")
    records = read_index(index_path)
    order = (
        _select_original(records, ref_shot, seed) if source == "original" else _select_retrieved(records, index_path)
    )
    per_class = {c: [] for c in range(len(class_names))}
    for i in order:
        for label in labels_of(records[i]):
            if label not in per_class:
                raise GenBenchError(
                    f"{index_path}: record {records[i]['id']!r} has label {label} outside 0..{len(class_names) - 1}"
                )
            if len(per_class[label]) < ref_shot:
                per_class[label].append(records[i])
    empty = [class_names[c] for c, recs in per_class.items() if not recs]
    if empty:
        raise GenBenchError(f"{index_path}: no reference image for class(es) {empty}")
    shortfall = {c: len(recs) for c, recs in per_class.items() if len(recs) < ref_shot}
    for c, have in shortfall.items():
        emit(log, f"class {class_names[c]!r}: {have} of {ref_shot} reference images")
    return {"index": str(index_path), "per_class": per_class, "shortfall": shortfall}


def write_reference_index(index_path, refs: dict, out_index, final_dir) -> int:
    """Write the chosen references (``reference_images``'s ``per_class``) as an image index at
    ``out_index``, ids prefixed by their class, paths pointing into ``index_path``'s artifact and
    made relative to ``final_dir`` (the artifact's folder once published). Returns the count."""
    from genbench.data.imageset import write_index

    source_dir = os.path.dirname(os.path.abspath(index_path))
    records = []
    for class_id in sorted(refs["per_class"], key=int):
        for r in refs["per_class"][class_id]:
            location, _, member = r["path"].partition("@")
            path = os.path.relpath(os.path.join(source_dir, location), os.path.abspath(final_dir))
            records.append(
                {
                    **r,
                    "id": f"{int(class_id):04d}-{r['id']}",
                    "path": path + (f"@{member}" if member else ""),
                    "label": int(class_id),
                }
            )
    write_index(out_index, records)
    return len(records)


def reference_ids(references_index) -> dict[int, list[str]]:
    """{class id: [reference ids]} of a ``references.jsonl``, in its order."""
    from genbench.data.imageset import read_index

    out: dict[int, list[str]] = {}
    for record in read_index(references_index):
        out.setdefault(int(record["label"]), []).append(record["id"])
    return out


HELD_OUT_SPLITS = ("val", "test")


def _location(index_path, path: str) -> str:
    """Where an index record's image is: its file (absolute, normalised) and archive member."""
    location, _, member = path.partition("@")
    return os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(index_path)), location)) + f"@{member}"


def check_not_held_out(refs: dict, prepare_dir) -> None:
    """No reference image of ``reference_images``'s ``refs`` is an image of the prepared
    dataset's val or test split (``<prepare_dir>/<split>.jsonl``), compared by where the image
    is stored: a GenBenchError naming the first such reference, its class and the split."""
    from genbench.data.imageset import read_index

    held_out = {}
    for split in HELD_OUT_SPLITS:
        index = os.path.join(prepare_dir, f"{split}.jsonl")
        if os.path.isfile(index):
            held_out.update({_location(index, r["path"]): split for r in read_index(index)})
    for class_id, records in sorted(refs["per_class"].items()):
        for r in records:
            split = held_out.get(_location(refs["index"], r["path"]))
            if split:
                raise GenBenchError(
                    f"{refs['index']}: reference image {r['id']!r} of class {class_id} is an image of the {split} "
                    f"split; references must come from the train split (no {split} image may be trained on)"
                )
