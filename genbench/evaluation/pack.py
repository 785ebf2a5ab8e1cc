"""K-per-class selection and packing of image sets into the ELEVATER on-disk format.

ELEVATER format (vision-datasets' DatasetInfo layout): images in a store-mode zip, an index
(iris txt ``<zip>@<member> <ids>`` or COCO json), a labelmap (one class per line) and a
DatasetInfo JSON.  Everything written here is deterministic: the same images give
byte-identical files.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import IMAGE_DECODE_ERRORS, store_zip_info

SELECTION_MODES = ("clip", "random")
INDEX_FORMATS = ("iris", "coco")
DATASET_INFO_NAME = "dataset_info.json"
LABELMAP_NAME = "labelmap.txt"
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
_UNSAFE_MEMBER_CHARS = re.compile(r"[^A-Za-z0-9._/-]")


# --------------------------------------------------------------------------- selection


def select_k_per_class(labels, k: int, mode: str, seed: int = 0, clip_scores=None, num_classes: int | None = None):
    """Pick at most ``k`` images per class.

    mode "clip": the ``k`` highest ``clip_scores`` of each class (ties -> lower index first).
    mode "random": ELEVATER's few-shot sampling - shuffle all indices with
    ``random.Random(seed)`` and take images greedily until each class has ``k``.
    Returns ``(indices, counts, shortfall)``: selected indices in ascending order,
    ``counts[c]`` = number selected for class c (length ``num_classes``, default max label + 1),
    ``shortfall = {c: have}`` for every class with fewer than ``k`` images (never padded).
    """
    labels = _as_single_labels(labels)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise GenBenchError(f"select_k_per_class: k must be a positive integer, got {k!r}")
    num_classes = _num_classes(labels, num_classes)
    if mode == "clip":
        chosen = _top_k_by_score(labels, k, _check_scores(clip_scores, len(labels)))
    elif mode == "random":
        chosen = _greedy_random(labels, k, seed)
    else:
        raise GenBenchError(f"select_k_per_class: unknown mode {mode!r}; valid modes: {', '.join(SELECTION_MODES)}")
    indices = np.sort(np.asarray(chosen, dtype=np.int64))
    counts = np.bincount(labels[indices], minlength=num_classes).tolist()
    shortfall = {c: n for c, n in enumerate(counts) if n < k}
    return indices, counts, shortfall


def _as_single_labels(labels) -> np.ndarray:
    if any(isinstance(label, (list, tuple)) for label in labels):
        raise GenBenchError("select_k_per_class: labels must be single class ids (one int per image), got lists")
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise GenBenchError(
            f"select_k_per_class: labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}"
        )
    if labels.size and labels.min() < 0:
        raise GenBenchError(f"select_k_per_class: negative class id {int(labels.min())}")
    return labels.astype(np.int64)


def _num_classes(labels: np.ndarray, num_classes: int | None) -> int:
    needed = int(labels.max()) + 1 if labels.size else 0
    if num_classes is None:
        return needed
    if num_classes < needed:
        raise GenBenchError(f"select_k_per_class: label {needed - 1} is out of range for num_classes={num_classes}")
    return int(num_classes)


def _check_scores(clip_scores, n: int) -> np.ndarray:
    if clip_scores is None:
        raise GenBenchError("select_k_per_class: mode 'clip' needs clip_scores (one score per image)")
    scores = np.asarray(clip_scores, dtype=np.float64)
    if scores.shape != (n,):
        raise GenBenchError(f"select_k_per_class: clip_scores has shape {scores.shape}, expected ({n},)")
    if not np.all(np.isfinite(scores)):
        raise GenBenchError("select_k_per_class: clip_scores contains NaN or inf")
    return scores


def _top_k_by_score(labels: np.ndarray, k: int, scores: np.ndarray) -> list[int]:
    order = np.lexsort((np.arange(len(labels)), -scores))  # score descending, then index ascending
    taken = defaultdict(int)
    chosen = []
    for i in order:
        if taken[labels[i]] < k:
            taken[labels[i]] += 1
            chosen.append(int(i))
    return chosen


def _greedy_random(labels: np.ndarray, k: int, seed: int) -> list[int]:
    order = list(range(len(labels)))
    random.Random(seed).shuffle(order)
    taken = defaultdict(int)
    chosen = []
    for i in order:
        if taken[labels[i]] < k:
            taken[labels[i]] += 1
            chosen.append(i)
    return chosen


# --------------------------------------------------------------------------- packing


def pack_elevater(
    records: Sequence[dict],
    image_bytes_fn: Callable[[dict], bytes],
    out_dir,
    *,
    dataset_name: str,
    class_names: Sequence[str],
    index_format: str,
    multilabel: bool,
    split_name: str = "train",
    k: int | None = None,
    shortfall: dict | None = None,
    root_folder: str | None = None,
) -> dict:
    """Write one split of an image set in ELEVATER format into ``out_dir``; return the DatasetInfo dict.

    Files: ``<split>.zip`` (store mode, members sorted, fixed date 1980-01-01 and mode 0644,
    one image in memory at a time), ``<split>.txt`` (iris: ``<split>.zip@<member> <ids>``,
    0-based, comma-separated) or ``<split>.json`` (COCO: images with real width/height,
    annotations and categories with 1-based ids), ``labelmap.txt`` and ``dataset_info.json``.
    The info's ``root_folder`` defaults to ``out_dir``'s name, so that
    ``vision_datasets.DatasetHub(json.dumps([info]), None, out_dir.parent)`` reads it.
    A second call with another ``split_name`` adds that split to the existing dataset_info.json.
    The genbench extras ``k`` and ``shortfall`` are stored in the split's entry.
    """
    out_dir = Path(out_dir)
    if index_format not in INDEX_FORMATS:
        raise GenBenchError(f"pack_elevater: unknown index_format {index_format!r}; valid: {', '.join(INDEX_FORMATS)}")
    _check_split_name(split_name)
    labels = [_record_labels(r, len(class_names), multilabel) for r in records]
    members = _member_names(records, split_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_name = f"{split_name}.zip"
    sizes = _write_store_zip(out_dir / zip_name, records, members, image_bytes_fn)
    if index_format == "iris":
        index_name = f"{split_name}.txt"
        _write_text(out_dir / index_name, iris_index_lines(zip_name, members, labels))
    else:
        index_name = f"{split_name}.json"
        coco = coco_index(zip_name, members, labels, sizes, class_names)
        _write_text(out_dir / index_name, [json.dumps(coco, sort_keys=True, separators=(",", ":"))])
    _write_text(out_dir / LABELMAP_NAME, _labelmap_lines(class_names))
    split_entry = {
        "index_path": index_name,
        "files_for_local_usage": [zip_name],
        "num_images": len(records),
        "k": k,
        "shortfall": _json_shortfall(shortfall),
    }
    info = _dataset_info(dataset_name, class_names, index_format, multilabel, root_folder or out_dir.name)
    return _merge_and_write_info(out_dir / DATASET_INFO_NAME, info, split_name, split_entry)


def _check_split_name(split_name: str) -> None:
    if split_name not in ("train", "val", "test"):
        raise GenBenchError(
            f"pack_elevater: split_name must be train, val or test (ELEVATER usages), got {split_name!r}"
        )


def _record_labels(record: dict, num_classes: int, multilabel: bool) -> list[int]:
    rid = record.get("id", "?")
    if "label" not in record:
        raise GenBenchError(f"pack_elevater: record {rid!r} has no 'label'")
    label = record["label"]
    ids = list(label) if isinstance(label, (list, tuple)) else [label]
    if not multilabel and len(ids) != 1:
        raise GenBenchError(f"pack_elevater: record {rid!r} has {len(ids)} labels in a multi-class dataset")
    for c in ids:
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < num_classes:
            raise GenBenchError(f"pack_elevater: record {rid!r} has label {c!r}, not a class id in [0, {num_classes})")
    return sorted(int(c) for c in set(ids))


def _member_names(records: Sequence[dict], split_name: str) -> list[str]:
    """Zip member for each record: its id with characters other than ``A-Za-z0-9._/-`` replaced by ``_``
    (the image extension is appended when the image is read)."""
    names = []
    for record in records:
        if "id" not in record:
            raise GenBenchError(f"pack_elevater ({split_name}): a record has no 'id'")
        names.append(_UNSAFE_MEMBER_CHARS.sub("_", str(record["id"])).strip("/") or "_")
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise GenBenchError(f"pack_elevater: record ids map to the same zip member: {duplicates[:5]}")
    return names


def _write_store_zip(zip_path: Path, records, members: list[str], image_bytes_fn) -> list[tuple[int, int]]:
    """Write images in sorted member order; fill in members' extensions; return (width, height) per record."""
    sizes: list[tuple[int, int] | None] = [None] * len(records)
    tmp_path = zip_path.with_name(zip_path.name + ".partial")
    try:
        with zipfile.ZipFile(tmp_path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for i in sorted(range(len(records)), key=lambda j: members[j]):
                data = image_bytes_fn(records[i])
                fmt, sizes[i] = _image_format_and_size(data, records[i])
                members[i] = members[i] + _EXTENSIONS.get(fmt, "." + fmt.lower())
                zf.writestr(store_zip_info(members[i]), data)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    os.replace(tmp_path, zip_path)
    return sizes


def _image_format_and_size(data: bytes, record: dict) -> tuple[str, tuple[int, int]]:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            return image.format, image.size
    except IMAGE_DECODE_ERRORS as exc:
        raise GenBenchError(
            f"pack_elevater: image of record {record.get('id')!r} is not a readable image: {exc}"
        ) from exc


def iris_index_lines(zip_name: str, members: Sequence[str], labels: Sequence[Sequence[int]]) -> list[str]:
    """Iris index: one line per image, ``<zip>@<member> <0-based ids, comma-separated>``."""
    return [f"{zip_name}@{m} {','.join(str(c) for c in ids)}" for m, ids in zip(members, labels)]


def coco_index(zip_name: str, members, labels, sizes, class_names) -> dict:
    """COCO classification index: image ids 1..N in record order, category ids 1-based."""
    images = [
        {"id": i + 1, "file_name": m, "zip_file": zip_name, "width": w, "height": h}
        for i, (m, (w, h)) in enumerate(zip(members, sizes))
    ]
    annotations = []
    for i, ids in enumerate(labels):
        for c in ids:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": c + 1})
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _labelmap_lines(class_names: Sequence[str]) -> list[str]:
    for name in class_names:
        if not str(name).strip() or "\n" in str(name):
            raise GenBenchError(f"pack_elevater: class name {name!r} cannot be written to a one-per-line labelmap")
    return [str(name) for name in class_names]


def _json_shortfall(shortfall: dict | None) -> dict | None:
    if shortfall is None:
        return None
    return {str(int(c)): int(n) for c, n in sorted(shortfall.items(), key=lambda kv: int(kv[0]))}


def _dataset_info(name, class_names, index_format, multilabel, root_folder) -> dict:
    info = {
        "name": name,
        "version": 1,
        "type": "classification_multilabel" if multilabel else "classification_multiclass",
        "root_folder": root_folder,
        "labelmap": LABELMAP_NAME,
        "num_classes": len(class_names),
    }
    if index_format == "coco":
        info["format"] = "coco"
    return info


def _merge_and_write_info(path: Path, info: dict, split_name: str, split_entry: dict) -> dict:
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        splits = {s: previous[s] for s in ("train", "val", "test") if s in previous}
        if {k: v for k, v in previous.items() if k not in splits} != info:
            raise GenBenchError(f"pack_elevater: {path} describes another dataset/format; pack into a fresh directory")
        info = {**info, **splits}
    info[split_name] = split_entry
    _write_text(path, [json.dumps(info, sort_keys=True, indent=2)])
    return info


def _write_text(path: Path, lines: Iterable[str]) -> None:
    tmp_path = path.with_name(path.name + ".partial")
    with open(tmp_path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp_path, path)
