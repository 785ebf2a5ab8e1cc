"""scikit-learn's bundled UCI digits as a source."""

from __future__ import annotations

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.data.prepare.common import SourceImage
from genbench.data.prepare.splits import _split_options, stratified_split


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (N x 32 x 32 x 3 uint8 RGB, N labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    scaled = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    upsampled = scaled.repeat(4, axis=1).repeat(4, axis=2)
    return np.repeat(upsampled[..., None], 3, axis=3), digits.target.astype(int)


def splits_from_digits(info, source, *, seed, test_fraction, **_):
    """scikit-learn's 1797 8x8 digits (0..16) scaled to 0..255, upsampled 4x (nearest) to
    32x32 RGB, split train/test by ``stratified_split`` (the source's ``seed`` and
    ``test_size`` override the arguments). Label = the digit (needs 10 classes)."""
    if info.num_classes != 10:
        raise GenBenchError(f"dataset {info.name}: the digits source needs 10 classes")
    images, labels = digits_images()
    train, test = stratified_split(labels.tolist(), *_split_options(source, seed, test_fraction))

    def item(i):
        return SourceImage(f"sklearn-digits[{i}]", int(labels[i]), lambda: images[i])

    return {"train": [item(i) for i in train], "test": [item(i) for i in test]}
