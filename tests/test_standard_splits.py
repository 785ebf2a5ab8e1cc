"""ELEVATER's splits from the sources a user can get: each dataset's own on-disk layout, scaled
down, prepared through the registry's source, checked for split sizes and label order."""

import csv
import dataclasses
import random

import pytest
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.data.datasets import get_dataset
from genbench.data.prepare.sources.torchvision import splits_from_torchvision
from genbench.data.prepare.standard_splits import gtsrb_track

EUROSAT_FOLDERS = [
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
]


def _image(path, color=(10, 20, 30), size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _prepare(name, root, **source_changes):
    info = get_dataset(name)
    source = {**info.source, "root": str(root), **source_changes}
    info = dataclasses.replace(info, source=source)
    return info, splits_from_torchvision(info, source, seed=0, test_fraction=0.3, download=False, log=lambda *_: None)


def _counts(items, num_classes):
    counts = [0] * num_classes
    for item in items:
        counts[item.label] += 1
    return counts


def test_eurosat_fixed_sizes_stratified_and_in_torchvision_folder_order(tmp_path):
    for label, folder in enumerate(EUROSAT_FOLDERS):
        for i in range(10):
            _image(tmp_path / "eurosat" / "2750" / folder / f"{folder}_{i + 1}.jpg", (label * 20, i, 0))
    registry = get_dataset("eurosat_clip").source["split_recipe"]
    assert registry["sizes"] == {"train": 5000, "val": 5000, "test": 5000}
    # scaled down: 100 of 27000 images, 20 per split
    recipe = {**registry, "sizes": {"train": 20, "val": 20, "test": 20}}
    info, splits = _prepare("eurosat_clip", tmp_path, split_recipe=recipe)
    assert {s: len(v) for s, v in splits.items()} == {"train": 20, "val": 20, "test": 20}
    for split in ("train", "val", "test"):
        assert _counts(splits[split], 10) == [2] * 10, split
        for item in splits[split]:  # the folder a file is in is its class, in the registry's order
            assert EUROSAT_FOLDERS[item.label] in item.name
    names = [i.name for s in splits.values() for i in s]
    assert len(set(names)) == 60
    assert info.classes[0] == "annual crop land" and info.classes[9] == "lake or sea"
    _, again = _prepare("eurosat_clip", tmp_path, split_recipe=recipe)
    assert [i.name for i in again["val"]] == [i.name for i in splits["val"]]


SUN_CLASSES = {"/a/abbey": 0, "/a/airplane_cabin": 1, "/w/wrestling_ring/indoor": 394}


def _sun397_fixture(root, with_partitions=True):
    data = root / "SUN397"
    data.mkdir(parents=True)
    (data / "ClassName.txt").write_text("".join(f"{c}\n" for c in SUN_CLASSES))
    train, test = [], []
    for c in SUN_CLASSES:
        for i in range(5):
            _image(data / c.lstrip("/") / f"sun_{c.strip('/').replace('/', '')}{i}.jpg")
            (train if i < 2 else test if i < 4 else []).append(f"{c}/sun_{c.strip('/').replace('/', '')}{i}.jpg")
    if with_partitions:
        (data / "Partitions").mkdir()
        (data / "Partitions" / "Training_01.txt").write_text("\n".join(train) + "\n")
        (data / "Partitions" / "Testing_01.txt").write_text("\n".join(test) + "\n")


def test_sun397_partition_1_from_its_lists(tmp_path):
    _sun397_fixture(tmp_path)
    info, splits = _prepare("sun397", tmp_path)
    assert info.splits["train"] == info.splits["test"] == 19850  # 50 + 50 per class at full size
    assert {s: len(v) for s, v in splits.items()} == {"train": 6, "test": 6}  # 2 + 2 per class here
    assert sorted({i.label for i in splits["train"]}) == sorted(SUN_CLASSES.values())
    for item in splits["test"]:
        assert info.classes[item.label].replace(" ", "") in item.name.replace("_", "").replace("/", "")
    assert not {i.name for i in splits["train"]} & {i.name for i in splits["test"]}


def test_sun397_without_partition_files_says_which_file_and_where_to_get_it(tmp_path):
    _sun397_fixture(tmp_path, with_partitions=False)
    with pytest.raises(GenBenchError, match=r"SUN397 partition file Training_01.txt is missing.*Partitions.zip"):
        _prepare("sun397", tmp_path)


def test_gtsrb_val_split_is_whole_tracks_of_the_training_set(tmp_path):
    base = tmp_path / "gtsrb"
    for label in range(3):
        for track in range(6):
            for frame in range(2):
                _image(base / "GTSRB" / "Training" / f"{label:05d}" / f"{track:05d}_{frame:05d}.ppm")
    rows = []
    for i in range(9):
        _image(base / "GTSRB" / "Final_Test" / "Images" / f"{i:05d}.ppm")
        rows.append({"Filename": f"{i:05d}.ppm", "ClassId": i % 3})
    with open(base / "GT-final_test.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["Filename", "ClassId"], delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    info, splits = _prepare("gtsrb", tmp_path)
    recipe = info.source["split_recipe"]
    assert (recipe["val_size"], recipe["train_total"]) == (12569, 39209)
    # round(6 tracks x 12569 / 39209) = 2 tracks of 2 frames per class
    assert _counts(splits["val"], 43)[:3] == [4, 4, 4] and _counts(splits["train"], 43)[:3] == [8, 8, 8]
    assert not {gtsrb_track(i.name) for i in splits["val"]} & {gtsrb_track(i.name) for i in splits["train"]}
    assert [i.label for i in splits["test"]] == [i % 3 for i in range(9)]
    for item in splits["train"]:
        assert f"{item.label:05d}" in item.name


def test_fer2013_public_and_private_test_from_its_csv(tmp_path):
    rng = random.Random(0)
    usages = ["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7
    (tmp_path / "fer2013").mkdir()
    with open(tmp_path / "fer2013" / "fer2013.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for i, usage in enumerate(usages):
            writer.writerow([i % 7, " ".join(str(rng.randrange(256)) for _ in range(48 * 48)), usage])
    info, splits = _prepare("fer-2013", tmp_path)
    assert (info.splits["val"], info.splits["test"]) == (3589, 3589)
    assert {s: len(v) for s, v in splits.items()} == {"train": 14, "val": 7, "test": 7}
    assert [i.label for i in splits["val"]] == list(range(7))
    assert info.classes[0] == "angry" and info.classes[6] == "neutral"
    image = splits["test"][0].fetch()
    assert image.size == (48, 48) and image.mode == "L"


def test_fer2013_without_the_usage_csv_names_the_files(tmp_path):
    with pytest.raises(GenBenchError, match=r"none of fer2013.csv, icml_face_data.csv"):
        _prepare("fer-2013", tmp_path)
