"""An image folder as a source: one subfolder per class, optionally under train/val/test."""

from __future__ import annotations

import os

from genbench.core.errors import GenBenchError
from genbench.data.prepare.common import IMAGE_EXTENSIONS, SPLITS, SourceImage, _read_file
from genbench.data.prepare.names import class_name_lookup, match_class
from genbench.data.prepare.splits import _split_options, stratified_split


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
