"""Splits the benchmark uses but the torchvision classes do not produce.

A registry source names one of these in ``source["split_recipe"]`` (``{"kind": ..., ...}``):

- ``sizes``: fixed-size train/val/test splits drawn from one unsplit set, stratified by class
  and seeded. EuroSAT: 5000 / 5000 / 5000 of its 27000 images, as CLIP and ELEVATER use it.
- ``partition``: SUN397's official partition lists (``Training_01.txt`` / ``Testing_01.txt``,
  50 + 50 images per class), read from the dataset root.
- ``val_from_train``: a validation split carved from the official train split by whole groups
  of images of one physical object (GTSRB: one track, ~30 frames of one sign), so that no object
  is seen in both. GTSRB: about 12569 of the 39209 training images.
- ``fer2013_usage``: FER-2013's own CSV (``fer2013.csv`` or ``icml_face_data.csv``), split by
  its ``Usage`` column: Training -> train, PublicTest -> val, PrivateTest -> test.

Membership follows the recipe, so split sizes match ELEVATER's; for the seeded recipes the
images in each split are not ELEVATER's own (prepare from an ELEVATER zip for those).
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.data.prepare.common import SourceImage
from genbench.data.prepare.splits import stratified_split

SUN397_PARTITION_URL = "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"
FER_FILES = ("fer2013.csv", "icml_face_data.csv")
FER_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
RECIPE_KINDS = ("sizes", "partition", "val_from_train", "fer2013_usage")


def check_recipe(info, recipe: dict) -> str:
    """The recipe's kind; a clear error naming the dataset for an unknown one."""
    kind = recipe.get("kind") if isinstance(recipe, Mapping) else None
    if kind not in RECIPE_KINDS:
        raise GenBenchError(f"dataset {info.name}: source.split_recipe kind {kind!r}; valid: {', '.join(RECIPE_KINDS)}")
    return kind


def _labels_of(items: list[SourceImage]) -> list[int]:
    return [-1 if it.label is None else it.label for it in items]


def sized_splits(info, items: list[SourceImage], sizes: dict, seed: int) -> dict[str, list[SourceImage]]:
    """Stratified, seeded splits of exactly ``sizes[split]`` images each, drawn in the order
    test, val, train from what the previous draws left (``stratified_split`` with an exact
    count: per class the largest-remainder share of the count)."""
    needed = sum(sizes.values())
    if len(items) < needed:
        raise GenBenchError(
            f"dataset {info.name}: split sizes {sizes} need {needed} images, the source has {len(items)}"
        )
    all_labels = _labels_of(items)
    remaining, splits = list(range(len(items))), {}
    for split in ("test", "val", "train"):
        if split not in sizes:
            continue
        labels = [all_labels[i] for i in remaining]
        if sizes[split] == len(remaining):
            splits[split], remaining = [items[i] for i in remaining], []
            continue
        rest, chosen = stratified_split(labels, 0.0, seed, test_count=sizes[split])
        splits[split] = [items[remaining[i]] for i in chosen]
        remaining = [remaining[i] for i in rest]
    return splits


def _partition_file(root: str, name: str) -> Path:
    for folder in (Path(root) / "SUN397" / "Partitions", Path(root) / "SUN397", Path(root) / "Partitions", Path(root)):
        if (folder / name).is_file():
            return folder / name
    raise GenBenchError(
        f"SUN397 partition file {name} is missing: looked in {Path(root) / 'SUN397' / 'Partitions'}, "
        f"{Path(root) / 'SUN397'}, {Path(root) / 'Partitions'} and {root}. It is in {SUN397_PARTITION_URL}; "
        f"unzip it into {Path(root) / 'SUN397'}"
    )


def _partition_members(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip().lstrip("/") for line in handle if line.strip()]


def partition_splits(info, items: list[SourceImage], root: str, number: int) -> dict[str, list[SourceImage]]:
    """SUN397's partition ``number``: ``Training_NN.txt`` -> train, ``Testing_NN.txt`` -> test.

    Lines name images relative to the SUN397 folder (``/a/abbey/sun_aaa.jpg``); every listed
    image must be among ``items`` (their names are their paths)."""
    by_path = {}
    for item in items:
        parts = Path(item.name).parts
        if "SUN397" in parts:
            by_path["/".join(parts[len(parts) - 1 - parts[::-1].index("SUN397") + 1 :])] = item
    splits = {}
    for split, stem in (("train", "Training"), ("test", "Testing")):
        path = _partition_file(root, f"{stem}_{number:02d}.txt")
        members = _partition_members(path)
        missing = [m for m in members if m not in by_path]
        if missing:
            raise GenBenchError(f"{path} lists {len(missing)} images not under {root}/SUN397, e.g. {missing[0]}")
        splits[split] = [by_path[m] for m in members]
    return splits


def gtsrb_track(name: str) -> str:
    """The group of a GTSRB training image: its class folder and track, ``00012/00003`` for
    ``.../Training/00012/00003_00029.ppm``."""
    path = Path(name)
    return f"{path.parent.name}/{path.name.split('_')[0]}"


GROUPERS = {"gtsrb_track": gtsrb_track}


def val_from_train(info, train: list[SourceImage], val_size: int, total: int, seed: int, group: str):
    """Carve a validation split of whole groups out of ``train``.

    Per class, its groups (``GROUPERS[group]``) are shuffled with one ``random.Random(seed)``
    (classes in id order) and the first ``round(g_c * val_size / total)`` go to val, g_c being
    the class's group count; ``total`` is the full train size the recipe's ``val_size`` refers
    to (39209 for GTSRB), so a smaller copy of the dataset keeps the same fraction. Returns
    ``(train, val)`` in the given order."""
    if group not in GROUPERS:
        raise GenBenchError(f"dataset {info.name}: unknown split_recipe group {group!r}; valid: {', '.join(GROUPERS)}")
    fraction = val_size / total
    groups_by_class: dict[int, dict[str, list[int]]] = {}
    for index, item in enumerate(train):
        groups_by_class.setdefault(item.label, {}).setdefault(GROUPERS[group](item.name), []).append(index)
    rng = random.Random(seed)
    val_indices = set()
    for label in sorted(groups_by_class, key=lambda c: (c is None, c if c is not None else 0)):
        names = sorted(groups_by_class[label])
        rng.shuffle(names)
        for name in names[: int(np.floor(len(names) * fraction + 0.5))]:
            val_indices.update(groups_by_class[label][name])
    return [it for i, it in enumerate(train) if i not in val_indices], [train[i] for i in sorted(val_indices)]


def _fer_file(root: str) -> tuple[Path, str, str]:
    for folder in (Path(root) / "fer2013", Path(root)):
        for name in FER_FILES:
            if (folder / name).is_file():
                prefix = " " if name == "icml_face_data.csv" else ""
                return folder / name, f"{prefix}pixels", f"{prefix}Usage"
    raise GenBenchError(
        f"FER-2013: none of {', '.join(FER_FILES)} under {Path(root) / 'fer2013'} or {root}. These are the "
        "Kaggle challenge files (fer2013.csv: emotion,pixels,Usage); torchvision's train.csv / test.csv "
        "lack the PublicTest / PrivateTest column that the val and test splits need"
    )


def _fer_pixels(text: str, where: str):
    def fetch():
        from PIL import Image

        values = [int(v) for v in text.split()]
        if len(values) != 48 * 48:
            raise GenBenchError(f"{where}: {len(values)} pixels, expected 48 x 48")
        return Image.fromarray(np.asarray(values, dtype=np.uint8).reshape(48, 48), mode="L")

    return fetch


def fer2013_splits(info, root: str) -> dict[str, list[SourceImage]]:
    """FER-2013 from its CSV: label = ``emotion`` (0 angry ... 6 neutral, the registry order),
    split by ``Usage`` (FER_USAGE); pixels are stored as 48 x 48 grayscale PNG."""
    path, pixels_key, usage_key = _fer_file(root)
    splits: dict[str, list[SourceImage]] = {split: [] for split in FER_USAGE.values()}
    with open(path, newline="", encoding="utf-8") as handle:
        for row_number, row in enumerate(csv.DictReader(handle), start=2):
            usage = (row.get(usage_key) or "").strip()
            if usage not in FER_USAGE:
                raise GenBenchError(f"{path}:{row_number}: Usage {usage!r}; expected one of {', '.join(FER_USAGE)}")
            where = f"{os.path.basename(path)}:{row_number}"
            label = int(row["emotion"])
            label = label if 0 <= label < info.num_classes else None
            splits[FER_USAGE[usage]].append(SourceImage(where, label, _fer_pixels(row[pixels_key], where)))
    return splits
