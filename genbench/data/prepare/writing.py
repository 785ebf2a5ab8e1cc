"""Writing prepared splits: one deterministic store-mode zip and an index per split."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import open_image, store_zip_info, to_rgb
from genbench.data.imageset import class_counts, write_index
from genbench.data.prepare.common import SourceImage

MAX_BAD_EXAMPLES = 5


def encode_for_storage(payload, name: str) -> tuple[bytes, str]:
    """Return ``(bytes, extension)`` to store: JPEG/PNG bytes unchanged, everything else PNG.

    Raises GenBenchError naming ``name`` if the bytes cannot be decoded.
    """
    from PIL import Image

    if isinstance(payload, (bytes, bytearray)):
        image = open_image(payload, name)
        if image.format in ("JPEG", "PNG"):
            return bytes(payload), "jpg" if image.format == "JPEG" else "png"
        payload = image
    if isinstance(payload, np.ndarray):
        payload = Image.fromarray(payload)
    if not isinstance(payload, Image.Image):
        raise GenBenchError(f"image {name}: unsupported payload type {type(payload).__name__}")
    if payload.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        payload = to_rgb(payload)
    buffer = io.BytesIO()
    payload.save(buffer, format="PNG")
    return buffer.getvalue(), "png"


def _fetch_storable(item: SourceImage):
    """``(bytes, ext)`` for an item, or a string saying why the item is bad."""
    if item.label is None:
        return "no usable label"
    try:
        return encode_for_storage(item.fetch(), item.name)
    except (GenBenchError, OSError, KeyError, ValueError) as err:
        return str(err)


def write_prepared(info, splits: dict, out_dir, *, max_bad_fraction=0.01, log=print) -> dict:
    """Stream ``splits`` ({split: [SourceImage]}) into ``out_dir``'s images.zip and indexes.

    Members are numbered by the image's position in its split (zero-padded, at least 6
    digits), so ids stay stable when some images are bad. Raises GenBenchError naming the
    dataset if bad images exceed ``max_bad_fraction``; nothing is left behind then.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    zip_path = os.path.join(out_dir, "images.zip")
    tmp_zip = os.path.join(out_dir, f".images.zip.tmp-{os.getpid()}")
    indexes, bad, total = {}, [], 0
    try:
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_STORED) as archive:
            for split in sorted(splits):
                items = splits[split]
                width = max(6, len(str(max(len(items) - 1, 0))))
                records = []
                for number, item in enumerate(items):
                    total += 1
                    stored = _fetch_storable(item)
                    if isinstance(stored, str):
                        bad.append(f"{item.name}: {stored}")
                        continue
                    data, ext = stored
                    member = f"{split}/{number:0{width}d}.{ext}"
                    archive.writestr(store_zip_info(member), data)
                    records.append(
                        {
                            "id": f"{split}/{number:0{width}d}",
                            "path": f"images.zip@{member}",
                            "label": item.label,
                            "source": item.name,
                        }
                    )
                indexes[split] = records
        _check_bad_fraction(info.name, bad, total, max_bad_fraction, log)
        os.replace(tmp_zip, zip_path)
    finally:
        if os.path.exists(tmp_zip):
            os.remove(tmp_zip)
    for split, records in indexes.items():
        write_index(os.path.join(out_dir, f"{split}.jsonl"), records)
    return _summary(info, indexes, bad, total, log)


def _check_bad_fraction(name, bad, total, max_bad_fraction, log) -> None:
    if total == 0:
        raise GenBenchError(f"dataset {name}: the source holds no images")
    if bad:
        log(
            f"dataset {name}: {len(bad)} of {total} images unreadable, skipped; first: "
            + "; ".join(bad[:MAX_BAD_EXAMPLES])
        )
    if len(bad) / total > max_bad_fraction:
        raise GenBenchError(
            f"dataset {name}: {len(bad)} of {total} images are unreadable, more than "
            f"max_bad_fraction={max_bad_fraction}; first: " + "; ".join(bad[:MAX_BAD_EXAMPLES])
        )


def _summary(info, indexes, bad, total, log) -> dict:
    splits = {}
    for split, records in indexes.items():
        counts = class_counts(records, info.num_classes)
        empty = [info.classes[c] for c, n in enumerate(counts) if n == 0]
        if empty:
            log(f"dataset {info.name}: split {split} has no images of class(es) {empty[:10]}")
        splits[split] = {"count": len(records), "per_class": counts}
    return {
        "dataset": info.name,
        "splits": splits,
        "bad": {"count": len(bad), "total": total, "examples": bad[:MAX_BAD_EXAMPLES]},
    }
