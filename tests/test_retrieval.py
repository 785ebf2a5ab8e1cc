"""Retrieval baseline: exact chunked top-k, per-class ranking, dedup, conflicts, retrieved sets."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.data.imageset import ImageSetReader, read_index
from genbench.retrieval.build import write_pool_shard
from genbench.retrieval.pool import open_pool
from genbench.retrieval.search import retrieve_for_classes, topk_chunked, write_retrieved_set

torch.set_num_threads(1)


def png(seed: int) -> bytes:
    pixels = (np.random.RandomState(seed).rand(6, 5, 3) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def unit(*values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


class LookupEncoder:
    """Text encoder that maps each known prompt to a fixed vector."""

    name = "test:lookup"
    has_text = True

    def __init__(self, table):
        self.table = table

    def encode_texts(self, texts):
        return torch.tensor(np.stack([self.table[t] for t in texts]))


def write_pool(root, shards):
    """shards: {name: [(key, text_emb, img_emb or None)]}; returns {(shard,row): image bytes}."""
    images, seed = {}, 0
    for name, rows in shards.items():
        blobs = []
        for row, _ in enumerate(rows):
            blobs.append(png(seed))
            images[(name, row)] = blobs[-1]
            seed += 1
        text = np.stack([r[1] for r in rows])
        img = np.stack([r[2] if r[2] is not None else r[1] for r in rows])
        write_pool_shard(root, name, [r[0] for r in rows], [f"caption of {r[0]}" for r in rows], blobs, img, text)
    return images


# ----------------------------------------------------------------------------- exact top-k


def brute_force(queries, matrix, k):
    scores = queries.astype(np.float64) @ matrix.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def test_topk_chunked_equals_brute_force(tmp_path):
    rng = np.random.RandomState(0)
    sizes = {"00000": 50, "00001": 37, "00002": 64}
    mats = {s: rng.randn(n, 16).astype(np.float32) for s, n in sizes.items()}
    for s, m in mats.items():
        write_pool_shard(
            tmp_path,
            s,
            [f"{s}k{i}" for i in range(len(m))],
            ["c"] * len(m),
            [png(0)] * len(m),
            text_emb=m.astype(np.float16) if s == "00001" else m,
        )
    full = np.concatenate([mats["00000"], mats["00001"].astype(np.float16).astype(np.float32), mats["00002"]])
    where = [(s, r) for s in sizes for r in range(sizes[s])]
    queries = rng.randn(5, 16).astype(np.float32)
    pool = open_pool(tmp_path)
    for k, chunk_rows in ((7, 20), (1, 13), (200, 30)):
        scores, ids = topk_chunked(queries, pool, k, "text", chunk_rows)
        ref_scores, ref_pos = brute_force(queries, full, k)
        assert scores.shape == ref_scores.shape == (5, min(k, 151))
        assert ids == [[where[p] for p in row] for row in ref_pos]
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)


def _random_pool(root, sizes, dim=16, seed=0):
    rng = np.random.RandomState(seed)
    mats = {}
    for s, n in sizes.items():
        m = rng.randn(n, dim).astype(np.float32)
        mats[s] = m / np.linalg.norm(m, axis=1, keepdims=True)
        write_pool_shard(root, s, [f"{s}k{i}" for i in range(n)], ["c"] * n, [png(0)] * n, text_emb=mats[s])
    return np.concatenate(list(mats.values())), rng


def test_all_queries_share_one_pass_over_the_pool(tmp_path, monkeypatch):
    full, rng = _random_pool(tmp_path, {"00000": 40, "00001": 33})
    pool = open_pool(tmp_path)
    reads = []
    original = type(pool).iter_chunks

    def counting(self, *args, **kwargs):
        for item in original(self, *args, **kwargs):
            reads.append(item[0])
            yield item

    monkeypatch.setattr(type(pool), "iter_chunks", counting)
    queries = rng.randn(9, 16).astype(np.float32)
    one_block = topk_chunked(queries, pool, 5, "text", chunk_rows=16, query_batch=1024)
    chunks_per_pass = len(reads)
    small_blocks = topk_chunked(queries, pool, 5, "text", chunk_rows=16, query_batch=2)
    assert len(reads) == 2 * chunks_per_pass  # 5 query blocks, still one pass
    assert one_block[1] == small_blocks[1]
    # BLAS sums a 9 x 16 block and a 2 x 16 block in other orders: the last bits may differ
    np.testing.assert_allclose(one_block[0], small_blocks[0], rtol=1e-6)


def test_faiss_index_gives_the_exact_search(tmp_path):
    faiss = pytest.importorskip("faiss")
    from genbench.retrieval.pool import faiss_index_path

    full, rng = _random_pool(tmp_path, {"00000": 60, "00001": 45})
    index = faiss.IndexFlatIP(16)
    index.add(full)
    faiss.write_index(index, str(tmp_path / "text.index"))
    pool = open_pool(tmp_path)
    queries = rng.randn(7, 16).astype(np.float32)
    exact_scores, exact_ids = topk_chunked(queries, pool, 10, "text", chunk_rows=32)
    faiss_scores, faiss_ids = topk_chunked(queries, pool, 10, "text", index_path=faiss_index_path(pool, "text"))
    assert faiss_ids == exact_ids
    np.testing.assert_allclose(faiss_scores, exact_scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(GenBenchError, match=r"image.index"):
        faiss_index_path(pool, "image")


def test_topk_ties_go_to_lower_position(tmp_path):
    ones = np.ones((6, 3), dtype=np.float32)
    write_pool_shard(tmp_path, "00000", [f"a{i}" for i in range(6)], ["c"] * 6, [png(0)] * 6, text_emb=ones)
    write_pool_shard(tmp_path, "00001", [f"b{i}" for i in range(6)], ["c"] * 6, [png(0)] * 6, text_emb=ones)
    scores, ids = topk_chunked(np.ones((2, 3)), open_pool(tmp_path), 8, "text", chunk_rows=4)
    assert ids[0] == ids[1] == [("00000", i) for i in range(6)] + [("00001", 0), ("00001", 1)]
    assert np.all(scores == 3.0)


def test_topk_rejects_other_dim(tmp_path):
    write_pool_shard(tmp_path, "00000", ["a"], ["c"], [png(0)], text_emb=np.ones((1, 3)))
    write_pool_shard(tmp_path, "00001", ["b"], ["c"], [png(0)], text_emb=np.ones((1, 4)))
    with pytest.raises(GenBenchError, match="shard 00001.*dim 4"):
        topk_chunked(np.ones((1, 3)), open_pool(tmp_path), 1)


# ----------------------------------------------------------------------------- ranking


E = np.eye(4, dtype=np.float32)


@pytest.fixture()
def cat_pool(tmp_path):
    write_pool(
        tmp_path,
        {
            "00000": [
                ("both", unit(1, 1, 0, 0), None),
                ("only1", E[0], None),
                ("mid", unit(0.8, 0.6, 0, 0), None),
                ("dup", unit(1, 0.1, 0, 0), None),
            ],
            "00001": [("dup", unit(1, 0.5, 0, 0), None), ("x", unit(1, 1, 2, 2), None), ("dog", E[2], None)],
        },
    )
    return open_pool(tmp_path)


CAT = LookupEncoder({"a cat": E[0], "the cat": E[1], "a dog": E[2], "the dog": E[3]})


def test_rank_by_mean_over_all_prompts_and_dedup(cat_pool):
    result = retrieve_for_classes(["cat"], ["a {}", "the {}"], CAT, cat_pool, k_per_prompt=4, k_per_class=10)
    hits = result["classes"][0]["hits"]
    # "a cat" top-4: only1, dup@0, dup@1, mid; "the cat" top-4: both, mid, dup@1, x.
    # mean over both prompts: both .707, mid .7, dup@1 .671 (dup@0 .547 dropped), only1 .5, x .316
    assert [(h["key"], h["shard"], h["row"]) for h in hits] == [
        ("both", "00000", 0),
        ("mid", "00000", 2),
        ("dup", "00001", 0),
        ("only1", "00000", 1),
        ("x", "00001", 1),
    ]
    np.testing.assert_allclose(
        [h["score"] for h in hits], [2**-0.5, 0.7, 1.5 / 1.25**0.5 / 2, 0.5, 1 / 10**0.5], rtol=1e-6
    )
    assert [h["hit_prompts"] for h in hits] == [1, 2, 2, 1, 1]
    assert [h["prompt"] for h in hits] == ["a cat", "a cat", "a cat", "a cat", "a cat"]
    assert hits[0]["caption"] == "caption of both"
    assert result["shortfall"] == {0: 5} and result["conflicts"] == []
    top3 = retrieve_for_classes(["cat"], ["a {}", "the {}"], CAT, cat_pool, k_per_prompt=4, k_per_class=3)
    assert [h["key"] for h in top3["classes"][0]["hits"]] == ["both", "mid", "dup"] and top3["shortfall"] == {}


def test_rank_matches_independent_reference(cat_pool):
    """Union of brute-force per-prompt top-k, scored by the mean over all prompts, best row per key."""
    keys, mats = [], []
    for shard in cat_pool.shards:
        keys += [r["key"] for r in cat_pool.metadata(shard)]
        mats.append(np.load(cat_pool.root / f"text_emb/text_emb_{shard}.npy"))
    matrix = np.concatenate(mats).astype(np.float64)
    prompts = np.stack([E[0], E[1]]).astype(np.float64)
    for k in (1, 2, 3, 5):
        _, top = brute_force(prompts, matrix, k)
        means = (matrix @ prompts.T).mean(axis=1)
        best = {}
        for pos in sorted(set(top.ravel())):
            if keys[pos] not in best or means[pos] > means[best[keys[pos]]]:
                best[keys[pos]] = pos
        expected = sorted(best, key=lambda key: -means[best[key]])[:3]
        got = retrieve_for_classes(["cat"], ["a {}", "the {}"], CAT, cat_pool, k_per_prompt=k, k_per_class=3)
        assert [h["key"] for h in got["classes"][0]["hits"]] == expected


@pytest.fixture()
def two_class_pool(tmp_path):
    swap = [1, 0, 2, 3]  # image embeddings: dims 0 and 1 swapped
    rows = [("A", E[0]), ("X", unit(0.6, 0.8, 0, 0)), ("D", E[1]), ("Y", unit(0.8, 0.6, 0, 0))]
    write_pool(tmp_path, {"00000": [(k, v, v[swap]) for k, v in rows]})
    return open_pool(tmp_path)


TWO = LookupEncoder({"a cat": E[0], "a dog": E[1]})


def test_conflict_kept_in_higher_class_and_recorded(two_class_pool):
    result = retrieve_for_classes(["cat", "dog"], ["a {}"], TWO, two_class_pool, k_per_prompt=3, k_per_class=3)
    assert [h["key"] for h in result["classes"][0]["hits"]] == ["A", "Y"]
    assert [h["key"] for h in result["classes"][1]["hits"]] == ["D", "X"]
    conflicts = {c["key"]: c for c in result["conflicts"]}
    assert sorted(conflicts) == ["X", "Y"]
    assert conflicts["X"]["classes"] == [1, 0] and conflicts["X"]["kept"] == [1]
    np.testing.assert_allclose(conflicts["X"]["scores"], [0.8, 0.6], rtol=1e-6)
    assert conflicts["Y"]["classes"] == [0, 1] and conflicts["Y"]["kept"] == [0]
    assert result["shortfall"] == {0: 2, 1: 2}
    json.dumps(result)  # serialisable as a record of the run
    small_blocks = retrieve_for_classes(
        ["cat", "dog"], ["a {}"], TWO, two_class_pool, k_per_prompt=3, k_per_class=3, chunk_rows=1, query_batch=1
    )
    assert small_blocks == result
    # when the losing class is already full, nothing is taken from it: no conflict
    full = retrieve_for_classes(["cat", "dog"], ["a {}"], TWO, two_class_pool, k_per_prompt=3, k_per_class=2)
    assert full["conflicts"] == [] and full["shortfall"] == {}


def test_conflict_policy_both(two_class_pool):
    result = retrieve_for_classes(
        ["cat", "dog"], ["a {}"], TWO, two_class_pool, k_per_prompt=3, k_per_class=3, on_conflict="both"
    )
    assert [h["key"] for h in result["classes"][0]["hits"]] == ["A", "Y", "X"]
    assert [h["key"] for h in result["classes"][1]["hits"]] == ["D", "X", "Y"]
    assert {c["key"]: c["kept"] for c in result["conflicts"]} == {"X": [1, 0], "Y": [0, 1]}


def test_text_to_image_search_uses_image_embeddings(two_class_pool):
    result = retrieve_for_classes(["cat"], ["a {}"], TWO, two_class_pool, k_per_prompt=2, k_per_class=2, kind="image")
    assert [h["key"] for h in result["classes"][0]["hits"]] == ["D", "X"]


def test_encoder_mismatch_and_bad_arguments(two_class_pool):
    (two_class_pool.root / "pool_info.json").write_text(json.dumps({"encoder": "open_clip:ViT-B-32:openai"}))
    pool = open_pool(two_class_pool.root)
    with pytest.raises(GenBenchError, match="ViT-B-32.*test:lookup"):
        retrieve_for_classes(["cat"], ["a {}"], TWO, pool, k_per_prompt=1, k_per_class=1)
    with pytest.raises(GenBenchError, match="on_conflict"):
        retrieve_for_classes(["cat"], ["a {}"], TWO, two_class_pool, k_per_prompt=1, k_per_class=1, on_conflict="x")
    with pytest.raises(GenBenchError, match="no '\\{\\}'"):
        retrieve_for_classes(["cat"], ["a cat"], TWO, two_class_pool, k_per_prompt=1, k_per_class=1)


# ----------------------------------------------------------------------------- retrieved set


def test_write_retrieved_set(tmp_path):
    images = write_pool(
        tmp_path / "pool",
        {
            "00000": [("A", E[0], None), ("X", unit(0.6, 0.8, 0, 0), None)],
            "00001": [("D", E[1], None), ("Y", unit(0.8, 0.6, 0, 0), None)],
        },
    )
    pool = open_pool(tmp_path / "pool")
    result = retrieve_for_classes(["cat", "dog"], ["a {}"], TWO, pool, k_per_prompt=3, k_per_class=3)
    summary = write_retrieved_set(result, pool, tmp_path / "set", class_names=["cat", "dog"], shard_size=3)
    assert summary["images"] == 4 and summary["per_class"] == [2, 2] and summary["shortfall"] == {0: 2, 1: 2}
    assert [c["key"] for c in summary["conflicts"]] == ["X", "Y"]
    records = read_index(tmp_path / "set/images.jsonl")
    assert [(r["id"], r["label"], r["pool_key"]) for r in records] == [
        ("0000-000000", 0, "A"),
        ("0000-000001", 0, "Y"),
        ("0001-000000", 1, "D"),
        ("0001-000001", 1, "X"),
    ]
    assert records[0]["path"] == "shards/shard-00000.tar@0000-000000.png"
    assert records[3]["path"] == "shards/shard-00001.tar@0001-000001.png"
    assert records[1]["caption"] == "caption of Y" and records[1]["prompt"] == "a cat"
    np.testing.assert_allclose(records[1]["similarity"], 0.8, rtol=1e-6)
    with ImageSetReader(tmp_path / "set/images.jsonl") as reader:
        assert reader.open_bytes(records[1]) == images[("00001", 1)]
        assert reader.open_bytes(records[3]) == images[("00000", 1)]
    with tarfile.open(tmp_path / "set/shards/shard-00000.tar") as tar:
        meta = json.load(tar.extractfile("0000-000001.json"))
    assert meta["pool_key"] == "Y" and meta["pool_shard"] == "00001" and meta["class_name"] == "cat"
    write_retrieved_set(result, pool, tmp_path / "again", class_names=["cat", "dog"], shard_size=3)
    for name in ("shards/shard-00000.tar", "shards/shard-00001.tar", "images.jsonl"):
        assert (tmp_path / "set" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    with pytest.raises(GenBenchError, match="classes"):
        write_retrieved_set(result, pool, tmp_path / "bad", class_names=["dog", "cat"])
