"""Small shared helpers: progress messages, template filling, L2 normalisation, zip members,
deterministic tars, temporary-file names and image decoding. Each exists once; the stages import them from here."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from genbench.core.errors import GenBenchError

# Fixed zip member metadata, so the same images always give the same zip bytes.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_MODE = 0o100644  # a regular file, rw-r--r--
# What PIL raises for bytes it cannot decode (UnidentifiedImageError is an OSError).
IMAGE_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError)


def emit(log, message: str) -> None:
    """Send ``message`` to ``log``: a logger (``.info``), a callable, or nothing (None)."""
    if log is not None:
        (log.info if hasattr(log, "info") else log)(message)


def fill_template(template: str, name: str) -> str:
    """``template.format(name)``; GenBenchError when the template has no ``{}``."""
    if "{}" not in template:
        raise GenBenchError(f"prompt template {template!r} has no '{{}}' for the class name")
    return template.format(name)


def l2_normalize(x: np.ndarray, axis: int = -1, where: str = "x") -> np.ndarray:
    """``x / ||x||_2`` along ``axis`` (dtype kept for floats); GenBenchError naming ``where``
    on a zero or non-finite vector (it has no direction)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=axis, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise GenBenchError(f"{where} has rows of norm zero (or not finite): cannot L2-normalise them")
    return x / norms


def store_zip_info(member: str) -> zipfile.ZipInfo:
    """A store-mode (uncompressed) zip member with fixed date and permissions."""
    info = zipfile.ZipInfo(member, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # unix, so the mode below is read
    info.external_attr = ZIP_MODE << 16
    return info


def open_image(data: bytes, name: str):
    """The decoded PIL image of ``data`` (fully loaded); GenBenchError naming ``name``.

    An image of more than Pillow's ``Image.MAX_IMAGE_PIXELS`` (89,478,485) pixels is refused,
    not decoded with a warning: a decompression bomb, or a scan no recognition benchmark
    needs at full size. The message names the file and never a Python object."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except UnidentifiedImageError:
        raise GenBenchError(f"cannot decode image {name}: not an image format Pillow reads") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise GenBenchError(
            f"cannot decode image {name}: more than {Image.MAX_IMAGE_PIXELS:,} pixels (Pillow's limit)"
        ) from None
    except IMAGE_DECODE_ERRORS as err:
        raise GenBenchError(f"cannot decode image {name}: {err}") from None
    return image


def to_rgb(image):
    """An RGB image of 8 bits per channel that keeps the picture's levels.

    16-bit modes (``I;16*``, and ``I``, which is how 16-bit PNGs may decode) are rescaled by
    the full 16-bit range, v * 255 / 65535 rounded (values clipped to [0, 65535] first), so a
    16-bit copy of an 8-bit picture decodes to the same pixels; Pillow's own conversion would
    clip them instead. Float images (``F``) map [0, 1] to [0, 255]. Every other mode goes
    through Pillow's ``convert("RGB")`` (alpha dropped, palettes expanded). EXIF orientation
    is not applied, as in torchvision, ELEVATER and CLIP's preprocessing."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        levels = np.clip(np.asarray(image, dtype=np.float64), 0, 65535) * 255.0 / 65535.0
    elif image.mode == "F":
        levels = np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 255.0
    else:
        return image.convert("RGB")
    return Image.fromarray(np.rint(levels).astype(np.uint8), mode="L").convert("RGB")


def job_tag() -> str:
    """``<host>-<pid>-<random>``: names temporary files so that a dead job's can be found."""
    import socket
    import uuid

    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _tar_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def write_tar_atomic(out_tar_path, members: dict[str, bytes]) -> None:
    """Write ``members`` (name -> bytes) as a deterministic uncompressed tar, atomically."""
    out_tar_path = Path(out_tar_path)
    out_tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_tar_path.with_name(f".{out_tar_path.name}.tmp-{job_tag()}")
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name in sorted(members):
                tar.addfile(*_tar_member(name, members[name]))
        os.replace(tmp, out_tar_path)
    finally:
        if tmp.exists():
            tmp.unlink()
