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

from dataclasses import dataclass
from typing import ClassVar

from genbench.core.errors import GenBenchError
from genbench.core.stage import StageParams, keyed, runtime
from genbench.data.prepare.common import SPLITS, SourceImage  # noqa: F401 (re-exported)
from genbench.data.prepare.names import map_class_names, normalise_name  # noqa: F401 (re-exported)
from genbench.data.prepare.sources.digits import splits_from_digits
from genbench.data.prepare.sources.elevater import splits_from_elevater
from genbench.data.prepare.sources.folder import splits_from_folder
from genbench.data.prepare.sources.torchvision import splits_from_torchvision, torchvision_label_map  # noqa: F401
from genbench.data.prepare.splits import stratified_split  # noqa: F401 (re-exported)
from genbench.data.prepare.writing import encode_for_storage, write_prepared  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class PrepareParams(StageParams):
    """A dataset's real splits (``data``). The source declaration (paths left out) and the
    identity of its files (content fingerprint, package version or download) are keyed; the
    folder they are read from is not."""

    STAGE: ClassVar[str] = "prepare"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "data"

    source: dict = keyed(doc="the dataset's source declaration without its paths")
    data: dict = keyed(doc="what identifies the files: their content, the package or the download")
    download: bool = keyed(doc="let torchvision download datasets it knows how to fetch")
    seed: int = keyed(doc="train/test split seed for sources without an official split")
    test_fraction: float = keyed(doc="test share of that split")
    max_bad_fraction: float = keyed(doc="unreadable images allowed before the stage stops")
    root: str | None = runtime(None, doc="data.roots.<dataset> or data.root_dir/<dataset>")
    stat_cache: str | None = runtime(None, doc="the results' stat cache (file digests)")


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


def prepare_splits(info, params: PrepareParams, out_dir, log=print) -> dict:
    """``prepare_dataset`` of ``info`` from its source as ``params`` say (read from
    ``params.root`` when there is one)."""
    source = dict(params.source)
    if params.root:
        source["root"] = source["path"] = params.root
    return prepare_dataset(
        info,
        source,
        out_dir,
        seed=params.seed,
        test_fraction=params.test_fraction,
        max_bad_fraction=params.max_bad_fraction,
        download=params.download,
        log=log,
    )
