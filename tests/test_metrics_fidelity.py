import numpy as np
import pytest

from genbench.core.errors import GenBenchError
from genbench.evaluation.metrics.kernels import cmmd, precision_recall_density_coverage, vendi_score


def brute_force_prdc(real, fake, k):
    def dist(u, v):
        return np.sqrt(((u[:, None, :] - v[None, :, :]) ** 2).sum(-1))

    real_r = np.sort(dist(real, real), axis=1)[:, k]
    fake_r = np.sort(dist(fake, fake), axis=1)[:, k]
    d_fr = dist(fake, real)
    inside = d_fr <= real_r[None, :]
    return {
        "precision": inside.any(1).mean(),
        "recall": (d_fr <= fake_r[:, None]).any(0).mean(),
        "density": inside.sum() / (k * len(fake)),
        "coverage": (d_fr.min(0) <= real_r).mean(),
    }


def test_prdc_matches_brute_force_across_chunks():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 5)), rng.normal(0.4, 1.2, size=(45, 5))
    chunked = precision_recall_density_coverage(real, fake, k=3, tile=(7, 5))  # the chunked loops
    assert chunked == pytest.approx(brute_force_prdc(real, fake, 3))


def test_prdc_identical_sets():
    feats = np.random.default_rng(1).normal(size=(80, 6))
    result = precision_recall_density_coverage(feats, feats, k=5)
    assert result["precision"] == 1.0 and result["recall"] == 1.0
    assert result["coverage"] == 1.0


def test_prdc_disjoint_sets():
    rng = np.random.default_rng(2)
    result = precision_recall_density_coverage(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) + 100.0)
    assert result == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_vendi_identical_and_orthogonal():
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (6, 1))) == pytest.approx(1.0)
    assert vendi_score(3.0 * np.eye(5)) == pytest.approx(5.0)
    assert vendi_score(np.eye(8)[:3]) == pytest.approx(3.0)  # n < d branch


def test_vendi_both_gram_forms_agree():
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(20, 40))  # n <= d: n x n form
    x = wide / np.linalg.norm(wide, axis=1, keepdims=True)
    eig = np.clip(np.linalg.eigvalsh(x.T @ x / 20), 1e-300, None)  # d x d form by hand
    expected = np.exp(-np.sum(np.where(eig > 1e-12, eig * np.log(eig), 0.0)))
    assert vendi_score(wide) == pytest.approx(expected, rel=1e-8)


def loop_cmmd(a, b, sigma):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)

    def k(u, v):
        return np.exp(-np.sum((u - v) ** 2) / (2 * sigma**2))

    n, m = len(a), len(b)
    aa = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    bb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    ab = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return 1000 * (aa + bb - 2 * ab)


def test_cmmd_matches_loop():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 3)), rng.normal(0.5, 1.0, size=(9, 3))
    assert cmmd(a, b, sigma=0.7, tile=(4, 3)) == pytest.approx(loop_cmmd(a, b, 0.7), rel=1e-9)


def test_cmmd_identical_distribution_near_zero():
    rng = np.random.default_rng(5)
    same = cmmd(rng.normal(size=(300, 16)), rng.normal(size=(300, 16)))
    different = cmmd(rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) + 1.0)
    assert abs(same) < 0.02 * different


def test_bad_inputs():
    with pytest.raises(GenBenchError, match="real"):
        precision_recall_density_coverage(np.ones((3, 2)), np.ones((10, 2)), k=5)
    with pytest.raises(GenBenchError, match="sigma"):
        cmmd(np.eye(3), np.eye(3), sigma=0)
    with pytest.raises(GenBenchError, match="norm zero"):
        cmmd(np.zeros((3, 3)), np.eye(3))
