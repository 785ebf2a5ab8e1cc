"""Content addressing: stable keys, manifests, atomic writes, verify."""

import json
import subprocess
import sys

import pytest

from genbench.core.artifacts import (
    MANIFEST,
    ArtifactWriter,
    adopt_parts,
    make_recipe,
    read_manifest,
    recipe_key,
    short_key,
    verify_artifact,
    verify_tree,
    write_part_manifest,
)
from genbench.core.errors import GenBenchError
from genbench.workflow.cli import main as cli_main

RECIPE = make_recipe("features", 1, {"split": "test", "encoder": {"tiny": True}}, {"images": "ab" * 32})


def test_key_is_stable_across_processes():
    code = (
        "from genbench.core.artifacts import make_recipe, recipe_key;"
        "print(recipe_key(make_recipe('features', 1, {'encoder': {'tiny': True}, 'split': 'test'},"
        " {'images': 'ab' * 32})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == recipe_key(RECIPE)


def test_key_ignores_dict_order_but_not_values():
    reordered = make_recipe("features", 1, {"encoder": {"tiny": True}, "split": "test"}, {"images": "ab" * 32})
    assert recipe_key(reordered) == recipe_key(RECIPE)
    variants = [
        make_recipe("features", 2, RECIPE["params"], RECIPE["inputs"]),
        make_recipe("prepare", 1, RECIPE["params"], RECIPE["inputs"]),
        make_recipe("features", 1, {**RECIPE["params"], "split": "train"}, RECIPE["inputs"]),
        make_recipe("features", 1, RECIPE["params"], {"images": "cd" * 32}),
        make_recipe("features", 1, RECIPE["params"], {"pictures": "ab" * 32}),
    ]
    keys = {recipe_key(r) for r in variants} | {recipe_key(RECIPE)}
    assert len(keys) == len(variants) + 1


def test_non_finite_params_are_rejected():
    with pytest.raises(GenBenchError, match="nan"):
        recipe_key(make_recipe("x", 1, {"lr": float("nan")}, {}))


def _write(tmp_path, recipe=RECIPE):
    out = tmp_path / "features" / "digits" / short_key(recipe_key(recipe))
    with ArtifactWriter(out, recipe) as w:
        with open(w.path("a.txt"), "w") as f:
            f.write("hello")
        with open(w.path("sub/b.bin"), "wb") as f:
            f.write(bytes(range(10)))
        w.summary["count"] = 2
    return out


def test_manifest_lists_every_file_and_verify_passes(tmp_path):
    out = _write(tmp_path)
    manifest = read_manifest(out)
    assert set(manifest["files"]) == {"a.txt", "sub/b.bin"}
    assert manifest["recipe"] == RECIPE and manifest["key"] == recipe_key(RECIPE)
    assert manifest["summary"] == {"count": 2}
    assert verify_artifact(out) == []


def test_verify_names_a_flipped_byte(tmp_path, capsys):
    out = _write(tmp_path)
    target = out / "sub" / "b.bin"
    data = bytearray(target.read_bytes())
    data[3] ^= 0x01
    target.write_bytes(bytes(data))
    problems = verify_artifact(out)
    assert [p.file for p in problems] == ["sub/b.bin"]
    assert cli_main(["verify", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "sub/b.bin" in printed and short_key(recipe_key(RECIPE)) in printed


def test_verify_reports_missing_and_unlisted_files(tmp_path):
    out = _write(tmp_path)
    (out / "a.txt").unlink()
    (out / "extra.txt").write_text("x")
    reasons = {p.file: p.reason for p in verify_artifact(out)}
    assert reasons == {"a.txt": "missing", "extra.txt": "not listed in the manifest"}


def test_interrupted_write_leaves_no_manifest(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(RuntimeError):
        with ArtifactWriter(out, RECIPE) as w:
            with open(w.path("a.txt"), "w") as f:
                f.write("partial")
            raise RuntimeError("killed")
    assert not (out / MANIFEST).exists()
    assert list(out.iterdir()) == []


def test_leftovers_are_cleared_but_adopted_folders_kept(tmp_path):
    out = tmp_path / "art"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "shard-00000.tar").write_bytes(b"tar")
    write_part_manifest(out / "shards" / "shard-00000.tar", recipe_key(RECIPE))
    (out / "stale.txt").write_text("from a killed run")
    with ArtifactWriter(out, RECIPE, adopt=["shards"]) as w:
        adopt_parts(w, [out / "shards" / "shard-00000.tar"], recipe_key(RECIPE))
        with open(w.path("images.jsonl"), "w") as f:
            f.write("{}\n")
    assert set(read_manifest(out)["files"]) == {"images.jsonl", "shards/shard-00000.tar", "shards/shard-00000.json"}
    assert not (out / "stale.txt").exists()
    assert [p.reason for p in verify_artifact(out)] == ["directory name does not end with the key"]  # "art"


def test_file_names_cannot_escape(tmp_path):
    with ArtifactWriter(tmp_path / "art", RECIPE) as w:
        with pytest.raises(GenBenchError, match="escapes"):
            w.path("../outside.txt")


def test_verify_tree_counts_artifacts(tmp_path):
    _write(tmp_path)
    other = make_recipe("features", 1, {"split": "train"}, {})
    _write(tmp_path, other)
    checked, problems = verify_tree(tmp_path)
    # the first one's recipe names an upstream 'images' artifact that the folder does not hold
    assert checked == 2 and [p.reason for p in problems] == [
        f"upstream 'images' [abababababab] has no artifact under {tmp_path}"
    ]


def test_verify_detects_tampered_recipe(tmp_path):
    out = _write(tmp_path)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["recipe"]["params"]["split"] = "train"
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert any("recipe does not hash" in p.reason for p in verify_artifact(out))
