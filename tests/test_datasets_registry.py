"""The dataset registry against the published per-dataset facts and independent class lists."""

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from genbench.core.errors import ConfigError, GenBenchError
from genbench.data.datasets import (
    BENCHMARK_DATASETS,
    DatasetInfo,
    class_slugs,
    get_dataset,
    list_datasets,
)

# key: (classes, metric, (train, val, test), templates) -- the published GenBench / ELEVATER table
EXPECTED = {
    "caltech-101": (102, "mean-per-class", (3060, None, 6084), 34),
    "cifar-10": (10, "accuracy", (50000, None, 10000), 18),
    "cifar-100": (100, "accuracy", (50000, None, 10000), 18),
    "country211": (211, "accuracy", (31650, 10550, 21100), 5),
    "dtd": (47, "accuracy", (1880, 1880, 1880), 8),
    "eurosat_clip": (10, "accuracy", (5000, 5000, 5000), 3),
    "fer-2013": (7, "accuracy", (28709, 3589, 3589), 6),
    "fgvc-aircraft-2013b-variants102": (100, "mean-per-class", (3334, 3333, 3333), 2),
    "food-101": (101, "accuracy", (75750, None, 25250), 1),
    "gtsrb": (43, "accuracy", (26640, 12569, 12630), 3),
    "hateful-memes": (2, "roc_auc", (8500, None, 500), 1),
    "kitti-distance": (4, "accuracy", (6347, 423, 711), 1),
    "mnist": (10, "accuracy", (60000, None, 10000), 1),
    "oxford-flower-102": (102, "mean-per-class", (1020, 1020, 6149), 1),
    "oxford-iiit-pets": (37, "mean-per-class", (3680, None, 3669), 1),
    "patch-camelyon": (2, "accuracy", (262144, 32768, 32768), 1),
    "rendered-sst2": (2, "accuracy", (6920, 827, 1821), 1),
    "resisc45_clip": (45, "accuracy", (3150, 3150, 25200), 18),
    "stanford-cars": (196, "accuracy", (8144, None, 8041), 8),
    "voc-2007-classification": (20, "11point_mAP", (2501, 2510, 4952), 1),
    "imagenet-1k": (1000, "accuracy", (None, None, 50000), 80),
    "sun397": (397, "accuracy", (19850, None, 19850), 2),  # partition 1: 50 + 50 per class
}
COCO_INDEXED = {"resisc45_clip", "kitti-distance", "hateful-memes"}


def test_benchmark_keys_are_the_22_of_the_reference():
    assert list_datasets() == sorted(EXPECTED)
    assert BENCHMARK_DATASETS == tuple(sorted(EXPECTED))
    assert "digits" not in list_datasets()


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_counts_metric_splits_templates_match_reference(key):
    n_classes, metric, (train, val, test), n_templates = EXPECTED[key]
    info = get_dataset(key)
    assert info.name == key
    assert info.num_classes == n_classes == len(info.classes) == len(info.slugs)
    assert info.metric == metric
    assert dict(info.splits) == {"train": train, "val": val, "test": test}
    assert len(info.templates) == n_templates
    assert info.multilabel == (key == "voc-2007-classification")
    assert info.index_format == ("coco" if key in COCO_INDEXED else "iris")


def test_total_class_count_is_2548():
    assert sum(get_dataset(k).num_classes for k in list_datasets()) == 2548


@pytest.mark.parametrize("key", sorted(EXPECTED) + ["digits"])
def test_templates_and_classes_are_well_formed(key):
    info = get_dataset(key)
    assert all(t.count("{}") == 1 for t in info.templates)
    assert all(t.format("x") for t in info.templates)
    assert len(set(info.classes)) == len(info.classes)
    assert all(c.strip() == c and c for c in info.classes)
    assert len(set(info.slugs)) == len(info.slugs)
    assert info.source["type"] in {"torchvision", "elevater", "digits"}


def test_sources_follow_the_brief():
    for key in ("hateful-memes", "kitti-distance", "resisc45_clip"):
        assert get_dataset(key).source["type"] == "elevater"
    assert dict(get_dataset("cifar-10").source)["class"] == "CIFAR10"
    assert get_dataset("dtd").source["partition"] == 1
    assert get_dataset("fgvc-aircraft-2013b-variants102").source["annotation_level"] == "variant"


def test_ordering_traps_are_encoded_and_documented():
    memes = get_dataset("hateful-memes")
    assert memes.classes == ("meme", "hatespeech meme")
    assert memes.templates == ("a {}.",)
    assert "swap" in memes.notes
    kitti = get_dataset("kitti-distance")
    assert kitti.templates == ("{}",)
    assert kitti.classes[0] == "a photo i took of a car on my left or right side."
    assert kitti.classes[3] == "a photo i took with no car."
    assert "label ids" in kitti.notes.lower()


def test_fer_uses_first_synonym_in_emotion_id_order():
    assert get_dataset("fer-2013").classes == ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")


def test_mnist_and_cifar_templates_are_clips():
    assert get_dataset("mnist").templates == ('a photo of the number: "{}".',)
    assert get_dataset("cifar-10").templates == get_dataset("cifar-100").templates
    assert get_dataset("cifar-100").templates[0] == "a photo of a {}."


def test_cifar100_is_in_torchvision_alphabetical_order():
    classes = get_dataset("cifar-100").classes
    assert list(classes) == sorted(classes)
    assert classes[0] == "apple" and classes[-1] == "worm"


def _torchvision_flowers_classes():
    """Flowers102.classes read from torchvision's source file (no torch import: fast)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        pytest.skip("torchvision not installed")
    source = Path(spec.origin).parent / "datasets" / "flowers102.py"
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "classes":
            return ast.literal_eval(node.value)
    pytest.skip("torchvision's Flowers102 has no class list")


def test_flowers_match_torchvision_order_with_clips_three_renames():
    ours = get_dataset("oxford-flower-102").classes
    theirs = _torchvision_flowers_classes()
    assert len(ours) == len(theirs) == 102
    differing = {i: (theirs[i], ours[i]) for i in range(102) if theirs[i] != ours[i]}
    assert differing == {
        15: ("globe-flower", "globe flower"),
        59: ("pink-yellow dahlia?", "pink and yellow dahlia"),
        92: ("ball moss", "air plant"),
    }


def _open_clip_imagenet_metadata():
    """open_clip's ImageNet class names and OpenAI templates, read from its source (no torch import)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.skip("open_clip not installed")
    source = Path(spec.origin).parent / "zero_shot_metadata.py"
    found = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    names = ast.literal_eval(found["IMAGENET_CLASSNAMES"])
    templates = [_lambda_fstring_as_template(lam) for lam in found["OPENAI_IMAGENET_TEMPLATES"].elts]
    return list(names), templates


def _lambda_fstring_as_template(lam):
    """`lambda c: f'a photo of {c}.'` -> 'a photo of {}.'"""
    parts = []
    for value in lam.body.values:
        parts.append(value.value if isinstance(value, ast.Constant) else "{}")
    return "".join(parts)


def test_imagenet_matches_open_clip_list_except_two_disambiguated_names():
    theirs, their_templates = _open_clip_imagenet_metadata()
    ours = get_dataset("imagenet-1k")
    differing = {i: (theirs[i], ours.classes[i]) for i in range(1000) if theirs[i] != ours.classes[i]}
    assert differing == {744: ("missile", "projectile"), 836: ("sunglasses", "sunglass")}
    assert list(ours.templates) == their_templates


def test_digits_demo_set_matches_sklearn():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    info = get_dataset("digits")
    assert info.classes == tuple(str(t) for t in digits.target_names)
    assert info.source["type"] == "digits"
    assert info.splits["train"] + info.splits["test"] == len(digits.target) == 1797


def test_registry_reads_are_cached():
    assert get_dataset("cifar-10") is get_dataset("cifar-10")


def test_info_is_read_only_and_to_json_round_trips():
    info = get_dataset("dtd")
    with pytest.raises(TypeError):
        info.source["type"] = "folder"
    data = info.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["classes"] == list(info.classes) and data["source"]["partition"] == 1
    assert isinstance(data["splits"], dict)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        get_dataset("cifar-11")
    assert "cifar-11" in str(err.value) and "cifar-10" in str(err.value) and "sun397" in str(err.value)
    assert isinstance(err.value, GenBenchError)


# ------------------------------------------------------------------ user datasets

GOOD = {"classes": ["Red Panda", "koala"], "source": {"type": "folder", "path": "/data/zoo"}}


def _user(**changes):
    decl = dict(GOOD)
    decl.update(changes)
    return {"zoo": decl}


def test_user_dataset_defaults():
    info = get_dataset("zoo", _user())
    assert isinstance(info, DatasetInfo)
    assert info.classes == ("Red Panda", "koala")
    assert info.slugs == tuple(class_slugs(["Red Panda", "koala"])) == ("red_panda", "koala")
    assert info.templates == ("a photo of a {}.",)
    assert info.metric == "accuracy" and info.multilabel is False
    assert info.source["path"] == "/data/zoo"
    assert info.index_format == "iris"


def test_user_dataset_from_labels_file(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("otter\nbadger\n\n", encoding="utf-8")
    decl = {
        "labels_file": str(labels),
        "templates": ["itap of a {}."],
        "metric": "mean-per-class",
        "source": {"type": "elevater", "path": str(tmp_path)},
    }
    info = get_dataset("mustelids", {"mustelids": decl})
    assert info.classes == ("otter", "badger")
    assert info.metric == "mean-per-class"
    assert info.templates == ("itap of a {}.",)


def test_user_registry_does_not_hide_builtins():
    assert get_dataset("mnist", _user()).num_classes == 10


BAD_DECLARATIONS = [
    (_user(classes=[]), "datasets.zoo.classes"),
    (_user(classes=["cat", "dog", "cat"]), "'cat'"),
    (_user(templates=["a photo of a cat."]), "datasets.zoo.templates"),
    (_user(templates=["{} and {}"]), "datasets.zoo.templates"),
    (_user(metric="f1"), "datasets.zoo.metric"),
    (_user(multilabel="yes"), "datasets.zoo.multilabel"),
    (_user(source={"type": "ftp", "path": "x"}), "datasets.zoo.source.type"),
    (_user(source={"type": "folder"}), "datasets.zoo.source.path"),
    (_user(colour="blue"), "'colour'"),
    (_user(labels_file="/x.txt"), "exactly one of 'classes'"),
    (_user(splits={"training": 3}), "datasets.zoo.splits"),
    (_user(metric="roc_auc", classes=["a", "b", "c"]), "datasets.zoo.metric"),
]


@pytest.mark.parametrize("user, expected", BAD_DECLARATIONS)
def test_bad_user_declaration_names_the_key(user, expected):
    with pytest.raises(ConfigError) as err:
        get_dataset("zoo", user)
    assert expected in str(err.value)
    assert "zoo" in str(err.value)


def test_missing_labels_file_is_named(tmp_path):
    missing = tmp_path / "nope.txt"
    decl = {"labels_file": str(missing), "source": {"type": "folder", "path": "x"}}
    with pytest.raises(ConfigError, match=r"datasets\.zoo\.labels_file.*nope\.txt"):
        get_dataset("zoo", {"zoo": decl})


def test_duplicate_in_labels_file_is_named(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\na\n", encoding="utf-8")
    decl = {"labels_file": str(labels), "source": {"type": "folder", "path": "x"}}
    with pytest.raises(ConfigError, match=r"datasets\.zoo\.labels_file.*duplicated class name 'a'"):
        get_dataset("zoo", {"zoo": decl})


def test_user_dataset_may_not_shadow_a_builtin():
    with pytest.raises(ConfigError, match=r"datasets\.cifar-10.*built-in"):
        get_dataset("cifar-10", {"cifar-10": GOOD})


def test_user_dataset_name_must_be_path_safe():
    with pytest.raises(ConfigError, match="dataset name"):
        get_dataset("../zoo", {"../zoo": GOOD})


def test_unknown_name_lists_user_datasets_too():
    with pytest.raises(ConfigError, match="zoo"):
        get_dataset("zebra", _user())
