"""Feature extraction over image indexes, feature files, and the zero-shot text classifier.

A feature set on disk (one per encoder x image index) is a directory with
``features.npy`` (float32 N x D, raw encoder output), ``labels.npy`` (int64 N, or N x C
multi-hot for multi-label indexes), ``ids.json`` (N ids in index order), ``digests.json``
(the sha256 of each image's stored bytes, index order) and ``meta.json`` (``{"encoder",
"preprocess", "dim", "count", ...}``).

Features are computed once per (encoder, image content): ``extract_image_features`` encodes
each distinct image of an index once, and takes the row of an image that a ``reuse`` feature
set of the same encoder already holds (by content digest) instead of encoding it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import fill_template, l2_normalize  # noqa: F401 (l2_normalize: re-exported)
from genbench.core.stage import StageParams, keyed, keyed_if_changed, runtime
from genbench.data.imageset import ImageSetReader, class_counts, labels_of

FEATURE_FILES = ("features.npy", "labels.npy", "ids.json", "meta.json")


@dataclass(frozen=True)
class FeaturesParams(StageParams):
    """One image set encoded by one encoder (the encoder's identity is wired in by the plan)."""

    STAGE: ClassVar[str] = "features"
    VERSION: ClassVar[int] = 3
    SECTION: ClassVar[str] = "features"

    split: str = keyed(doc="the index encoded: train, val, test, images (a generated / retrieved set) or corpus")
    device: str = keyed(doc="CPU and CUDA features differ in the last bits")
    batch_size: int = runtime(64, doc="batch-invariant: not in the key")
    num_workers: int = runtime(0, doc="DataLoader workers")


@dataclass(frozen=True)
class TextClassifierParams(StageParams):
    """Per class, the text embedding of the dataset's templates (averaged) or of one prompt."""

    STAGE: ClassVar[str] = "text_classifier"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "features"

    device: str = keyed(doc="where the text tower runs")
    prompt: str | None = keyed_if_changed(
        None, config="pack.selection_prompt", doc="one prompt instead of the templates"
    )


@dataclass
class FeatureSet:
    """Features of one image index: ``feats`` (N x D float32), ``labels``, ``ids``, ``meta``."""

    feats: np.ndarray
    labels: np.ndarray
    ids: list[str]
    meta: dict = field(default_factory=dict)
    digests: list[str] | None = None  # sha256 of each image's stored bytes, when known

    def __post_init__(self):
        self.feats = np.asarray(self.feats, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.ids = [str(i) for i in self.ids]
        if self.feats.ndim != 2:
            raise GenBenchError(f"FeatureSet feats must be N x D, got shape {self.feats.shape}")
        n = self.feats.shape[0]
        if len(self.labels) != n or len(self.ids) != n:
            raise GenBenchError(f"FeatureSet sizes differ: {n} feats, {len(self.labels)} labels, {len(self.ids)} ids")
        if self.digests is not None and len(self.digests) != n:
            raise GenBenchError(f"FeatureSet sizes differ: {n} feats, {len(self.digests)} digests")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def multilabel(self) -> bool:
        """True when labels are N x C multi-hot."""
        return self.labels.ndim == 2

    def rows(self, ids) -> np.ndarray:
        """Row numbers of ``ids``; GenBenchError naming the first id that is absent."""
        position = {id_: row for row, id_ in enumerate(self.ids)}
        rows = []
        for id_ in ids:
            if id_ not in position:
                source = self.meta.get("index", "this feature set")
                raise GenBenchError(f"id {id_!r} is not in the features of {source} ({len(self)} ids)")
            rows.append(position[id_])
        return np.asarray(rows, dtype=np.int64)

    def select(self, ids) -> "FeatureSet":
        """A new FeatureSet with the rows of ``ids``, in the order given."""
        ids = list(ids)
        rows = self.rows(ids)
        meta = dict(self.meta, count=len(ids))
        digests = [self.digests[r] for r in rows] if self.digests is not None else None
        return FeatureSet(self.feats[rows], self.labels[rows], ids, meta, digests)


class _EncoderImageDataset:
    """The given rows of an ImageSetReader, in order, passed through an encoder's preprocess
    (a map-style dataset for torch's DataLoader)."""

    def __init__(self, reader: ImageSetReader, preprocess, rows: list[int]):
        self.reader = reader
        self.preprocess = preprocess
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return self.preprocess(self.reader.load(self.rows[i]))


def image_digests(reader: ImageSetReader) -> list[str]:
    """sha256 hex digest of each record's stored image bytes, in index order."""
    import hashlib

    return [hashlib.sha256(reader.open_bytes(r)).hexdigest() for r in reader.records]


def _reusable_rows(reuse: list["FeatureSet"], encoder_name: str) -> dict[str, np.ndarray]:
    """digest -> feature row of every image the ``reuse`` sets hold (same encoder only)."""
    known = {}
    for other in reuse:
        if other.digests is None:
            raise GenBenchError(f"feature set {other.meta.get('index', '?')} has no digests.json to reuse rows from")
        if other.meta.get("encoder") != encoder_name:
            raise GenBenchError(
                f"cannot reuse features of encoder {other.meta.get('encoder')!r} for encoder {encoder_name!r}"
            )
        for digest, row in zip(other.digests, other.feats):
            known.setdefault(digest, row)
    return known


def labels_array(records, num_classes: int) -> np.ndarray:
    """int64 labels: N for single-label records, N x C multi-hot if any record is multi-label.

    Raises GenBenchError naming the record whose label is outside ``0..num_classes-1``.
    """
    class_counts(records, num_classes)  # validates every label id
    if not any(isinstance(r["label"], list) for r in records):
        return np.asarray([r["label"] for r in records], dtype=np.int64).reshape(len(records))
    labels = np.zeros((len(records), num_classes), dtype=np.int64)
    for row, record in enumerate(records):
        labels[row, labels_of(record)] = 1
    return labels


def _progress(iterable, enabled: bool, total: int, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch")


def extract_image_features(
    encoder,
    index_path,
    *,
    num_classes: int,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    reuse: list[FeatureSet] | None = None,
) -> FeatureSet:
    """Encode an index's images, in index order, once per distinct image; returns a FeatureSet.

    Images are keyed by the sha256 of their stored bytes: an image whose digest a ``reuse``
    set (same encoder) holds takes that row, a repeated image takes its first copy's row, and
    only the rest are loaded, preprocessed by a DataLoader (``num_workers`` processes, order
    kept) and encoded in batches under ``torch.inference_mode``. ``meta["reused"]`` counts the
    rows not encoded here.
    """
    if batch_size < 1:
        raise GenBenchError(f"batch_size must be >= 1, got {batch_size}")
    reader = ImageSetReader(index_path)
    try:
        labels = labels_array(reader.records, num_classes)
    except GenBenchError as exc:
        raise GenBenchError(f"{index_path}: {exc}") from exc
    if len(reader) == 0:
        raise GenBenchError(f"image index {reader.index_path} is empty: nothing to encode")
    digests = image_digests(reader)
    known = _reusable_rows(reuse or [], encoder.name)
    first = {}
    for row, digest in enumerate(digests):
        if digest not in known:
            first.setdefault(digest, row)
    to_encode = sorted(first.values())
    encoded = dict(
        zip(
            (digests[r] for r in to_encode), _encode_rows(encoder, reader, to_encode, batch_size, num_workers, progress)
        )
    )
    feats = np.stack([known[d] if d in known else encoded[d] for d in digests]).astype(np.float32, copy=False)
    meta = {
        "encoder": encoder.name,
        "preprocess": encoder.preprocess_mode,
        "dim": int(feats.shape[1]),
        "count": int(feats.shape[0]),
        "index": portable_index_name(index_path),
        "num_classes": int(num_classes),
        "multilabel": bool(labels.ndim == 2),
        "reused": int(len(digests) - len(to_encode)),
    }
    return FeatureSet(feats, labels, [r["id"] for r in reader.records], meta, digests)


def portable_index_name(index_path) -> str:
    """The index as ``<stage>/<scope>/<artifact folder>/<file>``: the same artifact has the same
    bytes in every clone and results folder (never an absolute path)."""
    return "/".join(Path(index_path).parts[-4:])


def _encode_rows(encoder, reader, rows: list[int], batch_size: int, num_workers: int, progress: bool):
    """Encoder features of the given rows of ``reader``, in order (an empty list for none)."""
    if not rows:
        return []
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _EncoderImageDataset(reader, encoder.preprocess, rows),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=False,
    )
    chunks = []
    total = (len(rows) + batch_size - 1) // batch_size
    with torch.inference_mode():
        for batch in _progress(loader, progress, total, f"encode {Path(reader.index_path).name}"):
            chunks.append(encoder.encode_images(batch).numpy())
    return list(np.concatenate(chunks).astype(np.float32, copy=False))


def save_features(out_dir, fs: FeatureSet) -> None:
    """Write ``fs`` into ``out_dir`` as features.npy, labels.npy, ids.json, meta.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "features.npy", fs.feats.astype(np.float32, copy=False))
    np.save(out_dir / "labels.npy", fs.labels.astype(np.int64, copy=False))
    (out_dir / "ids.json").write_text(json.dumps(fs.ids), encoding="utf-8")
    if fs.digests is not None:
        (out_dir / "digests.json").write_text(json.dumps(fs.digests), encoding="utf-8")
    meta = dict(fs.meta, dim=int(fs.feats.shape[1]), count=len(fs))
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def load_features(directory) -> FeatureSet:
    """Read a feature set written by ``save_features``; GenBenchError naming a missing file."""
    directory = Path(directory)
    for name in FEATURE_FILES:
        if not (directory / name).is_file():
            raise GenBenchError(f"feature set {directory} is missing {name}")
    feats = np.load(directory / "features.npy")
    labels = np.load(directory / "labels.npy")
    ids = json.loads((directory / "ids.json").read_text(encoding="utf-8"))
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    digests_file = directory / "digests.json"
    digests = json.loads(digests_file.read_text(encoding="utf-8")) if digests_file.is_file() else None
    try:
        return FeatureSet(feats, labels, ids, meta, digests)
    except GenBenchError as exc:
        raise GenBenchError(f"feature set {directory}: {exc}") from exc


def build_text_classifier(encoder, class_names, templates, batch_size: int = 256) -> np.ndarray:
    """Zero-shot classifier (C x D float32): per class, the L2-normalised mean of the
    L2-normalised embeddings of every template filled with the class name."""
    if not getattr(encoder, "has_text", False):
        raise GenBenchError(
            f"encoder {encoder.name!r} has no text tower: no text classifier (zero_shot, cler and the CLIP "
            "scores need one); models.encoder and pack.selection_encoder must be CLIP-like encoders"
        )
    class_names, templates = list(class_names), list(templates)
    if not class_names or not templates:
        raise GenBenchError(f"text classifier needs classes and templates, got {len(class_names)} and {len(templates)}")
    texts = [fill_template(template, name) for name in class_names for template in templates]
    emb = _encode_texts_batched(encoder, texts, batch_size)
    emb = l2_normalize(emb.reshape(len(class_names), len(templates), -1))
    return l2_normalize(emb.mean(axis=1)).astype(np.float32)


def _encode_texts_batched(encoder, texts: list[str], batch_size: int) -> np.ndarray:
    chunks = [encoder.encode_texts(texts[i : i + batch_size]).numpy() for i in range(0, len(texts), batch_size)]
    return np.concatenate(chunks).astype(np.float64)


def encode_image_set(encoder_spec: dict, images_dir, params: FeaturesParams, num_classes: int, reuse=()):
    """(FeatureSet, encoder) of the ``<split>.jsonl`` index in ``images_dir``, encoded by the
    encoder of ``encoder_spec`` on ``params.device``; rows of ``reuse`` feature sets are taken
    by content digest instead of encoded again."""
    from genbench.evaluation.encoders import load_encoder

    encoder = load_encoder(encoder_spec, device=params.device)
    features = extract_image_features(
        encoder,
        Path(images_dir) / f"{params.split}.jsonl",
        num_classes=num_classes,
        batch_size=params.batch_size,
        num_workers=params.num_workers,
        reuse=list(reuse),
    )
    return features, encoder


def text_classifier_of(encoder_spec: dict, params: TextClassifierParams, class_names, templates):
    """(C x D classifier, encoder): ``build_text_classifier`` over the templates, or over the
    one prompt of ``params``."""
    from genbench.evaluation.encoders import load_encoder

    encoder = load_encoder(encoder_spec, device=params.device)
    prompts = [params.prompt] if params.prompt else list(templates)
    return build_text_classifier(encoder, list(class_names), prompts), encoder
