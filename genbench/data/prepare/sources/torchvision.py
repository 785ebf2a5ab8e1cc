"""torchvision datasets (on disk, or downloaded when allowed) as a source."""

from __future__ import annotations

import os

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.data.prepare.common import SPLITS, SourceImage, _read_file
from genbench.data.prepare.names import class_name_lookup, match_class
from genbench.data.prepare.splits import _split_options, stratified_split
from genbench.data.prepare.standard_splits import (
    check_recipe,
    fer2013_splits,
    partition_splits,
    sized_splits,
    val_from_train,
)

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
    "split_recipe",
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
    recipe = source.get("split_recipe")
    kind = check_recipe(info, recipe) if recipe else None
    if kind == "fer2013_usage":
        return fer2013_splits(info, root)
    splits = {}
    for split, kwargs in _torchvision_split_kwargs(info, source, class_name).items():
        dataset = _torchvision_dataset(info, class_name, root, kwargs, download)
        if class_name == "VOCDetection":
            splits[split] = _voc_items(info, dataset, aliases)
            continue
        label_map = torchvision_label_map(info, dataset, class_name, aliases)
        splits[split] = _torchvision_items(info, dataset, label_map, class_name)
    if kind is not None:
        splits = _apply_recipe(info, kind, recipe, splits, root, seed, log)
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


def _apply_recipe(info, kind, recipe, splits, root, seed, log):
    """The splits after ``source["split_recipe"]`` (genbench.data.prepare.standard_splits)."""
    seed = recipe.get("seed", seed)
    if kind == "sizes":
        splits = sized_splits(info, splits.pop("*"), recipe["sizes"], seed)
    elif kind == "partition":
        splits = partition_splits(info, splits.pop("*"), root, int(recipe.get("partition", 1)))
    elif kind == "val_from_train":
        train, val = val_from_train(
            info, splits["train"], recipe["val_size"], recipe["train_total"], seed, recipe.get("group", "gtsrb_track")
        )
        splits = {**splits, "train": train, "val": val}
    log(f"dataset {info.name}: {kind} split recipe: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(splits.items())))
    return splits
