"""Pools in the img2dataset + clip-retrieval layout: build, open, validate, read back."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.data.imageset import write_index
from genbench.retrieval.build import build_pool, build_pool_from_index, pool_key_for, write_pool_shard
from genbench.retrieval.pool import open_pool

torch.set_num_threads(1)


def image_bytes(seed: int, fmt: str = "PNG", size=(20, 24)) -> bytes:
    pixels = (np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


class ColourEncoder:
    """A transparent encoder: image -> mean RGB and pixel-count-free stats; text -> char histogram."""

    name = "test:colour"
    has_text = True

    def preprocess(self, image):
        return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32) / 255).permute(2, 0, 1)

    def encode_images(self, batch):
        means = batch.mean(dim=(2, 3))
        return torch.cat([means, batch.std(dim=(2, 3)) + 0.1], dim=1)

    def encode_texts(self, texts):
        out = torch.zeros(len(texts), 6)
        for i, text in enumerate(texts):
            for j, char in enumerate(text):
                out[i, (ord(char) + j) % 6] += 1
        return out


@pytest.fixture()
def items():
    return [(image_bytes(i, "PNG" if i % 2 else "JPEG"), f"caption number {i}", f"{i:09d}") for i in range(7)]


def test_build_open_round_trip(tmp_path, items):
    encoder = ColourEncoder()
    info = build_pool(items, tmp_path / "pool", encoder, shard_size=3, batch_size=2)
    assert info["shards"] == ["00000", "00001", "00002"] and info["count"] == 7 and info["dim"] == 6
    pool = open_pool(tmp_path / "pool")
    assert pool.shards == ["00000", "00001", "00002"] and pool.info["encoder"] == "test:colour"
    assert (tmp_path / "pool/img_emb/img_emb_00001.npy").is_file()
    assert (tmp_path / "pool/text_emb/text_emb_00001.npy").is_file()
    assert (tmp_path / "pool/metadata/metadata_00001.parquet").is_file()
    rows = pool.metadata("00001")
    assert [r["key"] for r in rows] == ["000000003", "000000004", "000000005"]
    assert [r["caption"] for r in rows] == ["caption number 3", "caption number 4", "caption number 5"]
    # image bytes come back unchanged, with the detected extension
    assert pool.read_image("00002", "000000006") == items[6][0]
    assert pool.image_member("00001", "000000003")[0] == "png"
    assert pool.image_member("00001", "000000004")[0] == "jpg"
    # embeddings are the encoder's outputs, L2-normalised, in item order
    from genbench.data.imageset import decode_image

    images = torch.stack([encoder.preprocess(decode_image(b, "x")) for b, _, _ in items])
    expected_img = encoder.encode_images(images).numpy().astype(np.float64)
    expected_img /= np.linalg.norm(expected_img, axis=1, keepdims=True)
    expected_txt = encoder.encode_texts([c for _, c, _ in items]).numpy().astype(np.float64)
    expected_txt /= np.linalg.norm(expected_txt, axis=1, keepdims=True)
    got_img = np.concatenate([c for _, _, c in pool.iter_chunks("image", chunk_rows=2)])
    got_txt = np.concatenate([c for _, _, c in pool.iter_chunks("text", chunk_rows=100)])
    assert got_img.dtype == np.float32 and got_txt.shape == (7, 6)
    np.testing.assert_allclose(got_img, expected_img, atol=1e-6)
    np.testing.assert_allclose(got_txt, expected_txt, atol=1e-6)


def test_tar_layout_and_determinism(tmp_path, items):
    build_pool(items, tmp_path / "a", ColourEncoder(), shard_size=4)
    build_pool(items, tmp_path / "b", ColourEncoder(), shard_size=4)
    for shard in ("00000", "00001"):
        assert (tmp_path / "a" / f"{shard}.tar").read_bytes() == (tmp_path / "b" / f"{shard}.tar").read_bytes()
    with tarfile.open(tmp_path / "a/00000.tar") as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert "000000000.jpg" in names and "000000001.png" in names and "000000001.txt" in names
        meta = json.load(tar.extractfile("000000001.json"))
        assert tar.extractfile("000000001.txt").read().decode() == "caption number 1"
    assert meta["key"] == "000000001" and meta["caption"] == "caption number 1" and meta["width"] == 20


def test_iter_chunks_offsets(tmp_path, items):
    build_pool(items, tmp_path / "pool", ColourEncoder(), shard_size=5)
    chunks = [(shard, start, len(c)) for shard, start, c in open_pool(tmp_path / "pool").iter_chunks("text", 2)]
    assert chunks == [("00000", 0, 2), ("00000", 2, 2), ("00000", 4, 1), ("00001", 0, 2)]


def test_count_mismatch_names_shard(tmp_path, items):
    build_pool(items, tmp_path / "pool", ColourEncoder(), shard_size=3)
    path = tmp_path / "pool/img_emb/img_emb_00001.npy"
    np.save(path, np.load(path)[:2])
    pool = open_pool(tmp_path / "pool")
    list(pool.iter_chunks("text"))  # text embeddings are still consistent
    with pytest.raises(GenBenchError, match="shard 00001.*2 rows.*3 rows"):
        list(pool.iter_chunks("image"))


def test_dim_mismatch_names_shard(tmp_path, items):
    build_pool(items, tmp_path / "pool", ColourEncoder(), shard_size=3)
    pool = open_pool(tmp_path / "pool")
    with pytest.raises(GenBenchError, match="shard 00000.*dim 6.*dim is 5"):
        list(pool.iter_chunks("text", dim=5))
    path = tmp_path / "pool/text_emb/text_emb_00002.npy"
    np.save(path, np.ones((1, 4), dtype=np.float16))
    with pytest.raises(GenBenchError, match="shard 00002"):
        list(open_pool(tmp_path / "pool").iter_chunks("text", dim=6))


def test_float16_clip_retrieval_pool_without_key_column(tmp_path):
    """A pool as clip-retrieval writes it: float16 rows, an image_path column instead of key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "pool"
    (root / "text_emb").mkdir(parents=True)
    (root / "metadata").mkdir()
    emb = np.random.RandomState(0).randn(3, 4).astype(np.float16)
    np.save(root / "text_emb/text_emb_0.npy", emb)
    pq.write_table(
        pa.table({"image_path": ["a", "b", "c"], "caption": ["x", "y", "z"]}), root / "metadata/metadata_0.parquet"
    )
    pool = open_pool(root)
    assert pool.shards == ["0"] and [r["key"] for r in pool.metadata("0")] == ["a", "b", "c"]
    ((shard, start, chunk),) = pool.iter_chunks("text")
    assert chunk.dtype == np.float32 and np.array_equal(chunk, emb.astype(np.float32))


def test_read_image_finds_key_in_another_tar(tmp_path):
    root = tmp_path / "pool"
    write_pool_shard(root, "00000", ["k1"], ["c1"], [image_bytes(1)], text_emb=np.ones((1, 2)))
    write_pool_shard(root, "00001", ["k2"], ["c2"], [image_bytes(2)], text_emb=np.ones((1, 2)))
    pool = open_pool(root)
    assert pool.read_image("00000", "k2") == image_bytes(2)
    with pytest.raises(GenBenchError, match="'nope'"):
        pool.read_image("00000", "nope")


def test_bad_keys_and_inputs(tmp_path):
    with pytest.raises(GenBenchError, match="appears twice"):
        build_pool([(image_bytes(0), "a", "x"), (image_bytes(1), "b", "x")], tmp_path / "p", ColourEncoder())
    with pytest.raises(GenBenchError, match="'a.b'"):
        build_pool([(image_bytes(0), "a", "a.b")], tmp_path / "p", ColourEncoder())
    with pytest.raises(GenBenchError, match="cannot decode.*'bad'"):
        build_pool([(b"not an image", "a", "bad")], tmp_path / "p", ColourEncoder())
    with pytest.raises(GenBenchError, match="does not exist"):
        open_pool(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenBenchError, match="no metadata"):
        open_pool(tmp_path / "empty")


def test_build_pool_from_index(tmp_path):
    images = tmp_path / "data"
    images.mkdir()
    records = []
    for i, label in enumerate([3, 1, 3]):
        (images / f"{i}.png").write_bytes(image_bytes(i))
        records.append({"id": f"train/{i:03d}", "path": f"{i}.png", "label": label})
    write_index(images / "train.jsonl", records)
    names = {1: "a photo of the number 1", 3: "a photo of the number 3"}
    info = build_pool_from_index(images / "train.jsonl", names, tmp_path / "pool", ColourEncoder(), shard_size=2)
    assert info["count"] == 3 and info["shards"] == ["00000", "00001"]
    pool = open_pool(tmp_path / "pool")
    rows = pool.metadata("00000") + pool.metadata("00001")
    assert (
        [r["key"] for r in rows] == ["train_000", "train_001", "train_002"] == [pool_key_for(r["id"]) for r in records]
    )
    assert [r["caption"] for r in rows] == [names[3], names[1], names[3]]
    assert [r["url"] for r in rows] == ["0.png", "1.png", "2.png"]
    assert pool.read_image("00001", "train_002") == image_bytes(2)
    with pytest.raises(GenBenchError, match="label 1"):
        build_pool_from_index(images / "train.jsonl", {3: "x"}, tmp_path / "pool2", ColourEncoder())


def test_build_pool_with_tiny_open_clip(tmp_path, items):
    from genbench.evaluation.encoders import load_encoder
    from genbench.models.tiny import build_tiny_open_clip

    encoder = load_encoder(build_tiny_open_clip(tmp_path / "clip", seed=0), "cpu")
    info = build_pool(items[:4], tmp_path / "pool", encoder, shard_size=2)
    assert info["dim"] == 32 and info["encoder"] == encoder.name
    emb = np.concatenate([c for _, _, c in open_pool(tmp_path / "pool").iter_chunks("image")])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    text = encoder.encode_texts([items[2][1]]).numpy()[0]
    got = open_pool(tmp_path / "pool").rows("text", "00001", [0])[0]
    np.testing.assert_allclose(got, text / np.linalg.norm(text), atol=1e-5)


def test_pool_from_features_reuses_image_features_and_encodes_only_captions(tmp_path):
    """build_pool_from_features == build_pool_from_index, with zero extra image encodings."""
    import torch

    from genbench.data.imageset import write_index
    from genbench.evaluation.encoders import load_encoder
    from genbench.evaluation.features import extract_image_features
    from genbench.models.tiny import build_tiny_open_clip
    from genbench.retrieval.build import build_pool_from_features, build_pool_from_index
    from genbench.retrieval.pool import open_pool

    torch.set_num_threads(1)
    encoder = load_encoder(build_tiny_open_clip(tmp_path / "clip"))
    records = []
    for i in range(5):
        (tmp_path / "img").mkdir(exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 50 * i, np.uint8)).save(tmp_path / "img" / f"{i}.png")
        records.append({"id": f"train/{i}", "path": f"img/{i}.png", "label": i % 2})
    write_index(tmp_path / "index.jsonl", records)
    features = extract_image_features(encoder, tmp_path / "index.jsonl", num_classes=2, progress=False)
    captions = {0: "zero", 1: "one"}
    encoded_before = encoder.images_encoded
    build_pool_from_features(tmp_path / "index.jsonl", features, captions, tmp_path / "a", encoder, shard_size=3)
    assert encoder.images_encoded == encoded_before
    build_pool_from_index(tmp_path / "index.jsonl", captions, tmp_path / "b", encoder, shard_size=3)
    a, b = open_pool(tmp_path / "a"), open_pool(tmp_path / "b")
    for shard in a.shards:
        for kind in ("image", "text"):
            np.testing.assert_allclose(a.embeddings(kind, shard), b.embeddings(kind, shard), atol=1e-5)
        assert a.metadata(shard) == b.metadata(shard)


def test_pool_source_names_the_index_and_the_captions(tmp_path):
    from types import SimpleNamespace

    from genbench.retrieval.build import pool_source

    index, captions = pool_source("corpus", tmp_path)
    assert index == tmp_path / "corpus.jsonl" and captions({"caption": "a bold 7"}) == "a bold 7"
    info = SimpleNamespace(templates=["a photo of the number: {}."], classes=["zero", "one"])
    index, captions = pool_source("first_template", tmp_path, info)
    assert index == tmp_path / "train.jsonl"
    assert captions == {0: "a photo of the number: zero.", 1: "a photo of the number: one."}
    with pytest.raises(GenBenchError, match="unknown pool source 'laion'"):
        pool_source("laion", tmp_path)
