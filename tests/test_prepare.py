"""Preparing real splits: digits, image folders, ELEVATER zips (iris and COCO), MNIST idx."""

import io
import json
import os
import struct
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from genbench.core.errors import GenBenchError
from genbench.data.datasets import DatasetInfo, get_dataset
from genbench.data.imageset import ImageSetReader, read_index
from genbench.data.prepare import prepare_dataset, torchvision_label_map


def Info(name, classes, slugs=None, multilabel=False):
    """A DatasetInfo built by hand (prepare.py reads name, classes, slugs, multilabel)."""
    return DatasetInfo(
        name=name,
        classes=tuple(classes),
        slugs=tuple(slugs or [c.lower() for c in classes]),
        templates=("a photo of a {}.",),
        metric="accuracy",
        multilabel=multilabel,
        splits={},
        source={"type": "folder"},
    )


COLORS = ("red", "green", "blue")
COLOR_INFO = Info("colors", COLORS, slugs=("red-ish", "green-ish", "blue-ish"))
RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def encoded(color, fmt="PNG", size=(6, 6)):
    buffer = io.BytesIO()
    Image.new("RGB", size, RGB[color]).save(buffer, format=fmt)
    return buffer.getvalue()


def quiet(*_):
    pass


def loaded_colors(out_dir, split):
    reader = ImageSetReader(os.path.join(out_dir, f"{split}.jsonl"))
    return [(reader.load(i).getpixel((3, 3)), r["label"]) for i, r in enumerate(reader.records)]


# ----------------------------------------------------------------------------- digits


def test_digits_registry_source_gives_registry_split_sizes(tmp_path):
    info = get_dataset("digits")
    summary = prepare_dataset(info, dict(info.source), tmp_path, log=quiet)
    assert summary["splits"]["train"]["count"] == info.splits["train"] == 1347
    assert summary["splits"]["test"]["count"] == info.splits["test"] == 450
    per_class = Counter(load_digits().target.tolist())
    for c, n_test in enumerate(summary["splits"]["test"]["per_class"]):
        assert abs(n_test - per_class[c] * 450 / 1797) < 1  # stratified


def test_digits_counts_stratified_and_pixels(tmp_path):
    info = get_dataset("digits")
    summary = prepare_dataset(info, {"type": "digits"}, tmp_path, seed=0, log=quiet)
    digits = load_digits()
    per_class = Counter(digits.target.tolist())
    train, test = summary["splits"]["train"], summary["splits"]["test"]
    assert train["count"] + test["count"] == 1797
    assert test["per_class"] == [round(per_class[c] * 0.3) for c in range(10)]
    assert [a + b for a, b in zip(train["per_class"], test["per_class"])] == [per_class[c] for c in range(10)]
    assert summary["bad"]["count"] == 0 and not os.path.exists(tmp_path / "val.jsonl")

    reader = ImageSetReader(tmp_path / "test.jsonl")
    record = reader.records[5]
    source_index = int(record["source"].split("[")[1].rstrip("]"))
    assert record["label"] == digits.target[source_index]
    image = np.asarray(reader.load(5))
    expected = np.round(digits.images[source_index] * 255 / 16).astype(np.uint8)
    assert image.shape == (32, 32, 3)
    assert (image[::4, ::4, 0] == expected).all() and (image[3::4, 3::4, 2] == expected).all()


def test_digits_deterministic_bytes(tmp_path):
    info = get_dataset("digits")
    for run in ("a", "b", "c"):
        prepare_dataset(info, {"type": "digits"}, tmp_path / run, seed=1 if run != "c" else 2, log=quiet)
    for name in ("images.zip", "train.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "test.jsonl").read_bytes() != (tmp_path / "c" / "test.jsonl").read_bytes()
    with zipfile.ZipFile(tmp_path / "a" / "images.zip") as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}


# ----------------------------------------------------------------------------- ELEVATER


def write_zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_elevater_iris_labelmap_order_and_missing_member(tmp_path):
    root = tmp_path / "elevater"
    root.mkdir()
    labelmap = ["blue", "red", "green"]  # not the registry order
    (root / "labelmap.txt").write_text("\n".join(labelmap) + "\n")
    write_zip(root / "train.zip", {f"img/{c}{i}.png": encoded(c) for c in COLORS for i in range(3)})
    write_zip(root / "test.zip", {f"{c}.jpg": encoded(c, "JPEG") for c in COLORS})
    train_lines = [f"train.zip@img/{c}{i}.png {labelmap.index(c)}" for c in COLORS for i in range(3)]
    train_lines.append("train.zip@img/missing.png 0")
    (root / "train.txt").write_text("\n".join(train_lines) + "\n")
    (root / "test.txt").write_text("".join(f"test.zip@{c}.jpg {labelmap.index(c)}\n" for c in COLORS))
    source = {
        "type": "elevater",
        "root": str(root),
        "labelmap": "labelmap.txt",
        "train": {"index_path": "train.txt", "files_for_local_usage": ["train.zip"]},
        "test": {"index_path": "test.txt", "files_for_local_usage": ["test.zip"]},
    }
    out = tmp_path / "out"
    summary = prepare_dataset(COLOR_INFO, source, out, max_bad_fraction=0.2, log=quiet)

    assert summary["bad"]["count"] == 1 and summary["bad"]["total"] == 13
    assert "img/missing.png" in summary["bad"]["examples"][0]
    assert summary["splits"]["train"]["per_class"] == [3, 3, 3]
    for pixel, label in loaded_colors(out, "train"):
        assert pixel == RGB[COLORS[label]]
    # JPEG bytes are stored unchanged
    test_records = read_index(out / "test.jsonl")
    reader = ImageSetReader(out / "test.jsonl")
    assert [r["label"] for r in test_records] == [0, 1, 2]
    assert reader.open_bytes(test_records[2]) == encoded("blue", "JPEG")
    assert test_records[2]["path"].endswith(".jpg")

    with pytest.raises(GenBenchError, match=r"dataset colors: 1 of 13 images are unreadable"):
        prepare_dataset(COLOR_INFO, source, tmp_path / "strict", log=quiet)
    assert not os.path.exists(tmp_path / "strict" / "images.zip")


def test_elevater_coco_via_dataset_info_json(tmp_path):
    root = tmp_path / "kitti-like"
    root.mkdir()
    order = ["green", "blue", "red"]  # labelmap and category ids in another order
    (root / "labels.txt").write_text("\n".join(order) + "\n")
    write_zip(
        root / "images.zip",
        {f"{split}/{c}.png": encoded(c, size=(6, 5)) for split in ("train", "val", "test") for c in COLORS},
    )
    for split in ("train", "val", "test"):
        images = [
            {"id": n + 1, "file_name": f"{split}/{c}.png", "zip_file": "images.zip", "width": 6, "height": 5}
            for n, c in enumerate(COLORS)
        ]
        annotations = [
            {"id": n + 1, "image_id": n + 1, "category_id": order.index(c) + 1} for n, c in enumerate(COLORS)
        ]
        categories = [{"id": i + 1, "name": name} for i, name in enumerate(order)]
        (root / f"{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories})
        )
    dataset_info = [
        {
            "name": "colors",
            "type": "classification_multiclass",
            "format": "coco",
            "labelmap": "labels.txt",
            **{
                s: {"index_path": f"{s}.json", "files_for_local_usage": ["images.zip"]}
                for s in ("train", "val", "test")
            },
        }
    ]
    (root / "dataset_info.json").write_text(json.dumps(dataset_info))
    out = tmp_path / "out"
    summary = prepare_dataset(COLOR_INFO, {"type": "elevater", "root": str(root)}, out, log=quiet)
    assert set(summary["splits"]) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert loaded_colors(out, split) == [(RGB[c], i) for i, c in enumerate(COLORS)]


def test_elevater_multilabel_iris(tmp_path):
    info = Info("voc-like", COLORS, multilabel=True)
    root = tmp_path / "voc"
    root.mkdir()
    (root / "labelmap.txt").write_text("red\nblue\ngreen\n")
    write_zip(root / "i.zip", {"a.png": encoded("red"), "b.png": encoded("blue")})
    (root / "test.txt").write_text("i.zip@a.png 0,1\ni.zip@b.png 2\n")
    source = {"type": "elevater", "root": str(root), "labelmap": "labelmap.txt", "test": {"index_path": "test.txt"}}
    prepare_dataset(info, source, tmp_path / "out", log=quiet)
    assert [r["label"] for r in read_index(tmp_path / "out" / "test.jsonl")] == [[0, 2], [1]]


def test_elevater_labelmap_mismatch_lists_names(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "labelmap.txt").write_text("red\npurple\nteal\n")
    (root / "test.txt").write_text("x.zip@a.png 0\n")
    source = {"type": "elevater", "root": str(root), "labelmap": "labelmap.txt", "test": {"index_path": "test.txt"}}
    with pytest.raises(GenBenchError, match=r"match no registry class: \['purple', 'teal'\]"):
        prepare_dataset(COLOR_INFO, source, tmp_path / "out", log=quiet)
    aliased = dict(source, class_aliases={"purple": "blue", "teal": "green"})
    write_zip(root / "x.zip", {"a.png": encoded("red")})
    prepare_dataset(COLOR_INFO, aliased, tmp_path / "out", log=quiet)
    assert read_index(tmp_path / "out" / "test.jsonl")[0]["label"] == 0


# ----------------------------------------------------------------------------- folders


def make_folder(root, layout):
    for rel, color in layout.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded(color))


def test_folder_with_split_subfolders_and_slug_names(tmp_path):
    layout = {
        f"{split}/{folder}/{n}.png": color
        for split in ("train", "test")
        for folder, color in [("red", "red"), ("green-ish", "green"), ("Blue", "blue")]
        for n in range(2)
    }
    make_folder(tmp_path / "imgs", layout)
    (tmp_path / "imgs" / "train" / "red" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    summary = prepare_dataset(COLOR_INFO, {"type": "folder", "path": str(tmp_path / "imgs")}, out, log=quiet)
    assert summary["splits"]["train"]["per_class"] == [2, 2, 2]
    for split in ("train", "test"):
        assert all(pixel == RGB[COLORS[label]] for pixel, label in loaded_colors(out, split))


def test_folder_without_splits_is_split_stratified(tmp_path):
    make_folder(tmp_path / "imgs", {f"{c}/{n}.png": c for c in COLORS for n in range(10)})
    summary = prepare_dataset(
        COLOR_INFO,
        {"type": "folder", "path": str(tmp_path / "imgs")},
        tmp_path / "out",
        seed=3,
        test_fraction=0.2,
        log=quiet,
    )
    assert summary["splits"]["test"]["per_class"] == [2, 2, 2]
    assert summary["splits"]["train"]["per_class"] == [8, 8, 8]


def test_folder_unknown_or_empty_class_errors(tmp_path):
    make_folder(tmp_path / "imgs", {f"{c}/0.png": c if c in RGB else "red" for c in ("red", "green", "blue", "mauve")})
    with pytest.raises(GenBenchError, match=r"class folder .*mauve is not a class"):
        prepare_dataset(COLOR_INFO, {"type": "folder", "path": str(tmp_path / "imgs")}, tmp_path / "out", log=quiet)
    os.remove(tmp_path / "imgs" / "mauve" / "0.png")
    os.rmdir(tmp_path / "imgs" / "mauve")
    os.remove(tmp_path / "imgs" / "blue" / "0.png")
    with pytest.raises(GenBenchError, match=r"class folder .*blue holds no images"):
        prepare_dataset(COLOR_INFO, {"type": "folder", "path": str(tmp_path / "imgs")}, tmp_path / "out", log=quiet)


# ----------------------------------------------------------------------------- torchvision


def write_idx(raw, prefix, images, labels):
    n, rows, cols = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()
    )
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def test_mnist_from_idx_files(tmp_path):
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = {}
    for prefix, n in (("train", 30), ("t10k", 12)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        write_idx(raw, prefix, images, labels)
        data[prefix] = (images, labels)
    info = get_dataset("mnist")
    out = tmp_path / "out"
    source = dict(info.source, root=str(tmp_path / "tv"))
    summary = prepare_dataset(info, source, out, log=quiet)
    assert summary["splits"]["train"]["count"] == 30 and summary["splits"]["test"]["count"] == 12
    for split, prefix in (("train", "train"), ("test", "t10k")):
        reader = ImageSetReader(out / f"{split}.jsonl")
        images, labels = data[prefix]
        assert [r["label"] for r in reader.records] == labels.tolist()
        for i in (0, len(reader) - 1):
            assert (np.asarray(reader.load(i))[..., 1] == images[i]).all()


def test_torchvision_missing_root_says_how_to_fix(tmp_path):
    info = get_dataset("mnist")
    with pytest.raises(
        GenBenchError,
        match=r"mnist: torchvision MNIST found no data under .*"
        r"download: true.*place the files under",
    ):
        prepare_dataset(
            info,
            {"type": "torchvision", "class": "MNIST", "root": str(tmp_path / "nowhere")},
            tmp_path / "out",
            log=quiet,
        )


class FakeTorchvision:
    def __init__(self, classes):
        self.classes = classes


def test_torchvision_label_map_by_name_by_id_and_order_conflict():
    assert torchvision_label_map(COLOR_INFO, FakeTorchvision(["Blue", "red", "green_ish"]), "Fake") == [2, 0, 1]
    assert torchvision_label_map(COLOR_INFO, FakeTorchvision(["0 - r", "1 - g", "2 - b"]), "Fake") == [0, 1, 2]
    with pytest.raises(GenBenchError, match="class order differs"):
        torchvision_label_map(COLOR_INFO, FakeTorchvision(["x", "red", "y"]), "Fake")


def test_voc_detection_is_multilabel_from_xml(tmp_path):
    voc = tmp_path / "tv" / "VOCdevkit" / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    objects = {"000001": ["dog", "person", "dog"], "000002": ["aeroplane"]}
    for stem, names in objects.items():
        (voc / "JPEGImages" / f"{stem}.jpg").write_bytes(encoded("red", "JPEG"))
        body = "".join(f"<object><name>{n}</name><difficult>0</difficult></object>" for n in names)
        (voc / "Annotations" / f"{stem}.xml").write_text(f"<annotation>{body}</annotation>")
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    info = get_dataset("voc-2007-classification")
    source = dict(info.source, root=str(tmp_path / "tv"), splits={"test": {"image_set": "test"}})
    prepare_dataset(info, source, tmp_path / "out", log=quiet)
    records = read_index(tmp_path / "out" / "test.jsonl")
    classes = list(info.classes)
    assert [r["label"] for r in records] == [
        sorted([classes.index("dog"), classes.index("person")]),
        [classes.index("aeroplane")],
    ]
    reader = ImageSetReader(tmp_path / "out" / "test.jsonl")
    assert reader.open_bytes(records[0]) == encoded("red", "JPEG")
