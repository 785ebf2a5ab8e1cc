"""Image sets: JSON-lines indexes of images stored as files or archive members.

An index holds one JSON object per line::

    {"id": "train/000123", "path": "images.zip@train/000123.png", "label": 3}

``id`` is unique within the index; ``label`` is an int class id (0-based, registry
order) or a list of ints for multi-label datasets; other keys are metadata.
``path`` is relative to the index file's directory: ``a.zip@member`` names a member of a
zip archive, ``a.tar@member`` a member of an uncompressed tar, anything else a file.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import zipfile
from typing import TYPE_CHECKING

from genbench.core.errors import GenBenchError
from genbench.core.io import open_image, to_rgb

if TYPE_CHECKING:
    from PIL import Image

REQUIRED_KEYS = ("id", "path", "label")
_ARCHIVE_PATH = re.compile(r"^(?P<archive>.*?\.(?P<kind>zip|tar))@(?P<member>.+)$")


# ----------------------------------------------------------------------------- index I/O


def _check_label(label, where: str) -> None:
    """Raise unless ``label`` is an int or a list of ints (bools are rejected)."""

    def is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    if is_int(label):
        return
    if isinstance(label, list) and all(is_int(v) for v in label):
        return
    raise GenBenchError(f"{where}: 'label' must be an int or a list of ints, got {label!r}")


def check_record(record, where: str) -> None:
    """Raise GenBenchError (prefixed with ``where``) unless ``record`` is a valid index record."""
    if not isinstance(record, dict):
        raise GenBenchError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise GenBenchError(f"{where}: missing key(s) {', '.join(missing)}")
    if not isinstance(record["id"], str) or not record["id"]:
        raise GenBenchError(f"{where}: 'id' must be a non-empty string, got {record['id']!r}")
    if not isinstance(record["path"], str) or not record["path"]:
        raise GenBenchError(f"{where}: 'path' must be a non-empty string, got {record['path']!r}")
    _check_label(record["label"], where)


def read_index(path) -> list[dict]:
    """Read a JSON-lines image index.

    Returns the records in file order. Blank lines are skipped. Raises GenBenchError naming
    the file and line number on malformed JSON, a missing or ill-typed id/path/label, or an
    id that repeats an earlier line's id.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise GenBenchError(f"image index {path} does not exist")
    records, seen = [], {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise GenBenchError(f"{where}: malformed JSON ({err.msg})") from None
            check_record(record, where)
            if record["id"] in seen:
                raise GenBenchError(f"{where}: duplicate id {record['id']!r} (first on line {seen[record['id']]})")
            seen[record["id"]] = lineno
            records.append(record)
    return records


def write_index(path, records) -> None:
    """Write ``records`` as a JSON-lines index at ``path``, atomically.

    Every record is validated (see ``check_record``) and ids must be unique; the file is
    written to a temporary name in the same directory, then moved into place with
    ``os.replace``, so readers never see a partial index.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    lines, seen = [], set()
    for number, record in enumerate(records):
        where = f"record {number} for {path}"
        check_record(record, where)
        if record["id"] in seen:
            raise GenBenchError(f"{where}: duplicate id {record['id']!r}")
        seen.add(record["id"])
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def split_path(path: str):
    """Split an index path into ``(kind, location, member)``.

    ``kind`` is ``"zip"``, ``"tar"`` or ``"file"``; ``member`` is None for plain files.
    """
    match = _ARCHIVE_PATH.match(path)
    if match is None:
        return "file", path, None
    return match["kind"], match["archive"], match["member"]


def class_counts(records, num_classes: int) -> list[int]:
    """Count images per class id (a multi-label record counts once toward each label).

    Raises GenBenchError on a label outside ``0..num_classes-1``.
    """
    counts = [0] * num_classes
    for record in records:
        for label in labels_of(record):
            if not 0 <= label < num_classes:
                raise GenBenchError(f"record {record.get('id')!r}: label {label} outside 0..{num_classes - 1}")
            counts[label] += 1
    return counts


def labels_of(record) -> list[int]:
    """The record's labels as a list (one element for single-label records)."""
    label = record["label"]
    return list(label) if isinstance(label, list) else [label]


def decode_image(data: bytes, name: str) -> Image.Image:
    """Decode encoded image bytes into an RGB PIL image; GenBenchError naming ``name`` if not."""
    return to_rgb(open_image(data, name))


# ----------------------------------------------------------------------------- archives


class TarMembers:
    """Read members of an uncompressed tar by seeking to offsets indexed once."""

    def __init__(self, tar_path: str):
        self.tar_path = tar_path
        self.offsets = {}
        try:
            with tarfile.open(tar_path, mode="r:") as tar:
                for info in tar:
                    if info.isfile():
                        self.offsets[info.name] = (info.offset_data, info.size)
        except tarfile.ReadError as err:
            raise GenBenchError(f"{tar_path} is not an uncompressed tar archive: {err}") from None
        self.handle = open(tar_path, "rb")

    def read(self, member: str) -> bytes:
        if member not in self.offsets:
            raise GenBenchError(f"member {member!r} not found in {self.tar_path}")
        offset, size = self.offsets[member]
        self.handle.seek(offset)
        return self.handle.read(size)

    def close(self) -> None:
        self.handle.close()


class _ZipMembers:
    """Read members of a zip archive."""

    def __init__(self, zip_path: str):
        self.zip_path = zip_path
        try:
            self.archive = zipfile.ZipFile(zip_path)
        except zipfile.BadZipFile as err:
            raise GenBenchError(f"{zip_path} is not a zip archive: {err}") from None

    def read(self, member: str) -> bytes:
        try:
            return self.archive.read(member)
        except KeyError:
            raise GenBenchError(f"member {member!r} not found in {self.zip_path}") from None

    def close(self) -> None:
        self.archive.close()


class ImageSetReader:
    """Random access to the images of one index.

    Archive handles are opened lazily and cached per process (the cache is keyed by
    ``os.getpid()`` and dropped when pickled), so a reader can be handed to DataLoader
    workers, each of which opens its own handles.
    """

    def __init__(self, index_path, records=None):
        """Open the index at ``index_path`` (or use ``records``, resolved relative to it)."""
        self.index_path = os.path.abspath(os.fspath(index_path))
        self.root = os.path.dirname(self.index_path)
        self.records = read_index(self.index_path) if records is None else list(records)
        self._archives = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_archives"] = {}
        return state

    def _archive(self, kind: str, location: str):
        if self._pid != os.getpid():
            self._archives, self._pid = {}, os.getpid()
        path = os.path.normpath(os.path.join(self.root, location))
        if path not in self._archives:
            if not os.path.isfile(path):
                raise GenBenchError(f"archive {path} (named in {self.index_path}) does not exist")
            self._archives[path] = _ZipMembers(path) if kind == "zip" else TarMembers(path)
        return self._archives[path]

    def open_bytes(self, record) -> bytes:
        """The encoded bytes of ``record``'s image; GenBenchError if the file/member is missing."""
        kind, location, member = split_path(record["path"])
        if kind == "file":
            path = os.path.join(self.root, location)
            try:
                with open(path, "rb") as handle:
                    return handle.read()
            except OSError as err:
                raise GenBenchError(
                    f"cannot read image {path} (id {record['id']!r} in {self.index_path}): {err.strerror}"
                ) from None
        return self._archive(kind, location).read(member)

    def load_record(self, record) -> Image.Image:
        """Decode ``record``'s image as an RGB PIL image."""
        return decode_image(self.open_bytes(record), f"{record['path']} ({self.index_path})")

    def load(self, i: int) -> Image.Image:
        """Decode the ``i``-th image of the index as an RGB PIL image."""
        return self.load_record(self.records[i])

    def close(self) -> None:
        """Close every archive handle this process opened."""
        for archive in self._archives.values():
            archive.close()
        self._archives = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_image(index_path, record) -> Image.Image:
    """Load one record of the index at ``index_path`` as an RGB PIL image (no caching)."""
    with ImageSetReader(index_path, records=[record]) as reader:
        return reader.load_record(record)
