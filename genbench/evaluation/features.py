"""Feature extraction over image indexes, feature files, and the zero-shot text classifier.

A feature set on disk (one per encoder x image index) is a directory with
``features.npy`` (float32 N x D, raw encoder output), ``labels.npy`` (int64 N, or N x C
multi-hot for multi-label indexes), ``ids.json`` (N ids in index order) and ``meta.json``
(``{"encoder", "preprocess", "dim", "count", ...}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genbench.core.errors import GenBenchError
from genbench.core.io import fill_template, l2_normalize  # noqa: F401 (l2_normalize: re-exported)
from genbench.data.imageset import ImageSetReader, class_counts, labels_of

FEATURE_FILES = ("features.npy", "labels.npy", "ids.json", "meta.json")


@dataclass
class FeatureSet:
    """Features of one image index: ``feats`` (N x D float32), ``labels``, ``ids``, ``meta``."""

    feats: np.ndarray
    labels: np.ndarray
    ids: list[str]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.feats = np.asarray(self.feats, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.ids = [str(i) for i in self.ids]
        if self.feats.ndim != 2:
            raise GenBenchError(f"FeatureSet feats must be N x D, got shape {self.feats.shape}")
        n = self.feats.shape[0]
        if len(self.labels) != n or len(self.ids) != n:
            raise GenBenchError(f"FeatureSet sizes differ: {n} feats, {len(self.labels)} labels, {len(self.ids)} ids")

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
        return FeatureSet(self.feats[rows], self.labels[rows], ids, meta)


class _EncoderImageDataset(Dataset):
    """Index-ordered images of an ImageSetReader passed through an encoder's preprocess."""

    def __init__(self, reader: ImageSetReader, preprocess):
        self.reader = reader
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(self.reader.load(i))


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
) -> FeatureSet:
    """Encode every image of an index once, in index order; returns a FeatureSet.

    Images are loaded and preprocessed by a DataLoader (``num_workers`` processes, order
    kept) and encoded in batches under ``torch.inference_mode``.
    """
    if batch_size < 1:
        raise GenBenchError(f"batch_size must be >= 1, got {batch_size}")
    reader = ImageSetReader(index_path)
    try:
        labels = labels_array(reader.records, num_classes)
    except GenBenchError as exc:
        raise GenBenchError(f"{index_path}: {exc}") from exc
    feats = _encode_index(encoder, reader, batch_size, num_workers, progress)
    meta = {
        "encoder": encoder.name,
        "preprocess": encoder.preprocess_mode,
        "dim": int(feats.shape[1]),
        "count": int(feats.shape[0]),
        "index": str(index_path),
        "num_classes": int(num_classes),
        "multilabel": bool(labels.ndim == 2),
    }
    return FeatureSet(feats, labels, [r["id"] for r in reader.records], meta)


def _encode_index(encoder, reader, batch_size: int, num_workers: int, progress: bool) -> np.ndarray:
    if len(reader) == 0:
        raise GenBenchError(f"image index {reader.index_path} is empty: nothing to encode")
    loader = DataLoader(
        _EncoderImageDataset(reader, encoder.preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=False,
    )
    chunks = []
    total = (len(reader) + batch_size - 1) // batch_size
    with torch.inference_mode():
        for batch in _progress(loader, progress, total, f"encode {Path(reader.index_path).name}"):
            chunks.append(encoder.encode_images(batch).numpy())
    return np.concatenate(chunks).astype(np.float32, copy=False)


def save_features(out_dir, fs: FeatureSet) -> None:
    """Write ``fs`` into ``out_dir`` as features.npy, labels.npy, ids.json, meta.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "features.npy", fs.feats.astype(np.float32, copy=False))
    np.save(out_dir / "labels.npy", fs.labels.astype(np.int64, copy=False))
    (out_dir / "ids.json").write_text(json.dumps(fs.ids), encoding="utf-8")
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
    try:
        return FeatureSet(feats, labels, ids, meta)
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
