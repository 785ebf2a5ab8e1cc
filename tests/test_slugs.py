"""class_slugs: path-safe, distinct, bounded and stable slugs for hostile class names."""

import json
import re
import subprocess
import sys

import pytest

from genbench.core.errors import ConfigError
from genbench.data.datasets import class_slugs

HOSTILE = [
    "a/b",
    "a_b",
    "../etc",
    "..",
    ".hidden",
    "Cat",
    "cat",
    "café",
    "cafe",
    "猫",
    "犬",
    "",
    "   ",
    "x" * 300,
    "semi;colon",
    'quote"s',
    "new\nline",
]
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def test_hostile_names_give_distinct_safe_bounded_slugs():
    slugs = class_slugs(HOSTILE)
    assert len(slugs) == len(HOSTILE)
    assert len(set(slugs)) == len(slugs)
    for slug in slugs:
        assert SLUG_RE.match(slug), slug
        assert len(slug) <= 64
        assert ".." not in slug and "/" not in slug


def test_plain_names_stay_readable():
    assert class_slugs(["aquarium fish", "F-16A/B", "snoopy (cartoon beagle)"]) == [
        "aquarium_fish",
        "f-16a_b",
        "snoopy_cartoon_beagle",
    ]


def test_collisions_get_hash_suffixes_and_empties_get_class_prefix():
    slugs = dict(zip(HOSTILE, class_slugs(HOSTILE)))
    assert re.fullmatch(r"cat-[0-9a-f]{8}", slugs["Cat"]) and re.fullmatch(r"cat-[0-9a-f]{8}", slugs["cat"])
    assert slugs["café"].startswith("cafe-") and slugs["cafe"].startswith("cafe-")
    assert slugs["a/b"].startswith("a_b-") and slugs["a_b"].startswith("a_b-")
    for name in ["猫", "犬", "", "   ", ".."]:
        assert re.fullmatch(r"class-[0-9a-f]{8}", slugs[name]), name
    assert slugs["../etc"] == "etc" and slugs[".hidden"] == "hidden"
    assert slugs["x" * 300].startswith("xxx") and len(slugs["x" * 300]) == 64


def test_stable_across_calls_and_independent_of_list_order():
    first = dict(zip(HOSTILE, class_slugs(HOSTILE)))
    assert class_slugs(HOSTILE) == [first[n] for n in HOSTILE]
    reordered = list(reversed(HOSTILE))
    assert class_slugs(reordered) == [first[n] for n in reordered]


def test_stable_across_processes():
    code = (
        "import json, sys; from genbench.data.datasets import class_slugs; "
        "print(json.dumps(class_slugs(json.loads(sys.stdin.read()))))"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(HOSTILE),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=str(_repo_root()),
        ).stdout
        for seed in ("1", "2")
    ]
    assert json.loads(outputs[0]) == json.loads(outputs[1]) == class_slugs(HOSTILE)


def test_hashed_slug_cannot_collide_with_a_literal_name():
    slugs = class_slugs(["Cat", "cat"])
    tricky = ["Cat", "cat", slugs[0]]
    result = class_slugs(tricky)
    assert len(set(result)) == 3
    assert all(SLUG_RE.match(s) and len(s) <= 64 for s in result)


def test_duplicate_names_are_rejected():
    with pytest.raises(ConfigError, match="duplicate class name 'dog'"):
        class_slugs(["dog", "cat", "dog"])


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent
