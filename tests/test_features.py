"""Feature extraction over an image index, feature files, and the text classifier."""

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.data.imageset import ImageSetReader, write_index
from genbench.evaluation.encoders import load_encoder
from genbench.evaluation.features import (
    FeatureSet,
    build_text_classifier,
    extract_image_features,
    labels_array,
    load_features,
    save_features,
)
from genbench.models.tiny import build_tiny_open_clip

torch.set_num_threads(1)


def _png_bytes(seed: int) -> bytes:
    import io

    rng = np.random.RandomState(seed)
    size = (30 + seed % 7, 36 + seed % 5)
    buffer = io.BytesIO()
    Image.fromarray(rng.randint(0, 256, size=(*size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return load_encoder(build_tiny_open_clip(tmp_path_factory.mktemp("clip"), seed=2))


@pytest.fixture(scope="module")
def index_path(tmp_path_factory):
    """Seven images: four members of a store-mode zip, three plain files; labels 0..2."""
    root = tmp_path_factory.mktemp("images")
    records = []
    with zipfile.ZipFile(root / "images.zip", "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(4):
            archive.writestr(f"train/{i:03d}.png", _png_bytes(i))
            records.append({"id": f"train/{i:03d}", "path": f"images.zip@train/{i:03d}.png", "label": i % 3})
    for i in range(4, 7):
        (root / f"img{i}.png").write_bytes(_png_bytes(i))
        records.append({"id": f"file/{i}", "path": f"img{i}.png", "label": i % 3})
    write_index(root / "train.jsonl", records)
    return root / "train.jsonl"


def test_batched_features_equal_one_by_one(encoder, index_path):
    fs = extract_image_features(encoder, index_path, num_classes=3, batch_size=3, progress=False)
    reader = ImageSetReader(index_path)
    one_by_one = np.concatenate(
        [encoder.encode_images(encoder.preprocess(reader.load(i))[None]).numpy() for i in range(len(reader))]
    )
    assert fs.feats.shape == (7, 32) and fs.feats.dtype == np.float32
    np.testing.assert_allclose(fs.feats, one_by_one, rtol=1e-5, atol=1e-6)
    assert fs.ids == [r["id"] for r in reader.records]
    assert fs.labels.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert fs.meta["encoder"] == encoder.name
    assert fs.meta["preprocess"] == "clip-bicubic-32-centercrop"
    assert (fs.meta["dim"], fs.meta["count"]) == (32, 7)


def test_each_image_encoded_once(encoder, index_path):
    before = encoder.images_encoded
    extract_image_features(encoder, index_path, num_classes=3, batch_size=4, progress=False)
    assert encoder.images_encoded - before == 7


def test_workers_do_not_change_features(encoder, index_path):
    serial = extract_image_features(encoder, index_path, num_classes=3, batch_size=2, num_workers=0, progress=False)
    parallel = extract_image_features(encoder, index_path, num_classes=3, batch_size=2, num_workers=2, progress=False)
    np.testing.assert_array_equal(serial.feats, parallel.feats)
    assert serial.ids == parallel.ids


def test_save_load_roundtrip_and_select(encoder, index_path, tmp_path):
    fs = extract_image_features(encoder, index_path, num_classes=3, batch_size=8, progress=False)
    save_features(tmp_path / "feats", fs)
    assert sorted(p.name for p in (tmp_path / "feats").iterdir()) == [
        "digests.json",
        "features.npy",
        "ids.json",
        "labels.npy",
        "meta.json",
    ]
    loaded = load_features(tmp_path / "feats")
    np.testing.assert_array_equal(loaded.feats, fs.feats)
    np.testing.assert_array_equal(loaded.labels, fs.labels)
    assert loaded.ids == fs.ids and loaded.meta["count"] == 7 and loaded.digests == fs.digests
    assert json.loads((tmp_path / "feats" / "meta.json").read_text())["encoder"] == encoder.name
    picked = loaded.select(["file/5", "train/001"])
    np.testing.assert_array_equal(picked.feats, fs.feats[[5, 1]])
    assert picked.labels.tolist() == [2, 1] and picked.ids == ["file/5", "train/001"]
    with pytest.raises(GenBenchError, match="'train/999'"):
        loaded.select(["train/000", "train/999"])


def test_missing_feature_file_is_named(tmp_path):
    save_features(tmp_path, FeatureSet(np.ones((2, 3)), np.array([0, 1]), ["a", "b"]))
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(GenBenchError, match="labels.npy"):
        load_features(tmp_path)


def test_multilabel_records_give_multi_hot(encoder, tmp_path):
    (tmp_path / "a.png").write_bytes(_png_bytes(1))
    (tmp_path / "b.png").write_bytes(_png_bytes(2))
    write_index(
        tmp_path / "voc.jsonl",
        [
            {"id": "a", "path": "a.png", "label": [0, 3]},
            {"id": "b", "path": "b.png", "label": [2]},
        ],
    )
    fs = extract_image_features(encoder, tmp_path / "voc.jsonl", num_classes=4, progress=False)
    assert fs.labels.tolist() == [[1, 0, 0, 1], [0, 0, 1, 0]]
    assert fs.multilabel and fs.meta["multilabel"]


def test_label_out_of_range_is_named():
    with pytest.raises(GenBenchError, match="'x'.*label 5"):
        labels_array([{"id": "x", "path": "x.png", "label": 5}], num_classes=3)
    with pytest.raises(GenBenchError, match="'y'"):
        labels_array([{"id": "y", "path": "y.png", "label": [0, -1]}], num_classes=3)


def test_text_classifier_rows(encoder):
    classes = ["cat", "dog", "car"]
    templates = ["a photo of a {}.", "a drawing of a {}.", "{}"]
    weights = build_text_classifier(encoder, classes, templates, batch_size=4)
    assert weights.shape == (3, 32) and weights.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-6)
    emb = encoder.encode_texts([t.format("dog") for t in templates]).numpy().astype(np.float64)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    expected = emb.mean(axis=0) / np.linalg.norm(emb.mean(axis=0))
    np.testing.assert_allclose(weights[1], expected, atol=1e-5)


def test_text_classifier_needs_placeholder_and_text_tower(encoder):
    with pytest.raises(GenBenchError, match="no '\\{\\}'"):
        build_text_classifier(encoder, ["cat"], ["a photo"])

    class ImageOnly:
        name, has_text = "image-only", False

    with pytest.raises(GenBenchError, match="image-only"):
        build_text_classifier(ImageOnly(), ["cat"], ["{}"])


def test_an_image_is_encoded_once_per_content_and_reused_across_sets(encoder, index_path, tmp_path):
    """Rows another set of the same encoder already holds (same stored bytes) are copied, not
    encoded; the result equals encoding everything."""
    import hashlib
    import shutil

    full = extract_image_features(encoder, index_path, num_classes=3, batch_size=8, progress=False)
    with ImageSetReader(index_path) as reader:
        assert full.digests == [hashlib.sha256(reader.open_bytes(r)).hexdigest() for r in reader.records]
    copy_dir = tmp_path / "copy"
    shutil.copytree(index_path.parent, copy_dir)
    before = encoder.images_encoded
    again = extract_image_features(
        encoder, copy_dir / index_path.name, num_classes=3, batch_size=8, progress=False, reuse=[full]
    )
    assert encoder.images_encoded == before and again.meta["reused"] == len(full)
    np.testing.assert_array_equal(again.feats, full.feats)
    with pytest.raises(GenBenchError, match="no digests.json"):
        extract_image_features(
            encoder,
            index_path,
            num_classes=3,
            progress=False,
            reuse=[FeatureSet(full.feats, full.labels, full.ids, full.meta)],
        )
