"""ELEVATER-format archives (zips + iris or COCO indexes + labelmap) as a source."""

from __future__ import annotations

import json
import os
import zipfile

from genbench.core.errors import GenBenchError
from genbench.data.prepare.common import SPLITS, SourceImage, _read_file, _single_or_list
from genbench.data.prepare.names import map_class_names


class _ZipPool:
    """Open zip archives on first use; missing archives or members raise GenBenchError."""

    def __init__(self):
        self.archives = {}

    def read(self, zip_path: str, member: str) -> bytes:
        if zip_path not in self.archives:
            if not os.path.isfile(zip_path):
                raise GenBenchError(f"zip {zip_path} does not exist")
            self.archives[zip_path] = zipfile.ZipFile(zip_path)
        try:
            return self.archives[zip_path].read(member)
        except KeyError:
            raise GenBenchError(f"member {member} not found in {zip_path}") from None


def _elevater_entry(info, source) -> tuple[dict, str]:
    """The dataset-info entry and the base directory its paths are relative to."""
    root = source.get("root") or source.get("path")
    if not root or not os.path.isdir(root):
        raise GenBenchError(f"dataset {info.name}: ELEVATER root {root!r} does not exist")
    if any(split in source for split in SPLITS):
        entry = source
    else:
        info_path = os.path.join(root, source.get("info", "dataset_info.json"))
        if not os.path.isfile(info_path):
            raise GenBenchError(
                f"dataset {info.name}: no dataset-info json at {info_path} and no per-split "
                "index_path in the source config"
            )
        with open(info_path, encoding="utf-8") as handle:
            entry = json.load(handle)
        if isinstance(entry, list):
            matching = [e for e in entry if e.get("name") == info.name] or entry
            if len(matching) != 1:
                raise GenBenchError(f"{info_path}: holds several datasets, none named {info.name}")
            entry = matching[0]
    base = os.path.join(root, entry.get("root_folder") or "")
    return entry, base if os.path.isdir(base) else root


def _read_labelmap(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise GenBenchError(f"labelmap {path} does not exist")
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def _iris_items(info, index_path, base, class_ids, pool) -> list[SourceImage]:
    """Items of an iris txt index: ``<zip>@<member> <ids, comma-separated, 0-based>``."""
    items = []
    with open(index_path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = line.strip().rsplit(maxsplit=1)
            path, label_text = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")
            try:
                raw = [int(v) for v in label_text.split(",") if v != ""]
                ids = [class_ids[v] for v in raw]
            except (ValueError, IndexError):
                raise GenBenchError(f"{index_path}, line {lineno}: bad label ids {label_text!r}") from None
            items.append(_archive_item(path, base, _single_or_list(info, ids), pool))
    return items


def _archive_item(path: str, base: str, label, pool) -> SourceImage:
    zip_name, sep, member = path.partition("@")
    if sep:
        full = os.path.join(base, zip_name)
        return SourceImage(path, label, lambda: pool.read(full, member))
    return SourceImage(path, label, _read_file(os.path.join(base, path)))


def _coco_items(info, index_path, base, labelmap, aliases, pool) -> list[SourceImage]:
    """Items of a COCO json index: ``images`` (id, file_name, zip_file), ``annotations``
    (image_id, category_id 1-based), ``categories`` (id, name; else the labelmap names)."""
    with open(index_path, encoding="utf-8") as handle:
        coco = json.load(handle)
    categories = {c["id"]: c["name"] for c in coco.get("categories", [])} or {
        i + 1: name for i, name in enumerate(labelmap or [])
    }
    if not categories:
        raise GenBenchError(f"{index_path}: no categories and no labelmap")
    cat_ids = sorted(categories)
    registry = dict(zip(cat_ids, map_class_names(info, [categories[c] for c in cat_ids], index_path, aliases)))
    labels = {}
    for ann in coco.get("annotations", []):
        if ann["category_id"] not in registry:
            raise GenBenchError(f"{index_path}: annotation with unknown category_id {ann['category_id']}")
        labels.setdefault(ann["image_id"], []).append(registry[ann["category_id"]])
    items = []
    for image in coco["images"]:
        name = image["file_name"]
        path = f"{image['zip_file']}@{name}" if image.get("zip_file") else name
        label = _single_or_list(info, labels.get(image["id"], []))
        items.append(_archive_item(path, base, label, pool))
    return items


def splits_from_elevater(info, source, **_):
    """ELEVATER-format data under ``source["root"]`` (or ``source["path"]``).

    Accepted description (paths relative to root, or to root/root_folder when that exists):
    either the source config itself or a json file ``source.get("info",
    "dataset_info.json")`` (one entry, or a list of entries picked by ``name``) with
    ``{"labelmap": "labelmap.txt", "format": "coco" (optional), "root_folder" (optional),
    "train"|"val"|"test": {"index_path": ..., "files_for_local_usage": [zips]}}``.
    Indexes are iris txt (``<zip>@<member> <0-based ids>``) or, when ``format`` is coco or
    the index ends in .json, COCO json. Labelmap/category names are mapped onto the
    registry's class order by name (``source["class_aliases"]`` adds names), so label ids
    always follow the registry whatever order the labelmap has.
    """
    entry, base = _elevater_entry(info, source)
    aliases = source.get("class_aliases")
    labelmap_name = entry.get("labelmap")
    labelmap = _read_labelmap(os.path.join(base, labelmap_name)) if labelmap_name else None
    pool, splits = _ZipPool(), {}
    for split in SPLITS:
        if not entry.get(split):
            continue
        index_path = os.path.join(base, entry[split]["index_path"])
        if not os.path.isfile(index_path):
            raise GenBenchError(f"dataset {info.name}: {split} index {index_path} does not exist")
        if entry.get("format") == "coco" or index_path.endswith(".json"):
            splits[split] = _coco_items(info, index_path, base, labelmap, aliases, pool)
        else:
            if labelmap is None:
                raise GenBenchError(f"dataset {info.name}: an iris index needs a labelmap")
            class_ids = map_class_names(info, labelmap, f"labelmap {labelmap_name}", aliases)
            splits[split] = _iris_items(info, index_path, base, class_ids, pool)
    if not splits:
        raise GenBenchError(f"dataset {info.name}: the ELEVATER description names no split")
    return splits
