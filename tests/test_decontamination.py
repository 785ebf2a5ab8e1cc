"""Decontaminated retrieval: pool images that copy a val or test image never reach a pack; the
CLIP filter; the packs' sanity check (held_out_duplicates)."""

import io

import numpy as np
import pytest
from PIL import Image
from test_retrieval import LookupEncoder, unit

from genbench.data.duplicates import HeldOut, find_duplicates, pixel_digest
from genbench.retrieval.build import write_pool_shard
from genbench.retrieval.pool import open_pool
from genbench.retrieval.search import retrieve_for_classes


def smooth_image(seed: int, size: int = 32) -> Image.Image:
    """A random low-frequency RGB image (an 4 x 4 grid, upsampled): resizing keeps its look."""
    grid = (np.random.RandomState(seed).rand(4, 4, 3) * 255).astype(np.uint8)
    return Image.fromarray(grid).resize((size, size), Image.BICUBIC)


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pixel_embedding(data: bytes) -> np.ndarray:
    """An independent image 'encoder': the 8 x 8 grey thumbnail, mean removed, unit norm."""
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((8, 8), Image.BILINEAR), dtype=np.float64)
    v = grey.ravel() - grey.mean()
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture()
def planted(tmp_path):
    """Two test images; a pool whose every row is a hit of class "cat": an exact copy of test
    image 0 (same pixels, other PNG bytes), a resized and a JPEG copy of test image 1, and three
    unrelated images."""
    tests = [smooth_image(s) for s in (1, 2)]
    test_bytes = [encoded(im) for im in tests]
    pool_images = {
        "exact0": encoded(tests[0], compress_level=1),
        "resized1": encoded(tests[1].resize((48, 48), Image.BICUBIC)),
        "jpeg1": encoded(tests[1], "JPEG", quality=85),
        **{f"other{s}": encoded(smooth_image(100 + s)) for s in range(3)},
    }
    keys = list(pool_images)
    blobs = [pool_images[k] for k in keys]
    image_emb = np.stack([pixel_embedding(b) for b in blobs])
    text_emb = np.tile(unit(1, 0), (len(keys), 1))  # every caption matches the prompt equally
    write_pool_shard(tmp_path / "pool", "00000", keys, [f"a cat {k}" for k in keys], blobs, image_emb, text_emb)
    held = HeldOut(
        names=["test/0", "test/1"],
        feats=np.stack([pixel_embedding(b) for b in test_bytes]),
        pixels={pixel_digest(b): f"test/{i}" for i, b in enumerate(test_bytes)},
    )
    return open_pool(tmp_path / "pool"), held


def _retrieve(pool, held, threshold, **kw):
    encoder = LookupEncoder({"a photo of a cat.": unit(1, 0), "a photo of a dog.": unit(0, 1)})
    return retrieve_for_classes(
        ["cat", "dog"],
        ["a photo of a {}."],
        encoder,
        pool,
        k_per_prompt=6,
        k_per_class=6,
        held_out=held,
        dedup_threshold=threshold,
        **kw,
    )


def test_planted_copies_of_test_images_are_removed_and_unrelated_images_stay(planted):
    pool, held = planted
    results = _retrieve(pool, held, threshold=0.95)
    kept = sorted(h["key"] for h in results["classes"][0]["hits"])
    assert kept == ["other0", "other1", "other2"]
    removed = {r["key"]: r for r in results["decontamination"]["removed"] if r["class_id"] == 0}
    assert removed["exact0"] == {"class_id": 0, "key": "exact0", "kind": "exact", "of": "test/0"}
    assert removed["resized1"]["kind"] == "near" and removed["resized1"]["of"] == "test/1"
    assert removed["jpeg1"]["kind"] == "near" and removed["jpeg1"]["cosine"] >= 0.95
    assert results["decontamination"]["removed_per_class"] == {0: 3, 1: 3}  # dog's prompt hit them too


def test_exact_copies_are_removed_even_without_a_threshold(planted):
    pool, held = planted
    results = _retrieve(pool, held, threshold=None)
    kept = sorted(h["key"] for h in results["classes"][0]["hits"])
    assert "exact0" not in kept and {"resized1", "jpeg1"} <= set(kept)


def test_the_pixel_digest_ignores_the_file_format_but_not_the_pixels():
    image = smooth_image(3)
    assert pixel_digest(encoded(image)) == pixel_digest(encoded(image, "BMP"))
    assert pixel_digest(encoded(image)) != pixel_digest(encoded(image, "JPEG", quality=95))
    assert pixel_digest(encoded(image)) != pixel_digest(encoded(image.resize((33, 32))))


def test_the_clip_filter_drops_candidates_far_from_the_prompt(tmp_path):
    keys = ["near", "middle", "far", "farther"]
    image_emb = np.stack([unit(1, 0.1), unit(1, 0.8), unit(0.2, 1), unit(-0.5, 1)])
    text_emb = np.tile(unit(1, 0), (4, 1))
    blobs = [encoded(smooth_image(s)) for s in range(4)]
    write_pool_shard(tmp_path / "pool", "00000", keys, keys, blobs, image_emb, text_emb)
    pool = open_pool(tmp_path / "pool")
    by_score = _retrieve(pool, None, None, clip_min_score=0.5)
    assert sorted(h["key"] for h in by_score["classes"][0]["hits"]) == ["middle", "near"]
    assert by_score["clip_filter"]["removed_per_class"][0] == 2
    by_fraction = _retrieve(pool, None, None, clip_top_fraction=0.25)
    assert [h["key"] for h in by_fraction["classes"][0]["hits"]] == ["near"]
    assert "clip_filter" not in _retrieve(pool, None, None)


def test_the_probe_counts_packed_copies_of_test_images():
    from genbench.evaluation.evaluate import held_out_duplicates
    from genbench.evaluation.features import FeatureSet

    rng = np.random.default_rng(0)
    test_feats = rng.normal(size=(5, 8)).astype(np.float32)
    pack_feats = np.concatenate([test_feats[:1] * 2.0, rng.normal(size=(3, 8)).astype(np.float32)])
    labels = np.zeros(5, dtype=np.int64)
    test = FeatureSet(test_feats, labels, [f"t{i}" for i in range(5)], {}, [f"d{i}" for i in range(5)])
    pack_digests = ["x0", "d3", "x2", "x3"]  # row 1 is a byte copy of test image 3
    pack = FeatureSet(pack_feats, labels[:4], [f"p{i}" for i in range(4)], {}, pack_digests)
    assert held_out_duplicates(pack, test, 0.999) == 2  # row 0 (cosine 1) and row 1 (bytes)
    assert held_out_duplicates(pack, test, None) == 1


def test_find_duplicates_names_the_nearest_held_out_image():
    held = HeldOut(["test/a", "test/b"], np.stack([unit(1, 0, 0), unit(0, 1, 0)]), {"pa": "test/a"})
    found = find_duplicates(np.stack([unit(0.1, 1, 0), unit(0, 0, 1), unit(0, 0, 1)]), ["q", "r", "pa"], held, 0.99)
    assert found[0] == {"kind": "near", "of": "test/b", "cosine": pytest.approx(0.995037, abs=1e-6)}
    assert found[1] is None and found[2] == {"kind": "exact", "of": "test/a"}


def test_a_threshold_that_removes_every_candidate_is_refused_naming_it(planted):
    pool, held = planted
    with pytest.raises(Exception, match=r"retrieval\.dedup_threshold -1(\.0)?: all 12 candidates"):
        _retrieve(pool, held, threshold=-1.0)
