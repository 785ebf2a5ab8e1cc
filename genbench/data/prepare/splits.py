"""Seeded stratified train/test splits for sources without an official test split."""

from __future__ import annotations

import random

from genbench.core.errors import GenBenchError


def _test_quotas(sizes: dict, test_fraction: float, test_count) -> dict:
    """Test images per class: ``round(n_c * test_fraction)``, or, given ``test_count``, an
    exact total shared by largest remainder (ties to the lower class). Each class keeps at
    least one training image."""
    if test_count is None:
        quotas = {c: int(round(n * test_fraction)) for c, n in sizes.items()}
    else:
        total = sum(sizes.values())
        if not 0 <= test_count < total:
            raise GenBenchError(f"test_size {test_count} must be in [0, {total})")
        exact = {c: n * test_count / total for c, n in sizes.items()}
        quotas = {c: int(v) for c, v in exact.items()}
        by_remainder = sorted(sizes, key=lambda c: (-(exact[c] - quotas[c]), c))
        for c in by_remainder[: test_count - sum(quotas.values())]:
            quotas[c] += 1
    return {c: min(q, sizes[c] - 1) for c, q in quotas.items()}


def stratified_split(labels, test_fraction: float, seed: int, test_count=None):
    """Seeded stratified split of indices ``0..n-1`` into ``(train, test)``, each ascending.

    Per class (in sorted class order) the class's indices are shuffled with one
    ``random.Random(seed)``; the first quota of them go to test (see ``_test_quotas``:
    ``round(n_c * test_fraction)`` per class, or an exact ``test_count`` in total).
    """
    if test_count is None and not 0 <= test_fraction < 1:
        raise GenBenchError(f"test_fraction must be in [0, 1), got {test_fraction}")
    by_class = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    quotas = _test_quotas({c: len(m) for c, m in by_class.items()}, test_fraction, test_count)
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by_class):
        members = by_class[label]
        rng.shuffle(members)
        test.extend(members[: quotas[label]])
        train.extend(members[quotas[label] :])
    return sorted(train), sorted(test)


def _split_options(source, seed, test_fraction):
    """``(test_fraction, seed, test_count)`` for ``stratified_split``: the source's ``seed`` and ``test_size`` (an
    int count or a float fraction) override the arguments."""
    test_size = source.get("test_size")
    seed = source.get("seed", seed)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, type(None))):
        raise GenBenchError(f"source test_size must be a count or a fraction, got {test_size!r}")
    if isinstance(test_size, int):
        return test_fraction, seed, test_size
    return (test_size if test_size is not None else test_fraction), seed, None
