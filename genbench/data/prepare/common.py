"""What every source adapter shares: the image record, split names, file readers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass(frozen=True)
class SourceImage:
    """One image of a split: ``name`` says where it comes from, ``fetch()`` returns
    encoded bytes or a PIL image, ``label`` is a registry class id or list of ids
    (or None when the source gave no usable label, which makes the image bad)."""

    name: str
    label: object
    fetch: Callable[[], object]


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
