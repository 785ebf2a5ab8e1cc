"""The genbench command: datasets, ls, pool build, targets and rebuild."""

import json

import numpy as np
import torch
from PIL import Image

from genbench.core.artifacts import ArtifactWriter, make_recipe
from genbench.data.imageset import write_index
from genbench.models.tiny import build_tiny_open_clip
from genbench.retrieval.pool import open_pool
from genbench.workflow.cli import main


def test_datasets_lists_the_registry(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "22 datasets, 2548 classes" in out
    assert "imagenet-1k" in out and "1000 classes" in out


def test_ls_filters_by_stage_and_dataset(tmp_path, capsys):
    for stage, scope in (("features", "digits"), ("features", "cifar-10"), ("prepare", "digits")):
        recipe = make_recipe(stage, 1, {"scope": scope}, {})
        from genbench.core.artifacts import recipe_key, short_key

        with ArtifactWriter(tmp_path / stage / scope / short_key(recipe_key(recipe)), recipe) as w:
            with open(w.path("x.txt"), "w") as f:
                f.write(scope)
    assert main(["ls", str(tmp_path), "--stage", "features", "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert "1 artifact(s)" in out and out.startswith("features") and "digits" in out


def test_verify_of_an_empty_folder_says_so(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "no artifacts" in capsys.readouterr().err


def test_pool_build_from_an_index(tmp_path):
    torch.set_num_threads(1)
    spec = build_tiny_open_clip(tmp_path / "clip")
    records = []
    for i in range(6):
        path = tmp_path / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(path)
        records.append({"id": f"img{i}", "path": f"images/{i}.png", "label": i % 2})
    write_index(tmp_path / "index.jsonl", records)
    assert (
        main(
            [
                "pool",
                "build",
                "--index",
                str(tmp_path / "index.jsonl"),
                "--captions",
                "a photo of class {}",
                "--encoder",
                json.dumps(spec),
                "--out",
                str(tmp_path / "pool"),
                "--shard-size",
                "4",
            ]
        )
        == 0
    )
    pool = open_pool(tmp_path / "pool")
    assert sum(pool.num_rows(s) for s in pool.shards) == 6 and len(pool.shards) == 2
    captions = [row["caption"] for s in pool.shards for row in pool.metadata(s)]
    assert captions.count("a photo of class 1") == 3


def test_rebuild_dry_run_forces_only_the_named_stage(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["rebuild", "--stage", "zeroshot_metric", "--dataset", "digits", "--dry-run"])
    assert code == 0
    targets = capsys.readouterr().err
    assert "--forcerun" in targets and "zeroshot_metric/digits/" in targets
