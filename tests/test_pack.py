"""Tests for genbench.evaluation.pack: K-per-class selection and ELEVATER packing read back by vision-datasets."""

import io
import json
import random
import zipfile

import numpy as np
import pytest
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.evaluation.pack import pack_elevater, select_k_per_class

CLASSES = ["cat", "dog", "sea turtle"]


def _image_bytes(width, height, color, fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def image_set():
    """Seven images of different sizes and formats; id -> bytes, and index records."""
    rng = np.random.default_rng(0)
    records, blobs = [], {}
    for i in range(7):
        rid = f"train/{i:03d}" if i != 6 else "train/odd name@x"
        width, height = 8 + i, 20 - i
        blobs[rid] = _image_bytes(
            width, height, tuple(int(v) for v in rng.integers(0, 255, 3)), "PNG" if i % 2 else "JPEG"
        )
        records.append({"id": rid, "path": f"images.zip@{rid}", "label": i % 3})
    return records, blobs


def _load_with_vision_datasets(out_dir, info, usage="train"):
    from vision_datasets import DatasetHub, Usages

    hub = DatasetHub(json.dumps([info]), None, str(out_dir.parent))
    dataset = hub.create_vision_dataset(info["name"], usage=Usages[usage.upper()])
    items = [dataset[i] for i in range(len(dataset))]
    dataset.close()
    return dataset, items


@pytest.mark.parametrize("index_format", ["iris", "coco"])
def test_round_trip_through_vision_datasets(tmp_path, image_set, index_format):
    records, blobs = image_set
    out = tmp_path / "packed"
    info = pack_elevater(
        records,
        lambda r: blobs[r["id"]],
        out,
        dataset_name="toy",
        class_names=CLASSES,
        index_format=index_format,
        multilabel=False,
        k=3,
        shortfall={2: 2},
    )
    dataset, items = _load_with_vision_datasets(out, info)
    assert len(items) == len(records) == info["train"]["num_images"]
    assert [c.name for c in dataset.categories] == CLASSES
    # vision-datasets keeps index order (COCO: sorted by image id, which is record order)
    for record, (image, target, _) in zip(records, items):
        expected = Image.open(io.BytesIO(blobs[record["id"]]))
        assert image.size == expected.size
        assert [t.category_id for t in target] == [record["label"]]
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(expected.convert("RGB")))
    assert info["train"]["k"] == 3 and info["train"]["shortfall"] == {"2": 2}


def test_coco_index_has_real_sizes_and_one_based_ids(tmp_path, image_set):
    records, blobs = image_set
    pack_elevater(
        records,
        lambda r: blobs[r["id"]],
        tmp_path,
        dataset_name="toy",
        class_names=CLASSES,
        index_format="coco",
        multilabel=False,
    )
    coco = json.loads((tmp_path / "train.json").read_text())
    for record, image in zip(records, coco["images"]):
        assert (image["width"], image["height"]) == Image.open(io.BytesIO(blobs[record["id"]])).size
        assert image["zip_file"] == "train.zip"
    assert [a["category_id"] for a in coco["annotations"]] == [r["label"] + 1 for r in records]
    assert coco["categories"] == [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["format"] == "coco" and info["type"] == "classification_multiclass"


def test_multilabel_iris_and_second_split(tmp_path, image_set):
    records, blobs = image_set
    multi = [{**r, "label": sorted({r["label"], (r["label"] + 1) % 3})} for r in records]
    out = tmp_path / "voc"
    pack_elevater(
        multi,
        lambda r: blobs[r["id"]],
        out,
        dataset_name="ml",
        class_names=CLASSES,
        index_format="iris",
        multilabel=True,
    )
    info = pack_elevater(
        multi[:2],
        lambda r: blobs[r["id"]],
        out,
        dataset_name="ml",
        class_names=CLASSES,
        index_format="iris",
        multilabel=True,
        split_name="test",
    )
    assert info["type"] == "classification_multilabel"
    assert info["train"]["num_images"] == 7 and info["test"]["num_images"] == 2
    _, items = _load_with_vision_datasets(out, info, "train")
    assert [sorted(t.category_id for t in target) for _, target, _ in items] == [r["label"] for r in multi]
    first_line = (out / "train.txt").read_text().splitlines()[0]
    assert first_line == f"train.zip@train/000.jpg {multi[0]['label'][0]},{multi[0]['label'][1]}"
    _, test_items = _load_with_vision_datasets(out, info, "test")
    assert len(test_items) == 2


def test_same_images_give_identical_bytes(tmp_path, image_set):
    records, blobs = image_set
    outputs = []
    for name, order in (("a", records), ("b", records)):
        out = tmp_path / "run" / name
        pack_elevater(
            order,
            lambda r: blobs[r["id"]],
            out,
            dataset_name="toy",
            class_names=CLASSES,
            index_format="coco",
            multilabel=False,
            root_folder="same",
        )
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["dataset_info.json", "labelmap.txt", "train.json", "train.zip"]


def test_zip_is_store_mode_sorted_with_fixed_metadata(tmp_path, image_set):
    records, blobs = image_set
    pack_elevater(
        records[::-1],
        lambda r: blobs[r["id"]],
        tmp_path,
        dataset_name="toy",
        class_names=CLASSES,
        index_format="iris",
        multilabel=False,
    )
    with zipfile.ZipFile(tmp_path / "train.zip") as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
        assert "train/odd_name_x.jpg" in names  # '@' and ' ' would break the iris index
        assert zf.read("train/001.png") == blobs["train/001"]


def test_streaming_reads_each_image_once_in_member_order(tmp_path, image_set):
    records, blobs = image_set
    calls = []

    def fetch(record):
        calls.append(record["id"])
        return blobs[record["id"]]

    pack_elevater(
        records[::-1], fetch, tmp_path, dataset_name="toy", class_names=CLASSES, index_format="iris", multilabel=False
    )
    assert calls == sorted(r["id"] for r in records)


def test_bad_label_and_bad_image_raise_naming_record(tmp_path, image_set):
    records, blobs = image_set
    bad = records[:1] + [{**records[1], "label": 7}]
    with pytest.raises(GenBenchError, match="train/001"):
        pack_elevater(
            bad,
            lambda r: blobs[r["id"]],
            tmp_path,
            dataset_name="toy",
            class_names=CLASSES,
            index_format="iris",
            multilabel=False,
        )
    with pytest.raises(GenBenchError, match="train/000.*not a readable image"):
        pack_elevater(
            records[:1],
            lambda r: b"not an image",
            tmp_path,
            dataset_name="toy",
            class_names=CLASSES,
            index_format="iris",
            multilabel=False,
        )
    assert not list(tmp_path.glob("*.partial"))  # no half-written zip left behind
    with pytest.raises(GenBenchError, match="iris, coco"):
        pack_elevater(
            records,
            lambda r: blobs[r["id"]],
            tmp_path,
            dataset_name="toy",
            class_names=CLASSES,
            index_format="tsv",
            multilabel=False,
        )


def test_clip_selection_takes_top_k_per_class():
    labels = [0, 1, 0, 1, 0, 0, 2]
    scores = [0.1, 0.9, 0.5, 0.2, 0.5, 0.3, 0.4]
    indices, counts, shortfall = select_k_per_class(labels, 2, "clip", clip_scores=scores, num_classes=4)
    # class 0: scores 0.1,0.5,0.5,0.3 at 0,2,4,5 -> tie 0.5 -> indices 2 and 4; class 1: 1 and 3; class 2: 6
    assert indices.tolist() == [1, 2, 3, 4, 6]
    assert counts == [2, 2, 1, 0]
    assert shortfall == {2: 1, 3: 0}


def test_random_selection_is_elevater_greedy_sampling():
    labels = [i % 4 for i in range(40)]
    indices, counts, shortfall = select_k_per_class(labels, 3, "random", seed=5)
    order = list(range(40))
    random.Random(5).shuffle(order)
    expected = []
    for c in range(4):
        expected += [i for i in order if labels[i] == c][:3]
    assert indices.tolist() == sorted(expected)
    assert counts == [3, 3, 3, 3] and shortfall == {}
    again, _, _ = select_k_per_class(labels, 3, "random", seed=5)
    other, _, _ = select_k_per_class(labels, 3, "random", seed=6)
    assert again.tolist() == indices.tolist() and other.tolist() != indices.tolist()


def test_selection_errors():
    with pytest.raises(GenBenchError, match="clip, random"):
        select_k_per_class([0, 1], 1, "best")
    with pytest.raises(GenBenchError, match="clip_scores"):
        select_k_per_class([0, 1], 1, "clip")
    with pytest.raises(GenBenchError, match="shape"):
        select_k_per_class([0, 1], 1, "clip", clip_scores=[1.0])
