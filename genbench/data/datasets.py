"""The dataset registry: the 22 benchmark datasets, the `digits` demo set and user datasets.

Each built-in dataset is one JSON file in ``genbench/data/registry/`` holding its class
names (label-id order), CLIP's prompt templates, metric, split sizes and how it is prepared.
User datasets are declared in the workflow config and checked here with the same rules.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Iterable, Mapping

from genbench.core.errors import ConfigError
from genbench.core.stage import StageParams, keyed

REGISTRY_DIR = Path(__file__).parent / "registry"
DEMO_DATASETS = ("digits",)
METRICS = ("accuracy", "mean-per-class", "11point_mAP", "roc_auc")
INDEX_FORMATS = ("iris", "coco")
USER_SOURCE_TYPES = {"folder": "path", "elevater": "path", "torchvision": "class"}
DEFAULT_TEMPLATES = ("a photo of a {}.",)
SPLIT_NAMES = ("train", "val", "test")
USER_KEYS = {"classes", "labels_file", "templates", "metric", "multilabel", "source", "splits", "index_format", "notes"}
REGISTRY_KEYS = {"key", "classes", "templates", "metric", "multilabel", "splits", "source", "index_format", "notes"}
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")  # control characters, line and paragraph separators

SLUG_MAX_LEN = 64
SLUG_HASH_LEN = 8


@dataclass(frozen=True)
class ConfigureParams(StageParams):
    """A dataset's metadata as one JSON: its declaration (registry entry or user_datasets),
    without the paths of its files."""

    STAGE: ClassVar[str] = "configure"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "user_datasets"

    dataset: dict = keyed(doc="classes, slugs, templates, metric, splits, source (paths left out)")


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset: classes in label-id order, their path-safe slugs, templates and metadata."""

    name: str
    classes: tuple[str, ...]
    slugs: tuple[str, ...]
    templates: tuple[str, ...]
    metric: str
    multilabel: bool
    splits: Mapping[str, int | None]
    source: Mapping[str, Any]
    index_format: str = "iris"
    notes: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes (label ids run 0 .. num_classes - 1)."""
        return len(self.classes)

    @classmethod
    def from_json(cls, data: dict) -> "DatasetInfo":
        """The inverse of ``to_json`` (as the configure stage stores it in dataset.json)."""
        return cls(**{**data, **{k: tuple(data[k]) for k in ("classes", "slugs", "templates")}})

    def to_json(self) -> dict:
        """Plain JSON-serialisable dict of every field (lists and dicts, no tuples or proxies)."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "slugs": list(self.slugs),
            "templates": list(self.templates),
            "metric": self.metric,
            "multilabel": self.multilabel,
            "splits": _thaw(self.splits),
            "source": _thaw(self.source),
            "index_format": self.index_format,
            "notes": self.notes,
        }


# ---------------------------------------------------------------- public API


def list_datasets() -> list[str]:
    """Sorted keys of the 22 benchmark datasets (the demo set `digits` is not listed)."""
    return sorted(k for k in _registry_keys() if k not in DEMO_DATASETS)


def get_dataset(name: str, user_datasets: Mapping[str, Any] | None = None) -> DatasetInfo:
    """Return the DatasetInfo of a built-in dataset or of a user dataset declared in the config.

    `user_datasets` is the config mapping ``{name: declaration}``; a declaration has
    `classes` (list) or `labels_file` (one class per line), optional `templates`,
    `metric`, `multilabel`, `splits`, `index_format`, `notes`, and a `source` dict.
    Raises ConfigError naming the dataset and key for any bad declaration.
    """
    user_datasets = user_datasets or {}
    if not isinstance(user_datasets, Mapping):
        raise ConfigError(f"datasets: expected a mapping of name -> declaration, got {type(user_datasets).__name__}")
    _check_no_shadowing(user_datasets)
    if name in user_datasets:
        return _user_dataset(name, user_datasets[name])
    if name in _registry_keys():
        return _registry_dataset(name)
    valid = sorted(set(_registry_keys()) | set(user_datasets))
    raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(valid)}")


def class_slugs(names: Iterable[str]) -> list[str]:
    """Path-safe, distinct, stable slugs for class names (same list -> same slugs).

    Slugs match ``^[a-z0-9][a-z0-9_-]*$`` and are at most 64 characters. Names whose
    normalised forms collide, or that had to be truncated, get ``-<8 hex of sha1(name)>``
    appended; names that normalise to nothing become ``class-<hash>``.
    """
    names = list(names)
    _check_slug_input(names)
    bases = [_slug_base(n) for n in names]
    counts: dict[str, int] = {}
    for base in bases:
        counts[base] = counts.get(base, 0) + 1
    slugs = [_finish_slug(n, b, counts[b] > 1) for n, b in zip(names, bases)]
    return _resolve_leftover_collisions(names, slugs)


# ---------------------------------------------------------------- slugs


def _check_slug_input(names: list) -> None:
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"class name {name!r} is not a string")
        if name in seen:
            raise ConfigError(f"duplicate class name {name!r}")
        seen.add(name)


def _name_hash(name: str, length: int = SLUG_HASH_LEN) -> str:
    return hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _slug_base(name: str) -> str:
    """Lowercase ascii; runs of anything but [a-z0-9-] become '_'; no leading/trailing '_' or '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    base = re.sub(r"[^a-z0-9-]+", "_", ascii_name)
    base = re.sub(r"_{2,}", "_", base)
    return base.strip("_-")


def _finish_slug(name: str, base: str, collides: bool) -> str:
    if not base:
        return f"class-{_name_hash(name)}"
    if collides or len(base) > SLUG_MAX_LEN:
        head = base[: SLUG_MAX_LEN - SLUG_HASH_LEN - 1].rstrip("_-")
        return f"{head}-{_name_hash(name)}"
    return base


def _resolve_leftover_collisions(names: list[str], slugs: list[str]) -> list[str]:
    """Rare case: a hashed slug equals another name's plain slug; lengthen the hash."""
    taken: dict[str, int] = {}
    result = list(slugs)
    for i, slug in enumerate(slugs):
        if slug in taken:
            full = _name_hash(names[i], 40)
            for extra in range(16, 41):
                candidate = f"{slug[: SLUG_MAX_LEN - extra - 1].rstrip('_-')}-{full[:extra]}"
                if candidate not in taken and candidate not in slugs:
                    result[i] = candidate
                    break
            else:
                raise ConfigError(f"cannot make a distinct slug for class {names[i]!r}")
        taken[result[i]] = i
    return result


# ---------------------------------------------------------------- registry


@functools.lru_cache(maxsize=None)
def _registry_keys() -> tuple[str, ...]:
    if not REGISTRY_DIR.is_dir():
        raise ConfigError(f"dataset registry folder {REGISTRY_DIR} is missing")
    return tuple(sorted(p.stem for p in REGISTRY_DIR.glob("*.json")))


@functools.lru_cache(maxsize=None)
def _registry_dataset(name: str) -> DatasetInfo:
    path = REGISTRY_DIR / f"{name}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read dataset file: {exc}") from exc
    where = str(path)
    _require_mapping(record, where)
    _reject_unknown_keys(record, REGISTRY_KEYS, where)
    if record.get("key") != name:
        raise ConfigError(f"{where}: key: {record.get('key')!r} does not match the file name {name!r}")
    return _build_info(name, record, where, classes=_check_classes(record.get("classes"), where))


BENCHMARK_DATASETS: tuple[str, ...] = tuple(list_datasets())


# ---------------------------------------------------------------- user datasets


def _check_no_shadowing(user_datasets: Mapping[str, Any]) -> None:
    for user_name in user_datasets:
        if user_name in _registry_keys():
            raise ConfigError(
                f"datasets.{user_name}: a user dataset may not reuse the built-in name {user_name!r}; rename it"
            )


def _user_dataset(name: str, decl: Any) -> DatasetInfo:
    where = f"datasets.{name}"
    if not isinstance(name, str) or not DATASET_NAME_RE.match(name) or ".." in name:
        raise ConfigError(f"{where}: dataset name must match {DATASET_NAME_RE.pattern} (it is used in paths)")
    _require_mapping(decl, where)
    _reject_unknown_keys(decl, USER_KEYS, where)
    source = decl.get("source")
    _check_user_source(source, where)
    classes = _user_classes(decl, where)
    return _build_info(name, dict(decl), where, classes=classes)


def _user_classes(decl: Mapping[str, Any], where: str) -> tuple[str, ...]:
    has_classes, has_file = "classes" in decl, "labels_file" in decl
    if has_classes == has_file:
        raise ConfigError(f"{where}: give exactly one of 'classes' (a list) or 'labels_file' (a path)")
    if has_classes:
        return _check_classes(decl["classes"], where)
    return _check_classes(_read_labels_file(decl["labels_file"], where), f"{where}.labels_file")


def _read_labels_file(path_value: Any, where: str) -> list[str]:
    if not isinstance(path_value, (str, Path)) or not str(path_value):
        raise ConfigError(f"{where}.labels_file: expected a file path, got {path_value!r}")
    path = Path(path_value)
    if not path.is_file():
        raise ConfigError(f"{where}.labels_file: file {str(path)!r} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _check_user_source(source: Any, where: str) -> None:
    key = f"{where}.source"
    if not isinstance(source, Mapping):
        raise ConfigError(f"{key}: expected a mapping like {{type: folder, path: ...}}, got {source!r}")
    source_type = source.get("type")
    if source_type not in USER_SOURCE_TYPES:
        raise ConfigError(f"{key}.type: {source_type!r} is not one of {', '.join(USER_SOURCE_TYPES)}")
    needed = USER_SOURCE_TYPES[source_type]
    if not source.get(needed):
        raise ConfigError(f"{key}.{needed}: required for source type {source_type!r}")


# ---------------------------------------------------------------- shared checks


def _build_info(name: str, record: Mapping[str, Any], where: str, classes: tuple[str, ...]) -> DatasetInfo:
    templates = _check_templates(record.get("templates", list(DEFAULT_TEMPLATES)), where)
    metric = _check_choice(record.get("metric", "accuracy"), METRICS, f"{where}.metric")
    multilabel = _check_bool(record.get("multilabel", False), f"{where}.multilabel")
    if metric == "roc_auc" and len(classes) != 2:
        raise ConfigError(f"{where}.metric: roc_auc needs exactly 2 classes, found {len(classes)}")
    return DatasetInfo(
        name=name,
        classes=classes,
        slugs=tuple(class_slugs(classes)),
        templates=templates,
        metric=metric,
        multilabel=multilabel,
        splits=_freeze(_check_splits(record.get("splits"), f"{where}.splits")),
        source=_freeze(_check_source_mapping(record.get("source"), f"{where}.source")),
        index_format=_check_choice(record.get("index_format", "iris"), INDEX_FORMATS, f"{where}.index_format"),
        notes=_check_str(record.get("notes", ""), f"{where}.notes"),
    )


def _check_classes(classes: Any, where: str) -> tuple[str, ...]:
    key = where if where.endswith("labels_file") else f"{where}.classes"
    if not isinstance(classes, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of class names, got {type(classes).__name__}")
    if not classes:
        raise ConfigError(f"{key}: the class list is empty")
    for index, name in enumerate(classes):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{key}: class {index}: class name {name!r} is not a non-empty string")
        _check_class_characters(name, index, key)
    _check_duplicate_classes(classes, key)
    return tuple(classes)


def _check_class_characters(name: str, index: int, key: str) -> None:
    """Reject a class name holding a newline or other control character (it goes into prompts,
    folder names and one-line-per-class files)."""
    bad = next((ch for ch in name if unicodedata.category(ch) in CONTROL_CATEGORIES), None)
    if bad is not None:
        raise ConfigError(
            f"{key}: class {index} ({name!r}) contains the control character {bad!r}; "
            "a class name must be one line of printable text"
        )


def _check_duplicate_classes(classes, key: str) -> None:
    """Reject repeated class names, and names that are equal after NFKC normalisation and
    casefolding: "café" written with U+00E9 or as e + U+0301 prints the same, and folder
    matching and case-insensitive file systems cannot tell "Cat" from "cat"."""
    first: dict[str, int] = {}
    for index, name in enumerate(classes):
        other = first.setdefault(unicodedata.normalize("NFKC", name).casefold(), index)
        if other == index:
            continue
        if classes[other] == name:
            raise ConfigError(f"{key}: duplicated class name {name!r} (classes {other} and {index})")
        raise ConfigError(
            f"{key}: classes {other} ({ascii(classes[other])}) and {index} ({ascii(name)}) are the same name "
            "up to Unicode normalisation (NFKC) or letter case; class names must differ by more"
        )


def _check_templates(templates: Any, where: str) -> tuple[str, ...]:
    key = f"{where}.templates"
    if not isinstance(templates, (list, tuple)) or not templates:
        raise ConfigError(f"{key}: expected a non-empty list of format strings with one '{{}}'")
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ConfigError(f"{key}: template {template!r} must contain exactly one '{{}}'")
        try:
            template.format("x")
        except (IndexError, KeyError, ValueError) as exc:
            raise ConfigError(f"{key}: template {template!r} is not a valid format string: {exc}") from exc
    return tuple(templates)


def _check_splits(splits: Any, key: str) -> dict[str, int | None]:
    if splits is None:
        return {name: None for name in SPLIT_NAMES}
    _require_mapping(splits, key)
    for split, size in splits.items():
        if split not in SPLIT_NAMES:
            raise ConfigError(f"{key}: unknown split {split!r}; use {', '.join(SPLIT_NAMES)}")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise ConfigError(f"{key}.{split}: expected a non-negative integer or null, got {size!r}")
    return {name: splits.get(name) for name in SPLIT_NAMES}


def _check_source_mapping(source: Any, key: str) -> dict:
    _require_mapping(source, key)
    if not isinstance(source.get("type"), str):
        raise ConfigError(f"{key}.type: missing")
    return dict(source)


def _check_choice(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def _check_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _check_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _require_mapping(value: Any, key: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")


def _reject_unknown_keys(record: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
        )


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value
