"""Retrieval pools in the public img2dataset + clip-retrieval layout.

A pool directory holds, for every shard name ``S`` (img2dataset numbers shards ``00000``,
``00001``, ...)::

    S.tar                         webdataset shard: <key>.jpg|png|webp, <key>.txt (caption),
                                  <key>.json ({"key", "caption", "url", "width", "height", ...})
    img_emb/img_emb_S.npy         image embeddings, N x D, float16 or float32
    text_emb/text_emb_S.npy       caption embeddings, N x D
    metadata/metadata_S.parquet   one row per embedding row, same order; columns
                                  ``key``, ``caption``, ``url`` (clip-retrieval also
                                  writes ``image_path``; it is used as key when ``key`` is absent)
    pool_info.json                optional (written by ``build_pool``): encoder name, dim, ...

These names follow clip-retrieval's ``inference`` writer (``img_emb/img_emb_<n>.npy``,
``text_emb/text_emb_<n>.npy``, ``metadata/metadata_<n>.parquet``, where ``<n>`` is the
partition number zero-padded to the digit count of the partition count). clip-retrieval
stores L2-normalised float16 rows; ``build_pool`` stores L2-normalised float32 rows.
Embedding partition ``S`` is read next to ``S.tar``; when a key is not in ``S.tar`` (a
clip-retrieval run whose partitions do not follow the tars) every tar is indexed by key.

Embedding rows are read with ``np.load(mmap_mode="r")`` in chunks, so memory stays bounded
by the chunk size whatever the pool size.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.data.imageset import TarMembers

EMBED_KINDS = {"image": ("img_emb", "img_emb_"), "text": ("text_emb", "text_emb_")}
IMAGE_EXTENSIONS = ("jpg", "png", "webp", "jpeg")
_PIL_FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
POOL_INFO = "pool_info.json"
# A captioned corpus in this layout, as an image set (genbench.data.imageset): its index names
# each image and its caption, so that the feature stage encodes it once and a pool built from
# it reuses those rows. A pool carries no class: label 0.
CORPUS_INDEX = "corpus.jsonl"
DEFAULT_CHUNK_ROWS = 16384


# ----------------------------------------------------------------------------- paths


def embedding_path(pool_dir, kind: str, shard: str) -> Path:
    """``<pool>/img_emb/img_emb_<shard>.npy`` (kind "image") or ``text_emb/text_emb_<shard>.npy``."""
    folder, prefix = _kind_names(kind)
    return Path(pool_dir) / folder / f"{prefix}{shard}.npy"


def metadata_path(pool_dir, shard: str) -> Path:
    """``<pool>/metadata/metadata_<shard>.parquet``."""
    return Path(pool_dir) / "metadata" / f"metadata_{shard}.parquet"


def _kind_names(kind: str) -> tuple[str, str]:
    if kind not in EMBED_KINDS:
        raise GenBenchError(f"unknown embedding kind {kind!r}; valid: {sorted(EMBED_KINDS)}")
    return EMBED_KINDS[kind]


def shard_name(number: int) -> str:
    """img2dataset's shard name: the shard number zero-padded to 5 digits."""
    return f"{number:05d}"


# ----------------------------------------------------------------------------- reading


class _TarIndex(TarMembers):
    """A pool shard's tar: the image-set tar reader, plus finding a key's image member."""

    def __init__(self, path: Path):
        try:
            super().__init__(str(path))
        except (OSError, GenBenchError) as err:
            raise GenBenchError(f"pool shard {path}: cannot read tar ({err})") from None

    def image_member(self, key: str) -> str | None:
        for ext in IMAGE_EXTENSIONS:
            if f"{key}.{ext}" in self.offsets:
                return f"{key}.{ext}"
        return None


def _shard_sort_key(name: str):
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


@dataclass
class Pool:
    """An opened pool: shard names (sorted; numeric names by number) and lazy readers."""

    root: Path
    shards: list[str]
    info: dict

    def __post_init__(self):
        self._tars: dict[str, _TarIndex] = {}
        self._key_to_tar: dict[str, str] | None = None
        self._rows: dict[str, int] = {}

    # -- metadata
    def metadata(self, shard: str) -> list[dict]:
        """Rows of ``metadata_<shard>.parquet`` as dicts with at least ``key`` and ``caption``."""
        import pyarrow.parquet as pq

        path = self._shard_file(metadata_path(self.root, shard), shard)
        rows = pq.read_table(path).to_pylist()
        for row in rows:
            if "key" not in row:
                if "image_path" not in row:
                    raise GenBenchError(f"pool shard {shard}: {path} has neither a 'key' nor an 'image_path' column")
                row["key"] = row["image_path"]
            row.setdefault("caption", None)
        return rows

    def num_rows(self, shard: str) -> int:
        """Row count of the shard's metadata parquet (from its footer, nothing else read)."""
        import pyarrow.parquet as pq

        if shard not in self._rows:
            path = self._shard_file(metadata_path(self.root, shard), shard)
            self._rows[shard] = pq.ParquetFile(path).metadata.num_rows
        return self._rows[shard]

    def _shard_file(self, path: Path, shard: str) -> Path:
        if shard not in self.shards:
            raise GenBenchError(f"pool {self.root} has no shard {shard!r}")
        if not path.is_file():
            raise GenBenchError(f"pool shard {shard}: missing file {path}")
        return path

    # -- embeddings
    def embeddings(self, kind: str, shard: str, dim: int | None = None) -> np.ndarray:
        """Memory-mapped N x D embedding matrix of a shard, validated against its metadata.

        GenBenchError naming the shard when the file is missing, is not 2-d float, its row
        count differs from the metadata rows, or ``dim`` is given and differs from D.
        """
        path = self._shard_file(embedding_path(self.root, kind, shard), shard)
        try:
            emb = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise GenBenchError(f"pool shard {shard}: cannot read {path}: {err}") from None
        if emb.ndim != 2 or emb.dtype.kind != "f":
            raise GenBenchError(f"pool shard {shard}: {path} must be a 2-d float array, got {emb.dtype} {emb.shape}")
        if emb.shape[0] != self.num_rows(shard):
            raise GenBenchError(
                f"pool shard {shard}: {path} has {emb.shape[0]} rows but its metadata has {self.num_rows(shard)} rows"
            )
        if dim is not None and emb.shape[1] != dim:
            raise GenBenchError(
                f"pool shard {shard}: {kind} embeddings have dim {emb.shape[1]}, the query encoder's dim is {dim}"
            )
        return emb

    def rows(self, kind: str, shard: str, rows) -> np.ndarray:
        """float32 copies of the given rows of a shard's embeddings."""
        return np.asarray(self.embeddings(kind, shard)[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def iter_chunks(self, kind: str = "text", chunk_rows: int = DEFAULT_CHUNK_ROWS, dim: int | None = None):
        """Yield ``(shard, row_offset, chunk)`` over all shards in order; chunk is float32 (<= chunk_rows x D).

        Every shard is validated first (see ``embeddings``); a chunk with a non-finite value
        raises GenBenchError naming the shard and row range.
        """
        if chunk_rows < 1:
            raise GenBenchError(f"chunk_rows must be >= 1, got {chunk_rows}")
        for shard in self.shards:
            emb = self.embeddings(kind, shard, dim)
            for start in range(0, emb.shape[0], chunk_rows):
                chunk = np.asarray(emb[start : start + chunk_rows], dtype=np.float32)
                if not np.all(np.isfinite(chunk)):
                    raise GenBenchError(
                        f"pool shard {shard}: {kind} embedding rows {start}..{start + len(chunk) - 1} "
                        "contain NaN or inf"
                    )
                yield shard, start, chunk

    def total_rows(self) -> int:
        """Number of rows over all shards (from the metadata footers)."""
        return sum(self.num_rows(s) for s in self.shards)

    # -- images
    def _tar(self, shard: str) -> _TarIndex | None:
        if shard not in self._tars:
            path = self.root / f"{shard}.tar"
            self._tars[shard] = _TarIndex(path) if path.is_file() else None
        return self._tars[shard]

    def _find_key(self, key: str) -> tuple[_TarIndex, str] | None:
        if self._key_to_tar is None:
            self._key_to_tar = {}
            for path in sorted(self.root.glob("*.tar")):
                for member in _TarIndex(path).offsets:
                    stem, _, ext = member.partition(".")
                    if ext in IMAGE_EXTENSIONS:
                        self._key_to_tar.setdefault(stem, path.stem)
        tar_name = self._key_to_tar.get(key)
        if tar_name is None:
            return None
        tar = self._tar_by_name(tar_name)
        return tar, tar.image_member(key)

    def _tar_by_name(self, name: str) -> _TarIndex:
        if name not in self._tars or self._tars[name] is None:
            self._tars[name] = _TarIndex(self.root / f"{name}.tar")
        return self._tars[name]

    def image_member(self, shard: str, key: str) -> tuple[str, bytes]:
        """``(extension, bytes)`` of the image ``<key>.<ext>`` of ``<shard>.tar`` (or any tar holding key)."""
        tar = self._tar(shard)
        member = tar.image_member(key) if tar is not None else None
        if member is None:
            found = self._find_key(key)
            if found is None:
                raise GenBenchError(f"pool {self.root}: image for key {key!r} (shard {shard}) not found in any tar")
            tar, member = found
        return member.rsplit(".", 1)[1], tar.read(member)

    def read_image(self, shard: str, key: str) -> bytes:
        """Encoded bytes of the image with ``key`` listed in ``shard``."""
        return self.image_member(shard, key)[1]


def open_pool(pool_dir) -> Pool:
    """Open a pool directory; its shards are the ``metadata/metadata_<shard>.parquet`` files.

    GenBenchError when the directory or its metadata files are missing. ``pool_info.json``
    is read when present (``Pool.info``; ``{}`` otherwise). Embedding files are validated
    lazily, per shard, when read.
    """
    root = Path(pool_dir)
    if not root.is_dir():
        raise GenBenchError(f"pool directory {root} does not exist")
    files = glob.glob(glob.escape(str(root / "metadata")) + "/metadata_*.parquet")
    shards = sorted((Path(f).name[len("metadata_") : -len(".parquet")] for f in files), key=_shard_sort_key)
    if not shards:
        raise GenBenchError(f"pool {root}: no metadata/metadata_<shard>.parquet files")
    info_path = root / POOL_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    return Pool(root=root, shards=shards, info=info)


def faiss_index_path(pool: "Pool", kind: str) -> Path:
    """The pool's faiss index over its ``kind`` embeddings, rows in pool order:
    ``<pool>/<kind>.index`` (clip-retrieval's index folder names them ``image.index`` and
    ``text.index``). GenBenchError naming the path when it is absent."""
    path = Path(pool.root) / f"{kind}.index"
    if not path.is_file():
        raise GenBenchError(
            f"retrieval.index: faiss needs the pool's index {path} (autofaiss writes it from the "
            f"pool's {EMBED_KINDS[kind][0]}/ folder); or set retrieval.index: exact"
        )
    return path
