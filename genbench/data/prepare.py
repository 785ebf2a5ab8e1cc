"""Prepare a dataset's real splits in GenBench's canonical form.

``prepare_dataset`` writes into ``out_dir``:

- ``images.zip``: a store-mode zip written deterministically (members in sorted order,
  timestamps 1980-01-01 00:00:00, fixed permissions) holding ``<split>/<number>.<ext>``.
  Images that arrive as JPEG or PNG bytes are stored unchanged; anything else is
  encoded as PNG.
- ``train.jsonl``, ``val.jsonl`` (only when the source has a validation split),
  ``test.jsonl``: image indexes (see genbench.data.imageset) whose labels follow the registry's
  class order. Each record carries ``source``: where the image came from.

Images are streamed one at a time from the source into the zip. Unreadable images
(missing files or zip members, undecodable bytes) are skipped, counted and reported; when
they exceed ``max_bad_fraction`` of the dataset, preparation fails and nothing is written.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.core.io import open_image, store_zip_info
from genbench.data.imageset import class_counts, write_index

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
MAX_BAD_EXAMPLES = 5


@dataclass(frozen=True)
class SourceImage:
    """One image of a split: ``name`` says where it comes from, ``fetch()`` returns
    encoded bytes or a PIL image, ``label`` is a registry class id or list of ids
    (or None when the source gave no usable label, which makes the image bad)."""

    name: str
    label: object
    fetch: Callable[[], object]


# ----------------------------------------------------------------------------- entry point


def prepare_dataset(
    info, source: dict, out_dir, *, seed=0, test_fraction=0.3, max_bad_fraction=0.01, download=False, log=print
) -> dict:
    """Write ``info``'s real splits from ``source`` into ``out_dir`` (see module docstring).

    ``source["type"]`` selects the reader: ``digits``, ``folder``, ``elevater`` or
    ``torchvision`` (see ``splits_from_<type>``). ``seed`` and ``test_fraction`` drive the
    seeded stratified split used when the source has no test split of its own.
    Returns ``{"dataset", "source", "splits": {split: {"count", "per_class"}},
    "bad": {"count", "total", "examples"}}``.
    """
    kind = source.get("type")
    readers = {
        "digits": splits_from_digits,
        "folder": splits_from_folder,
        "elevater": splits_from_elevater,
        "torchvision": splits_from_torchvision,
    }
    if kind not in readers:
        raise GenBenchError(f"dataset {info.name}: unknown source type {kind!r} (expected one of {sorted(readers)})")
    options = {"seed": seed, "test_fraction": test_fraction, "download": download, "log": log}
    splits = readers[kind](info, source, **options)
    summary = write_prepared(info, splits, out_dir, max_bad_fraction=max_bad_fraction, log=log)
    summary["source"] = kind
    return summary


# ----------------------------------------------------------------------------- writing


def encode_for_storage(payload, name: str) -> tuple[bytes, str]:
    """Return ``(bytes, extension)`` to store: JPEG/PNG bytes unchanged, everything else PNG.

    Raises GenBenchError naming ``name`` if the bytes cannot be decoded.
    """
    if isinstance(payload, (bytes, bytearray)):
        image = open_image(payload, name)
        if image.format in ("JPEG", "PNG"):
            return bytes(payload), "jpg" if image.format == "JPEG" else "png"
        payload = image
    if isinstance(payload, np.ndarray):
        payload = Image.fromarray(payload)
    if not isinstance(payload, Image.Image):
        raise GenBenchError(f"image {name}: unsupported payload type {type(payload).__name__}")
    if payload.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        payload = payload.convert("RGB")
    buffer = io.BytesIO()
    payload.save(buffer, format="PNG")
    return buffer.getvalue(), "png"


def _fetch_storable(item: SourceImage):
    """``(bytes, ext)`` for an item, or a string saying why the item is bad."""
    if item.label is None:
        return "no usable label"
    try:
        return encode_for_storage(item.fetch(), item.name)
    except (GenBenchError, OSError, KeyError, ValueError) as err:
        return str(err)


def write_prepared(info, splits: dict, out_dir, *, max_bad_fraction=0.01, log=print) -> dict:
    """Stream ``splits`` ({split: [SourceImage]}) into ``out_dir``'s images.zip and indexes.

    Members are numbered by the image's position in its split (zero-padded, at least 6
    digits), so ids stay stable when some images are bad. Raises GenBenchError naming the
    dataset if bad images exceed ``max_bad_fraction``; nothing is left behind then.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    zip_path = os.path.join(out_dir, "images.zip")
    tmp_zip = os.path.join(out_dir, f".images.zip.tmp-{os.getpid()}")
    indexes, bad, total = {}, [], 0
    try:
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_STORED) as archive:
            for split in sorted(splits):
                items = splits[split]
                width = max(6, len(str(max(len(items) - 1, 0))))
                records = []
                for number, item in enumerate(items):
                    total += 1
                    stored = _fetch_storable(item)
                    if isinstance(stored, str):
                        bad.append(f"{item.name}: {stored}")
                        continue
                    data, ext = stored
                    member = f"{split}/{number:0{width}d}.{ext}"
                    archive.writestr(store_zip_info(member), data)
                    records.append(
                        {
                            "id": f"{split}/{number:0{width}d}",
                            "path": f"images.zip@{member}",
                            "label": item.label,
                            "source": item.name,
                        }
                    )
                indexes[split] = records
        _check_bad_fraction(info.name, bad, total, max_bad_fraction, log)
        os.replace(tmp_zip, zip_path)
    finally:
        if os.path.exists(tmp_zip):
            os.remove(tmp_zip)
    for split, records in indexes.items():
        write_index(os.path.join(out_dir, f"{split}.jsonl"), records)
    return _summary(info, indexes, bad, total, log)


def _check_bad_fraction(name, bad, total, max_bad_fraction, log) -> None:
    if total == 0:
        raise GenBenchError(f"dataset {name}: the source holds no images")
    if bad:
        log(
            f"dataset {name}: {len(bad)} of {total} images unreadable, skipped; first: "
            + "; ".join(bad[:MAX_BAD_EXAMPLES])
        )
    if len(bad) / total > max_bad_fraction:
        raise GenBenchError(
            f"dataset {name}: {len(bad)} of {total} images are unreadable, more than "
            f"max_bad_fraction={max_bad_fraction}; first: " + "; ".join(bad[:MAX_BAD_EXAMPLES])
        )


def _summary(info, indexes, bad, total, log) -> dict:
    splits = {}
    for split, records in indexes.items():
        counts = class_counts(records, info.num_classes)
        empty = [info.classes[c] for c, n in enumerate(counts) if n == 0]
        if empty:
            log(f"dataset {info.name}: split {split} has no images of class(es) {empty[:10]}")
        splits[split] = {"count": len(records), "per_class": counts}
    return {
        "dataset": info.name,
        "splits": splits,
        "bad": {"count": len(bad), "total": total, "examples": bad[:MAX_BAD_EXAMPLES]},
    }


# ----------------------------------------------------------------------------- helpers


def _test_quotas(sizes: dict, test_fraction: float, test_count) -> dict:
    """Test images per class: ``round(n_c * test_fraction)``, or, given ``test_count``, an
    exact total shared by largest remainder (ties to the lower class). Each class keeps at
    least one training image."""
    if test_count is None:
        quotas = {c: int(round(n * test_fraction)) for c, n in sizes.items()}
    else:
        total = sum(sizes.values())
        if not 0 <= test_count < total:
            raise GenBenchError(f"test_size {test_count} must be in [0, {total})")
        exact = {c: n * test_count / total for c, n in sizes.items()}
        quotas = {c: int(v) for c, v in exact.items()}
        by_remainder = sorted(sizes, key=lambda c: (-(exact[c] - quotas[c]), c))
        for c in by_remainder[: test_count - sum(quotas.values())]:
            quotas[c] += 1
    return {c: min(q, sizes[c] - 1) for c, q in quotas.items()}


def stratified_split(labels, test_fraction: float, seed: int, test_count=None):
    """Seeded stratified split of indices ``0..n-1`` into ``(train, test)``, each ascending.

    Per class (in sorted class order) the class's indices are shuffled with one
    ``random.Random(seed)``; the first quota of them go to test (see ``_test_quotas``:
    ``round(n_c * test_fraction)`` per class, or an exact ``test_count`` in total).
    """
    if test_count is None and not 0 <= test_fraction < 1:
        raise GenBenchError(f"test_fraction must be in [0, 1), got {test_fraction}")
    by_class = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    quotas = _test_quotas({c: len(m) for c, m in by_class.items()}, test_fraction, test_count)
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        test.extend(members[: quotas[label]])
        train.extend(members[quotas[label] :])
    return sorted(train), sorted(test)


def _split_options(source, seed, test_fraction):
    """``(test_fraction, seed, test_count)`` for ``stratified_split``: the source's ``seed`` and ``test_size`` (an
    int count or a float fraction) override the arguments."""
    test_size = source.get("test_size")
    seed = source.get("seed", seed)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, type(None))):
        raise GenBenchError(f"source test_size must be a count or a fraction, got {test_size!r}")
    if isinstance(test_size, int):
        return test_fraction, seed, test_size
    return (test_size if test_size is not None else test_fraction), seed, None


def normalise_name(name: str) -> str:
    """Case-folded class name with ``_``, ``-`` and ``/`` read as spaces, spaces collapsed."""
    return " ".join(re.sub(r"[_\-/]+", " ", str(name)).casefold().split())


def class_name_lookup(info, aliases=None) -> dict:
    """Map names to registry class ids: exact class names, slugs, normalised forms, and
    ``aliases`` ({external name: registry class name})."""
    lookup = {}
    for class_id, name in enumerate(info.classes):
        lookup.setdefault(name, class_id)
        lookup.setdefault(normalise_name(name), class_id)
    for class_id, slug in enumerate(getattr(info, "slugs", None) or ()):
        lookup.setdefault(slug, class_id)
        lookup.setdefault(normalise_name(slug), class_id)
    for external, registry_name in (aliases or {}).items():
        if registry_name not in info.classes:
            raise GenBenchError(
                f"dataset {info.name}: class_aliases maps {external!r} to {registry_name!r}, "
                "which is not one of its classes"
            )
        lookup[external] = lookup[normalise_name(external)] = info.classes.index(registry_name)
    return lookup


def match_class(lookup: dict, name: str):
    """Registry class id for an external class name, or None."""
    if name in lookup:
        return lookup[name]
    return lookup.get(normalise_name(name))


def map_class_names(info, names, where: str, aliases=None) -> list[int]:
    """Registry ids for external class ``names`` (in their order); GenBenchError listing
    every unmatched or doubly-matched name, naming ``where``."""
    lookup = class_name_lookup(info, aliases)
    ids = [match_class(lookup, name) for name in names]
    unmatched = [name for name, class_id in zip(names, ids) if class_id is None]
    if unmatched:
        raise GenBenchError(
            f"dataset {info.name}: class name(s) in {where} match no registry class: "
            f"{unmatched}; registry classes: {list(info.classes)} "
            "(add class_aliases {external name: registry name} to the source config)"
        )
    seen = {}
    for name, class_id in zip(names, ids):
        if class_id in seen:
            raise GenBenchError(
                f"dataset {info.name}: {where} names {seen[class_id]!r} and {name!r} both map "
                f"to class {info.classes[class_id]!r}"
            )
        seen[class_id] = name
    return ids


def _read_file(path: str) -> Callable[[], bytes]:
    def fetch():
        with open(path, "rb") as handle:
            return handle.read()

    return fetch


def _single_or_list(info, ids: list[int]):
    """A multi-class image's label is its one id (None when it has 0 or several)."""
    if info.multilabel:
        return sorted(set(ids))
    return ids[0] if len(ids) == 1 else None


# ----------------------------------------------------------------------------- digits


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (N x 32 x 32 x 3 uint8 RGB, N labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    scaled = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    upsampled = scaled.repeat(4, axis=1).repeat(4, axis=2)
    return np.repeat(upsampled[..., None], 3, axis=3), digits.target.astype(int)


def splits_from_digits(info, source, *, seed, test_fraction, **_):
    """scikit-learn's 1797 8x8 digits (0..16) scaled to 0..255, upsampled 4x (nearest) to
    32x32 RGB, split train/test by ``stratified_split`` (the source's ``seed`` and
    ``test_size`` override the arguments). Label = the digit (needs 10 classes)."""
    if info.num_classes != 10:
        raise GenBenchError(f"dataset {info.name}: the digits source needs 10 classes")
    images, labels = digits_images()
    train, test = stratified_split(labels.tolist(), *_split_options(source, seed, test_fraction))

    def item(i):
        return SourceImage(f"sklearn-digits[{i}]", int(labels[i]), lambda: images[i])

    return {"train": [item(i) for i in train], "test": [item(i) for i in test]}


# ----------------------------------------------------------------------------- folder


def _image_files(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.join(root, name))
    return found


def _class_folder_items(info, folder: str, lookup) -> list[SourceImage]:
    """Images of every class subfolder of ``folder``; errors on unknown or empty classes."""
    items = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry.startswith(".") or not os.path.isdir(path):
            continue
        class_id = match_class(lookup, entry)
        if class_id is None:
            raise GenBenchError(
                f"dataset {info.name}: class folder {path} is not a class of the dataset "
                "(folder names must equal a class name or slug)"
            )
        files = _image_files(path)
        if not files:
            raise GenBenchError(f"dataset {info.name}: class folder {path} holds no images")
        items.extend(SourceImage(os.path.relpath(f, os.path.dirname(folder)), class_id, _read_file(f)) for f in files)
    return items


def _require_all_classes(info, items, where: str) -> None:
    present = {item.label for item in items}
    missing = [name for class_id, name in enumerate(info.classes) if class_id not in present]
    if missing:
        raise GenBenchError(f"dataset {info.name}: {where} has no images of class(es) {missing}")


def splits_from_folder(info, source, *, seed, test_fraction, **_):
    """An image folder ``source["path"]``: either ``train/``, ``val/``, ``test/`` subfolders
    (any of them) each holding one subfolder per class, or class subfolders only (then a
    seeded stratified train/test split; ``seed``/``test_size`` in the source override the
    arguments). Class folders are matched to classes by exact
    name, slug or normalised name (``source["class_aliases"]`` adds names); images are
    found recursively by extension. Every class needs images in every split."""
    root = source.get("path")
    if not root or not os.path.isdir(root):
        raise GenBenchError(f"dataset {info.name}: image folder {root!r} does not exist")
    lookup = class_name_lookup(info, source.get("class_aliases"))
    subdirs = {d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))}
    split_dirs = [s for s in SPLITS if s in subdirs]
    if split_dirs and subdirs <= set(SPLITS):
        splits = {s: _class_folder_items(info, os.path.join(root, s), lookup) for s in split_dirs}
    else:
        items = _class_folder_items(info, root, lookup)
        train, test = stratified_split([i.label for i in items], *_split_options(source, seed, test_fraction))
        splits = {"train": [items[i] for i in train], "test": [items[i] for i in test]}
    for split, items in splits.items():
        _require_all_classes(info, items, f"split {split} of {root}")
    return splits


# ----------------------------------------------------------------------------- ELEVATER


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


# ----------------------------------------------------------------------------- torchvision

# split -> constructor keyword arguments; "*" = one unsplit set that we split ourselves
TORCHVISION_SPLITS = {
    "MNIST": {"train": {"train": True}, "test": {"train": False}},
    "CIFAR10": {"train": {"train": True}, "test": {"train": False}},
    "CIFAR100": {"train": {"train": True}, "test": {"train": False}},
    "DTD": {s: {"split": s} for s in SPLITS},
    "Flowers102": {s: {"split": s} for s in SPLITS},
    "FGVCAircraft": {s: {"split": s} for s in SPLITS},
    "PCAM": {s: {"split": s} for s in SPLITS},
    "RenderedSST2": {s: {"split": s} for s in SPLITS},
    "Country211": {"train": {"split": "train"}, "val": {"split": "valid"}, "test": {"split": "test"}},
    "Food101": {"train": {"split": "train"}, "test": {"split": "test"}},
    "GTSRB": {"train": {"split": "train"}, "test": {"split": "test"}},
    "FER2013": {"train": {"split": "train"}, "test": {"split": "test"}},
    "StanfordCars": {"train": {"split": "train"}, "test": {"split": "test"}},
    "OxfordIIITPet": {"train": {"split": "trainval"}, "test": {"split": "test"}},
    "ImageNet": {"train": {"split": "train"}, "test": {"split": "val"}},
    "Caltech101": {"*": {}},
    "EuroSAT": {"*": {}},
    "SUN397": {"*": {}},
}


def _torchvision_dataset(info, class_name, root, kwargs, download):
    import torchvision.datasets as tvd

    if not hasattr(tvd, class_name):
        raise GenBenchError(f"dataset {info.name}: torchvision has no dataset class {class_name}")
    cls = getattr(tvd, class_name)
    if download:
        kwargs = dict(kwargs, download=True)
    try:
        return cls(root, **kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as err:
        raise GenBenchError(
            f"dataset {info.name}: torchvision {class_name} found no data under {root} ({err}). "
            f"Set download: true in the config to fetch it, or place the files under {root} "
            f"in the layout torchvision.datasets.{class_name} expects"
        ) from None


def _file_samples(dataset):
    """``[(path, target)]`` when the dataset lists its image files (bytes kept), else None."""
    pairs = None
    for files_attr in ("_image_files", "_images"):
        if hasattr(dataset, files_attr) and hasattr(dataset, "_labels"):
            pairs = list(zip(getattr(dataset, files_attr), dataset._labels))
    for attr in ("samples", "_samples"):
        if pairs is None and isinstance(getattr(dataset, attr, None), list):
            pairs = getattr(dataset, attr)
    if not pairs or len(pairs) != len(dataset):
        return None
    if not all(isinstance(p, (str, os.PathLike)) and isinstance(t, (int, np.integer)) for p, t in pairs[:1]):
        return None
    return [(os.fspath(p), int(t)) for p, t in pairs]


def _dataset_class_names(dataset):
    names = getattr(dataset, "classes", None) or getattr(dataset, "categories", None)
    if not names:
        return None
    return [n[0] if isinstance(n, (tuple, list)) else str(n) for n in names]


def torchvision_label_map(info, dataset, class_name, aliases=None) -> list[int]:
    """Registry id for each torchvision label id.

    By name when every torchvision class name matches a distinct registry class (exact,
    slug, normalised name or ``aliases``); otherwise by id when the class counts agree and
    no name that does match points at a different id (that would be an order mismatch);
    otherwise GenBenchError.
    """
    names = _dataset_class_names(dataset)
    if names:
        lookup = class_name_lookup(info, aliases)
        ids = [match_class(lookup, name) for name in names]
        if None not in ids and len(set(ids)) == len(ids):
            return ids
        conflicts = [n for i, (n, c) in enumerate(zip(names, ids)) if c is not None and c != i]
        if conflicts:
            raise GenBenchError(
                f"dataset {info.name}: torchvision {class_name} class order differs from the "
                f"registry for {conflicts[:10]} and not every name matches; add class_aliases"
            )
        if len(names) != info.num_classes:
            raise GenBenchError(
                f"dataset {info.name}: torchvision {class_name} has {len(names)} classes, the "
                f"registry {info.num_classes}; add class_aliases to map them by name"
            )
    return list(range(info.num_classes))


def _target_to_label(info, target, label_map):
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = int(target)
        return label_map[target] if 0 <= target < len(label_map) else None
    return None


def _torchvision_items(info, dataset, label_map, class_name) -> list[SourceImage]:
    files = _file_samples(dataset)
    if files is not None:
        return [SourceImage(path, _target_to_label(info, t, label_map), _read_file(path)) for path, t in files]
    labels = _dataset_targets(dataset)
    items = []
    for i in range(len(dataset)):

        def fetch(i=i):
            return dataset[i][0]

        label = _target_to_label(info, labels[i], label_map) if labels is not None else None
        items.append(SourceImage(f"{class_name}[{i}]", label, fetch))
    if labels is None:  # labels only come with the image: decode once to learn them
        items = [
            SourceImage(it.name, _target_to_label(info, dataset[j][1], label_map), it.fetch)
            for j, it in enumerate(items)
        ]
    return items


def _dataset_targets(dataset):
    for attr in ("targets", "_labels", "y", "labels"):
        values = getattr(dataset, attr, None)
        if values is not None and len(values) == len(dataset):
            return [int(v) for v in values]
    return None


TORCHVISION_SOURCE_KEYS = {
    "type",
    "class",
    "root",
    "splits",
    "download",
    "kwargs",
    "class_aliases",
    "seed",
    "test_size",
}


def _torchvision_split_kwargs(info, source, class_name) -> dict:
    """{split: constructor kwargs}: ``source["splits"]`` or ``TORCHVISION_SPLITS``, plus every
    other source key that is not one of ours (e.g. DTD's ``partition``) and ``source["kwargs"]``."""
    splits = source.get("splits") or TORCHVISION_SPLITS.get(class_name)
    if not splits:
        raise GenBenchError(
            f"dataset {info.name}: no split table for torchvision class {class_name!r}; give "
            f"source.splits {{split: constructor kwargs}} (known: {sorted(TORCHVISION_SPLITS)})"
        )
    extra = {k: v for k, v in source.items() if k not in TORCHVISION_SOURCE_KEYS}
    extra.update(source.get("kwargs") or {})
    return {split: dict(extra, **kwargs) for split, kwargs in splits.items()}


def _voc_items(info, dataset, aliases) -> list[SourceImage]:
    """VOCDetection images (file bytes) labelled with every object class in their XML
    annotation (difficult objects included); unknown object names are an error."""
    import xml.etree.ElementTree as ET

    lookup = class_name_lookup(info, aliases)
    items = []
    for image_path, xml_path in zip(dataset.images, dataset.targets):
        objects = ET.parse(xml_path).getroot().findall("object")
        names = {(obj.findtext("name") or "").strip() for obj in objects}
        ids = []
        for name in sorted(names):
            class_id = match_class(lookup, name)
            if class_id is None:
                raise GenBenchError(f"dataset {info.name}: {xml_path} names unknown class {name!r}")
            ids.append(class_id)
        items.append(SourceImage(image_path, sorted(set(ids)), _read_file(image_path)))
    return items


def splits_from_torchvision(info, source, *, seed, test_fraction, download, log, **_):
    """A torchvision dataset class ``source["class"]`` under ``source["root"]``.

    Splits come from ``source["splits"]`` ({split: constructor kwargs}) or
    ``TORCHVISION_SPLITS``; a split named ``*`` is one unsplit set that gets a seeded
    stratified train/test split (``seed``/``test_size`` in the source override the
    arguments). Source keys not listed in ``TORCHVISION_SOURCE_KEYS`` and
    ``source["kwargs"]`` are passed to the constructor; ``source["download"]`` (or
    ``download``) lets torchvision fetch the data. Images are stored as the original file
    bytes when the dataset lists its files, else decoded and stored as PNG. Labels are
    mapped by ``torchvision_label_map``; VOCDetection is multi-label from its XML objects.
    """
    class_name, root = source.get("class"), source.get("root")
    if not root:
        raise GenBenchError(f"dataset {info.name}: the torchvision source needs a root directory")
    download = bool(source.get("download", download))
    aliases = source.get("class_aliases")
    splits = {}
    for split, kwargs in _torchvision_split_kwargs(info, source, class_name).items():
        dataset = _torchvision_dataset(info, class_name, root, kwargs, download)
        if class_name == "VOCDetection":
            splits[split] = _voc_items(info, dataset, aliases)
            continue
        label_map = torchvision_label_map(info, dataset, class_name, aliases)
        splits[split] = _torchvision_items(info, dataset, label_map, class_name)
    if "*" in splits:
        items = splits.pop("*")
        keys = [-1 if it.label is None else it.label for it in items]
        train, test = stratified_split(keys, *_split_options(source, seed, test_fraction))
        splits = {"train": [items[i] for i in train], "test": [items[i] for i in test]}
        log(
            f"dataset {info.name}: torchvision {class_name} has no official split; "
            f"made a seeded stratified train/test split"
        )
    return splits
