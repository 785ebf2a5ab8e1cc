"""Building retrieval pools (the writer side of ``genbench.retrieval.pool``): shards of images
with captions, their image and caption embeddings (L2-normalised float32) and metadata, from
images and an encoder, from already computed features, or from a GenBench image index."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import IMAGE_DECODE_ERRORS, l2_normalize
from genbench.core.stage import StageParams, keyed
from genbench.retrieval.pool import (  # the layout
    _PIL_FORMAT_EXT,
    CORPUS_INDEX,
    POOL_INFO,
    embedding_path,
    metadata_path,
    shard_name,
)

# ----------------------------------------------------------------------------- building


@dataclass(frozen=True)
class PoolParams(StageParams):
    """A retrieval pool built by the workflow: the corpus with its captions, or a dataset's
    train split captioned with its first template (the encoder is wired in by the plan)."""

    STAGE: ClassVar[str] = "build_pool"
    VERSION: ClassVar[int] = 2
    SECTION: ClassVar[str] = "retrieval"

    captions: str = keyed(doc="corpus (retrieval.pool: corpus) or first_template (retrieval.pool: train_split)")


def l2_normalize_rows(x: np.ndarray, where: str) -> np.ndarray:
    """Rows divided by their L2 norm, as float32 (computed in float64)."""
    return l2_normalize(np.asarray(x, dtype=np.float64), axis=1, where=where).astype(np.float32)


def image_extension(data: bytes, key: str) -> str:
    """File extension of encoded image bytes ("jpg", "png" or "webp"); GenBenchError naming ``key``."""
    from PIL import Image

    try:
        fmt = Image.open(io.BytesIO(data)).format
    except IMAGE_DECODE_ERRORS as err:
        raise GenBenchError(f"pool image {key!r}: cannot decode ({err})") from None
    if fmt not in _PIL_FORMAT_EXT:
        raise GenBenchError(f"pool image {key!r}: format {fmt} not supported (jpg, png, webp)")
    return _PIL_FORMAT_EXT[fmt]


def _check_key(key) -> str:
    """Keys name tar members (``<key>.<ext>``): no '/', '.', or whitespace (webdataset splits at '.')."""
    if (
        not isinstance(key, str)
        or not key
        or any(c in key for c in "/.\\")
        or key != key.strip()
        or any(c.isspace() for c in key)
    ):
        raise GenBenchError(f"pool key {key!r} is not valid: use a non-empty name without '/', '.', or spaces")
    return key


def _read_source(source, key: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as err:
        raise GenBenchError(f"pool image {key!r}: cannot read {source}: {err.strerror}") from None


def _normalise_items(images) -> list[dict]:
    """Turn (image, caption, key[, url]) tuples into dicts; GenBenchError on a bad or repeated key."""
    items, seen = [], set()
    for number, item in enumerate(images):
        if not isinstance(item, (tuple, list)) or len(item) not in (3, 4):
            raise GenBenchError(f"pool item {number}: expected (image, caption, key[, url]), got {item!r:.80}")
        source, caption, key = item[:3]
        key = _check_key(key)
        if key in seen:
            raise GenBenchError(f"pool key {key!r} appears twice")
        if not isinstance(caption, str):
            raise GenBenchError(f"pool image {key!r}: caption must be a string, got {caption!r}")
        seen.add(key)
        url = item[3] if len(item) == 4 else (None if isinstance(source, (bytes, bytearray)) else str(source))
        items.append({"source": source, "caption": caption, "key": key, "url": url})
    return items


def _encode_image_batch(encoder, blobs: list[bytes], keys: list[str]) -> np.ndarray:
    import torch

    from genbench.data.imageset import decode_image

    batch = torch.stack([encoder.preprocess(decode_image(b, f"pool image {k!r}")) for b, k in zip(blobs, keys)])
    return encoder.encode_images(batch).numpy()


def _encode_in_batches(encode, values: list, keys: list[str], batch_size: int) -> np.ndarray:
    parts = [encode(values[i : i + batch_size], keys[i : i + batch_size]) for i in range(0, len(values), batch_size)]
    return np.concatenate(parts)


def _tar_members(items: list[dict], blobs: list[bytes], exts: list[str], extra=None) -> dict[str, bytes]:
    from PIL import Image

    members = {}
    for number, (item, blob, ext) in enumerate(zip(items, blobs, exts)):
        width, height = Image.open(io.BytesIO(blob)).size
        meta = {
            "key": item["key"],
            "caption": item["caption"],
            "url": item["url"],
            "status": "success",
            "width": width,
            "height": height,
            **(extra[number] if extra else {}),
        }
        members[f"{item['key']}.{ext}"] = blob
        members[f"{item['key']}.txt"] = item["caption"].encode("utf-8")
        members[f"{item['key']}.json"] = json.dumps(meta, sort_keys=True).encode("utf-8")
    return members


def _write_metadata(path: Path, items: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "key": [i["key"] for i in items],
            "caption": [i["caption"] for i in items],
            "url": pa.array([i["url"] for i in items], type=pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def write_pool_shard(
    pool_dir, shard: str, keys, captions, images, img_emb=None, text_emb=None, urls=None, extra=None
) -> None:
    """Write one shard of the layout from given arrays (no encoding, no normalisation).

    ``images`` are encoded image bytes (the tar gets ``<key>.<detected ext>``, ``<key>.txt``,
    ``<key>.json``); ``img_emb`` / ``text_emb`` are N x D arrays saved as given (either may
    be None to skip it); the metadata parquet gets ``key, caption, url`` in the same order.
    ``extra``: optional per-item dicts added to each ``<key>.json``.
    """
    from genbench.core.io import write_tar_atomic

    items = _normalise_items(list(zip(images, captions, keys, urls if urls is not None else [None] * len(keys))))
    blobs = [bytes(b) for b in images]
    exts = [image_extension(b, k) for b, k in zip(blobs, keys)]
    pool_dir = Path(pool_dir)
    for kind, emb in (("image", img_emb), ("text", text_emb)):
        if emb is not None:
            if len(emb) != len(items):
                raise GenBenchError(
                    f"pool shard {shard}: {kind} embeddings have {len(emb)} rows for {len(items)} images"
                )
            _save_npy(embedding_path(pool_dir, kind, shard), np.asarray(emb))
    _write_metadata(metadata_path(pool_dir, shard), items)
    write_tar_atomic(pool_dir / f"{shard}.tar", _tar_members(items, blobs, exts, extra))


def _write_shard(out_dir: Path, shard: str, items: list[dict], encoder, batch_size: int) -> int:
    blobs = [_read_source(i["source"], i["key"]) for i in items]
    keys = [i["key"] for i in items]
    img = _encode_in_batches(lambda b, k: _encode_image_batch(encoder, b, k), blobs, keys, batch_size)
    txt = _encode_in_batches(
        lambda c, k: encoder.encode_texts(list(c)).numpy(), [i["caption"] for i in items], keys, batch_size
    )
    write_pool_shard(
        out_dir,
        shard,
        keys,
        [i["caption"] for i in items],
        blobs,
        l2_normalize_rows(img, f"shard {shard} images"),
        l2_normalize_rows(txt, f"shard {shard} captions"),
        [i["url"] for i in items],
    )
    return img.shape[1]


def build_pool(images, out_dir, encoder, *, shard_size: int = 1000, batch_size: int = 64) -> dict:
    """Write a pool in the img2dataset + clip-retrieval layout (see the module docstring).

    ``images``: sequence of ``(image bytes or path, caption, key)`` or ``(..., url)``; keys are
    unique and contain no '/', '.' or whitespace. Items are cut into shards of ``shard_size``
    in the given order (shard ``00000`` first). Image rows are
    ``normalise(encoder.encode_images(stack(encoder.preprocess(image))))`` and caption rows
    ``normalise(encoder.encode_texts(captions))``, L2-normalised float32 so that inner
    products are cosine similarities. Tars are deterministic (sorted members, mtime 0).
    Returns (and writes as ``pool_info.json``) ``{"encoder", "dim", "shards", "count",
    "normalised": True, "dtype": "float32"}``.
    """
    if shard_size < 1 or batch_size < 1:
        raise GenBenchError(f"shard_size and batch_size must be >= 1, got {shard_size}, {batch_size}")
    items = _normalise_items(images)
    if not items:
        raise GenBenchError(f"build_pool({out_dir}): no images given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards, dim = [], None
    for number, start in enumerate(range(0, len(items), shard_size)):
        shards.append(shard_name(number))
        dim = _write_shard(out_dir, shards[-1], items[start : start + shard_size], encoder, batch_size)
    return _write_pool_info(out_dir, getattr(encoder, "name", None), dim, shards, len(items))


def _write_pool_info(out_dir: Path, encoder_name, dim: int, shards: list[str], count: int) -> dict:
    """``pool_info.json``: which encoder made the (L2-normalised float32) embeddings, and the shards."""
    info = {
        "encoder": encoder_name,
        "dim": int(dim),
        "shards": shards,
        "count": count,
        "normalised": True,
        "dtype": "float32",
    }
    (out_dir / POOL_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info


def build_pool_from_features(
    index_path, features, captions, out_dir, encoder, *, shard_size: int = 1000, batch_size: int = 64
) -> dict:
    """``build_pool_from_index`` reusing image features already computed for that index.

    ``features`` is the index's FeatureSet from the same encoder (genbench.evaluation.features): its rows,
    L2-normalised, are the pool's image embeddings, so no image is encoded a second time; only
    the captions go through the text tower. Same layout and ``pool_info.json`` as build_pool.
    """
    from genbench.data.imageset import ImageSetReader

    if features.meta.get("encoder") != getattr(encoder, "name", None):
        raise GenBenchError(
            f"pool {out_dir}: features were computed with {features.meta.get('encoder')!r}, "
            f"not with the pool's encoder {getattr(encoder, 'name', None)!r}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ImageSetReader(index_path) as reader:
        records = reader.records
        image_rows = l2_normalize_rows(features.select([r["id"] for r in records]).feats, f"features of {index_path}")
        shards = []
        for number, start in enumerate(range(0, len(records), shard_size)):
            chunk = records[start : start + shard_size]
            keys = [pool_key_for(r["id"]) for r in chunk]
            texts = [_caption_for(captions, r) for r in chunk]
            text_rows = _encode_in_batches(lambda c, k: encoder.encode_texts(list(c)).numpy(), texts, keys, batch_size)
            shards.append(shard_name(number))
            write_pool_shard(
                out_dir,
                shards[-1],
                keys,
                texts,
                [reader.open_bytes(r) for r in chunk],
                image_rows[start : start + shard_size],
                l2_normalize_rows(text_rows, f"shard {shards[-1]}"),
                [r["path"] for r in chunk],
            )
    return _write_pool_info(out_dir, encoder.name, image_rows.shape[1], shards, len(records))


def _caption_for(captions, record: dict) -> str:
    label = record["label"]
    if callable(captions):
        return captions(record)
    key = label if isinstance(label, int) else tuple(label)
    if key not in captions and str(key) not in captions:
        raise GenBenchError(f"no pool caption for label {label!r} (image id {record['id']!r})")
    return captions[key] if key in captions else captions[str(key)]


def pool_key_for(record_id: str) -> str:
    """A pool key made from an index id: every character other than [A-Za-z0-9_-] becomes '_'."""
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in record_id)


def build_pool_from_index(
    index_path, captions, out_dir, encoder, *, shard_size: int = 1000, batch_size: int = 64
) -> dict:
    """``build_pool`` over the images of a GenBench index.

    ``captions`` is ``{label: caption}`` (int or str keys) or a callable ``record -> caption``.
    Pool keys are ``pool_key_for(record["id"])``; the url column holds the record's path as
    written in the index (relative to the index directory). Returns ``build_pool``'s info.
    """
    from genbench.data.imageset import ImageSetReader

    with ImageSetReader(index_path) as reader:
        items = [
            (reader.open_bytes(r), _caption_for(captions, r), pool_key_for(r["id"]), r["path"]) for r in reader.records
        ]
    return build_pool(items, out_dir, encoder, shard_size=shard_size, batch_size=batch_size)


def pool_source(kind: str, images_dir: Path, info=None) -> tuple[Path, object]:
    """(image-set index, captions) of a pool built from images the workflow has.

    ``kind`` (the pool's keyed ``captions`` param) "corpus": the training corpus's index
    (``corpus.jsonl``), each image captioned by its own alt text; "first_template": the
    dataset's train split (``train.jsonl``), each image
    captioned by the dataset's first template filled with its class name (``info``: the
    dataset's DatasetInfo). Captions are a callable of the record, or a label -> text dict.
    """
    if kind == "corpus":
        return Path(images_dir) / CORPUS_INDEX, lambda record: record["caption"]
    if kind == "first_template":
        captions = {label: info.templates[0].format(name) for label, name in enumerate(info.classes)}
        return Path(images_dir) / "train.jsonl", captions
    raise GenBenchError(f"build_pool: unknown pool source {kind!r} (corpus or first_template)")
