"""ELEVATER-style seeded K-shot sampling."""

import io
import random
import zipfile
from collections import Counter

import pytest
from PIL import Image

from genbench.core.errors import GenBenchError
from genbench.data.fewshot import sample_k_shot, write_k_shot_subset
from genbench.data.imageset import ImageSetReader, read_index, write_index


def png_bytes(color):
    buffer = io.BytesIO()
    Image.new("RGB", (3, 3), color).save(buffer, format="PNG")
    return buffer.getvalue()


def elevater_reference(labels, k, seed):
    """A direct transcription of ELEVATER's loop: shuffle the images, keep an image if
    any of its classes is still short of k."""
    images = [(i, lab if isinstance(lab, list) else [lab]) for i, lab in enumerate(labels)]
    random.Random(seed).shuffle(images)
    per_class = Counter()
    kept = []
    for i, image_labels in images:
        if any(per_class[c] < k for c in image_labels):
            kept.append(i)
            per_class.update(image_labels)
    return kept


def imbalanced_labels():
    rng = random.Random(123)
    labels = [c for c in range(5) for _ in range(20)] + [5, 5]  # class 5 has only 2
    rng.shuffle(labels)
    return labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 4, 16])
def test_matches_elevater_loop_and_gives_k_per_class(seed, k):
    labels = imbalanced_labels()
    picked = sample_k_shot(labels, k, seed)
    assert picked == elevater_reference(labels, k, seed)
    counts = Counter(labels[i] for i in picked)
    assert all(counts[c] == k for c in range(5))
    assert counts[5] == min(2, k)
    assert len(set(picked)) == len(picked)


def test_deterministic_and_seed_dependent():
    labels = imbalanced_labels()
    assert sample_k_shot(labels, 5, 7) == sample_k_shot(labels, 5, 7)
    assert sample_k_shot(labels, 5, 7) != sample_k_shot(labels, 5, 8)


def test_multilabel_rule_matches_reference():
    rng = random.Random(5)
    labels = [sorted(rng.sample(range(4), rng.randint(1, 2))) for _ in range(60)]
    picked = sample_k_shot(labels, 3, 0)
    assert picked == elevater_reference(labels, 3, 0)
    counts = Counter(c for i in picked for c in labels[i])
    assert all(counts[c] >= 3 for c in range(4))


def test_bad_k():
    with pytest.raises(GenBenchError, match="k must be a positive integer"):
        sample_k_shot([0, 1], 0, 0)


def test_write_subset_paths_point_back_and_shortfall(tmp_path):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    labels = imbalanced_labels()
    with zipfile.ZipFile(prepared / "images.zip", "w") as archive:
        for i in range(len(labels)):
            archive.writestr(f"train/{i:03d}.png", png_bytes((i, labels[i], 0)))
    records = [
        {"id": f"train/{i:03d}", "path": f"images.zip@train/{i:03d}.png", "label": lab} for i, lab in enumerate(labels)
    ]
    write_index(prepared / "train.jsonl", records)

    out = tmp_path / "results" / "fewshot" / "x"
    summary = write_k_shot_subset(prepared / "train.jsonl", out, k=4, seed=1, num_classes=7)
    assert summary["k"] == 4 and summary["seed"] == 1
    assert summary["counts"] == [4, 4, 4, 4, 4, 2, 0]
    assert summary["shortfall"] == {5: 2, 6: 0}

    subset = read_index(out / "train.jsonl")
    expected = [records[i] for i in sample_k_shot(labels, 4, 1)]
    assert [r["id"] for r in subset] == [r["id"] for r in expected]
    assert subset[0]["path"].startswith("../../../prepared/images.zip@train/")
    reader = ImageSetReader(out / "train.jsonl")
    for i, record in enumerate(subset):
        number = int(record["id"].split("/")[1])
        assert reader.load(i).getpixel((0, 0)) == (number, labels[number], 0)
