"""Content addressing made true, in process: input fingerprints, keys, input checks, part
manifests, leftovers, the run lock and gc. (The workflow-level cases are in test_staleness.py.)"""

import copy
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from workflow_helpers import REPO, write_digits_folder

import genbench.core.artifacts as artifacts
from genbench.core.artifacts import (
    ArtifactWriter,
    adopt_parts,
    check_artifact,
    make_recipe,
    recipe_key,
    remove_stale_staging,
    short_key,
    staging_leftovers,
    verify_tree,
    write_part_manifest,
)
from genbench.core.config import DEFAULT_CONFIG, load_config
from genbench.core.errors import GenBenchError
from genbench.core.fingerprint import StatCache, fingerprint_path, hub_revision
from genbench.core.housekeeping import acquire_run_lock, collect_garbage, release_run_lock
from genbench.data.fewshot import check_shortfall
from genbench.evaluation.evaluate import shots_actual
from genbench.plan.build import STAGE_VERSIONS, build_plan
from genbench.plan.validate import validate_config


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------ fingerprints


def test_tree_fingerprint_follows_content_and_rehashes_only_changed_files(tmp_path):
    root = tmp_path / "data"
    for i in range(5):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"c{i % 2}" / f"{i}.bin").write_bytes(bytes([i]) * 100)
    cache = StatCache(tmp_path / "cache.sqlite")
    first = fingerprint_path(root, cache)
    assert first["files"] == 5 and cache.hashed_files == 5

    again = StatCache(tmp_path / "cache.sqlite")  # a new process: the cache is on disk
    assert fingerprint_path(root, again) == first and again.hashed_files == 0

    os.utime(root / "c0" / "0.bin", ns=(1, 1))  # touched: re-read, same content, same digest
    assert fingerprint_path(root, again)["sha256"] == first["sha256"] and again.hashed_files == 1

    (root / "c1" / "1.bin").unlink()
    deleted = fingerprint_path(root, again)["sha256"]
    (root / "c1" / "new.bin").write_bytes(b"x")
    added = fingerprint_path(root, again)["sha256"]
    (root / "c0" / "2.bin").write_bytes(b"changed")
    changed = fingerprint_path(root, again)["sha256"]
    assert len({first["sha256"], deleted, added, changed}) == 4
    (root / ".DS_Store").write_bytes(b"finder")  # hidden files are not data
    assert fingerprint_path(root, again)["sha256"] == changed


def test_a_same_size_overwrite_with_its_mtime_set_back_is_hashed_again(tmp_path):
    """dd conv=notrunc + touch -r: size, inode and mtime as before; the ctime is new."""
    root = tmp_path / "data"
    root.mkdir()
    image = root / "0.png"
    image.write_bytes(b"a" * 64)
    cache = StatCache(tmp_path / "cache.sqlite")
    first = fingerprint_path(root, cache)["sha256"]
    before = image.stat()
    with open(image, "r+b") as handle:  # in place: the same inode, the same length
        handle.write(b"b" * 64)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = image.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (before.st_size, before.st_ino, before.st_mtime_ns)
    again = StatCache(tmp_path / "cache.sqlite")
    assert fingerprint_path(root, again)["sha256"] != first and again.hashed_files == 1
    assert again.digest(image) == again.digest(root / "0.png") and again.hashed_files == 1


def test_a_stat_cache_of_the_old_layout_is_replaced_with_a_message(tmp_path, capsys):
    import sqlite3

    path = tmp_path / "cache.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ino INTEGER, sha256 TEXT)")
    old.execute("INSERT INTO files VALUES ('/x', 1, 1, 1, 'abc')")
    old.commit()
    old.close()
    (tmp_path / "f").write_bytes(b"data")
    cache = StatCache(path)
    assert cache.digest(tmp_path / "f") and cache.hashed_files == 1
    assert "older layout" in capsys.readouterr().out
    assert StatCache(path).entries_below(tmp_path)  # the new layout is kept from then on
    assert "older layout" not in capsys.readouterr().out


def test_absent_path_fingerprint_is_cheap_and_explicit(tmp_path):
    assert fingerprint_path(tmp_path / "nothing", StatCache(None)) == {"kind": "absent"}


def test_hub_id_resolves_to_the_cached_snapshot_revision(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert hub_revision("org/model") is None
    ref = tmp_path / "models--org--model" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("abc123\n")
    assert hub_revision("org/model") == "abc123"


# ------------------------------------------------------------------ keys from the plan


def _config(tmp_path, **changes) -> dict:
    config = load_config(DEFAULT_CONFIG)
    config["results_dir"] = str(tmp_path / "results")
    config["strategies"] = ["simple_template", "descriptions"]
    config["sources"] = ["generated", "original"]
    config.update(changes)
    validate_config(config)
    return config


def _keys(config) -> dict:
    plan = build_plan(config)
    return {
        (
            n.stage,
            n.scope,
            n.params.get("split"),
            json.dumps(n.params.get("labels"), sort_keys=True),
            n.params.get("strategy"),
        ): n.key
        for n in plan.nodes.values()
    }


def _changed_stages(before: dict, after: dict) -> set[str]:
    return {ident[0] for ident in before if before[ident] != after.get(ident)}


def test_reordered_config_gives_identical_keys(tmp_path):
    config = _config(tmp_path)

    def reverse(obj):
        return {k: reverse(v) for k, v in reversed(list(obj.items()))} if isinstance(obj, dict) else obj

    assert _keys(reverse(copy.deepcopy(config))) == _keys(config)


def _folder_dataset_config(tmp_path, root):
    classes = write_digits_folder(root, per_class=12, num_classes=3)
    user = {
        "mine": {
            "classes": classes,
            "templates": ["a photo of the number {}."],
            "metric": "accuracy",
            "source": {"type": "folder", "path": str(root)},
        }
    }
    return _config(tmp_path, datasets=["digits", "mine"], user_datasets=user)


def test_deleting_images_makes_exactly_the_dependent_artifacts_stale(tmp_path):
    root = tmp_path / "my_images"
    config = _folder_dataset_config(tmp_path, root)
    before = _keys(config)
    for path in sorted((root / "digit 1").iterdir())[:5]:
        path.unlink()
    after = _keys(config)
    changed = {ident for ident in before if before[ident] != after[ident]}
    assert changed and all(scope in ("mine", "all") for _, scope, *_ in changed)
    stages = {stage for stage, *_ in changed}
    assert stages >= {"prepare", "fewshot", "features", "pack_original", "elevater", "aggregate"}
    # what does not read the images keeps its key
    assert not stages & {"configure", "text_classifier", "prompt_plan", "sample_images", "build_models"}


def test_moving_the_data_folder_keeps_the_keys(tmp_path):
    root = tmp_path / "my_images"
    config = _folder_dataset_config(tmp_path, root)
    before = _keys(config)
    moved = tmp_path / "moved"
    root.rename(moved)
    config["user_datasets"]["mine"]["source"]["path"] = str(moved)
    assert _keys(config) == before


def test_descriptions_file_is_keyed_by_content_not_path(tmp_path):
    file = tmp_path / "d.json"
    file.write_text((REPO / "demo/descriptions.json").read_text())
    config = _config(tmp_path, strategy_params={"descriptions": {"file": str(file)}})
    before = _keys(config)
    copy_ = tmp_path / "elsewhere.json"
    copy_.write_text(file.read_text())
    config["strategy_params"]["descriptions"]["file"] = str(copy_)
    assert _keys(config) == before
    data = json.loads(copy_.read_text())
    first = next(iter(data))
    data[first] = ["a different sentence about it"]
    copy_.write_text(json.dumps(data))
    assert "prompt_plan" in _changed_stages(before, _keys(config))


def test_local_model_folder_is_keyed_by_content(tmp_path):
    model = tmp_path / "my_t5"
    model.mkdir()
    (model / "config.json").write_text('{"d_model": 8}')
    config = _config(
        tmp_path,
        strategies=["model_enc"],
        models={
            "generator": {"model": "tiny"},
            "encoder": {"type": "open_clip", "model": "tiny"},
            "text2text": {"model": str(model)},
        },
    )
    before = _keys(config)
    (model / "config.json").write_text('{"d_model": 16}')
    assert "prompt_plan" in _changed_stages(before, _keys(config))


def test_stage_version_bump_changes_that_stage_and_downstream_only(tmp_path, monkeypatch):
    config = _config(tmp_path)
    before = _keys(config)
    monkeypatch.setitem(STAGE_VERSIONS, "pack_generated", STAGE_VERSIONS["pack_generated"] + 1)
    changed = _changed_stages(before, _keys(config))
    assert changed == {
        "pack_generated",
        "elevater",
        "zeroshot_metric",
        "distribution_metrics",
        "proxy_distance",
        "aggregate",
    }


def test_batch_sizes_and_workers_are_runtime_not_keyed(tmp_path):
    config = _config(tmp_path)
    before = _keys(config)
    config["generation"]["batch_size"] = 3
    config["features"]["batch_size"] = 7
    config["features"]["num_workers"] = 1
    assert _keys(config) == before
    plan = build_plan(config)
    assert {n.runtime["batch_size"] for n in plan.by_stage("features")} == {7}
    config["features"]["device"] = "cuda"  # changes the bytes: keyed
    assert "features" in _changed_stages(before, _keys(config))


def test_workflow_scripts_never_read_the_snakemake_config():
    hits = [p.name for p in (REPO / "workflow_scripts").glob("*.py") if "snakemake.config" in p.read_text()]
    assert hits == []


# ------------------------------------------------------------------ checking what is read

RECIPE = make_recipe("features", 1, {"split": "test"}, {})
KEY = recipe_key(RECIPE)


def _artifact(tmp_path, cache=None):
    out = tmp_path / "features" / "digits" / short_key(KEY)
    with ArtifactWriter(out, RECIPE, cache=cache) as w:
        np.save(w.path("labels.npy"), np.arange(10))
        np.save(w.path("feats.npy"), np.ones((10, 4), np.float32))
    return out


def test_a_flipped_byte_stops_the_reader_naming_file_and_key(tmp_path):
    out = _artifact(tmp_path)
    data = bytearray((out / "labels.npy").read_bytes())
    data[-1] ^= 1
    (out / "labels.npy").write_bytes(bytes(data))
    with pytest.raises(GenBenchError, match=rf"{short_key(KEY)}\] labels.npy: sha256 differs") as err:
        check_artifact(out, KEY)
    assert "delete" in str(err.value)


def test_an_edited_or_invalid_manifest_stops_the_reader(tmp_path):
    out = _artifact(tmp_path)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    manifest["recipe"]["params"]["split"] = "train"
    (out / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(GenBenchError, match="recipe does not hash to its key"):
        check_artifact(out, KEY)
    (out / "MANIFEST.json").write_text("{not json")
    with pytest.raises(GenBenchError, match="unreadable"):
        check_artifact(out, KEY)


def test_reader_rejects_an_artifact_of_another_key(tmp_path):
    out = _artifact(tmp_path)
    with pytest.raises(GenBenchError, match="key differs"):
        check_artifact(out, "f" * 64)


def test_checks_use_the_stat_cache_and_do_not_reread_unchanged_files(tmp_path, monkeypatch):
    cache = StatCache(tmp_path / "cache.sqlite")
    out = _artifact(tmp_path, cache)  # the writer remembers what it wrote
    reads = []
    real = artifacts.file_sha256
    monkeypatch.setattr(artifacts, "file_sha256", lambda p: reads.append(p) or real(p))
    check_artifact(out, KEY, cache)
    assert reads == []
    os.utime(out / "feats.npy", ns=(5, 5))  # changed stat: read once, then remembered again
    check_artifact(out, KEY, cache)
    check_artifact(out, KEY, cache)
    assert [os.path.basename(p) for p in reads] == ["feats.npy"]


def test_verify_tree_reports_an_unreadable_manifest_and_goes_on(tmp_path):
    good = _artifact(tmp_path)
    bad = tmp_path / "features" / "digits" / "0123456789ab"
    bad.mkdir()
    (bad / "MANIFEST.json").write_text("{")
    checked, problems = verify_tree(tmp_path)
    assert checked == 2
    assert [p.artifact for p in problems] == [str(bad)] and "unreadable" in problems[0].reason
    assert good.exists()


# ------------------------------------------------------------------ part manifests


def _shard_artifact(tmp_path):
    out = tmp_path / "sample_images" / "digits" / short_key(KEY)
    shard = out / "shards" / "shard-00000.tar"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"images" * 100)
    write_part_manifest(shard, KEY)
    return out, shard


def test_gather_accepts_a_shard_its_job_recorded(tmp_path):
    out, shard = _shard_artifact(tmp_path)
    with ArtifactWriter(out, RECIPE, adopt=["shards"]) as w:
        adopt_parts(w, [shard], KEY)
    files = json.loads((out / "MANIFEST.json").read_text())["files"]
    assert set(files) == {"shards/shard-00000.tar", "shards/shard-00000.json"}


def test_gather_refuses_a_shard_edited_by_hand(tmp_path):
    out, shard = _shard_artifact(tmp_path)
    shard.write_bytes(b"blacks" * 100)  # same size, other pixels
    with pytest.raises(GenBenchError, match="shard-00000.tar: sha256 differs from shard-00000.json"):
        with ArtifactWriter(out, RECIPE, adopt=["shards"]) as w:
            adopt_parts(w, [shard], KEY)
    assert not (out / "MANIFEST.json").exists()


def test_gather_refuses_a_shard_without_or_with_a_foreign_part_manifest(tmp_path):
    out, shard = _shard_artifact(tmp_path)
    stray = out / "shards" / "shard-00001.tar"
    stray.write_bytes(b"x")
    with pytest.raises(GenBenchError, match="shard-00001.tar: its part manifest"):
        with ArtifactWriter(out, RECIPE, adopt=["shards"]) as w:
            adopt_parts(w, [shard, stray], KEY)
    write_part_manifest(stray, "e" * 64)
    with pytest.raises(GenBenchError, match="names another artifact"):
        with ArtifactWriter(out, RECIPE, adopt=["shards"]) as w:
            adopt_parts(w, [shard, stray], KEY)
    with pytest.raises(GenBenchError, match="shard-00001.(json|tar) was not written by this artifact.s jobs"):
        with ArtifactWriter(out, RECIPE, adopt=["shards"]) as w:
            adopt_parts(w, [shard], KEY)  # an unlisted file in the adopted folder


# ------------------------------------------------------------------ leftovers, lock, gc


def test_dead_jobs_staging_is_removed_and_live_or_foreign_kept(tmp_path):
    scope = tmp_path / "prepare" / "digits"
    host = socket.gethostname()
    dead = scope / f".staging-aad4978b2115-{host}-{dead_pid()}-0123abcd"
    live = scope / f".staging-aad4978b2115-{host}-{os.getpid()}-0123abcd"
    foreign = scope / f".staging-aad4978b2115-other-node-{dead_pid()}-0123abcd"
    for folder in (dead, live, foreign):
        folder.mkdir(parents=True)
        (folder / "images.zip").write_bytes(b"z" * 1000)
    assert {(p.name, d) for p, d in staging_leftovers(tmp_path)} == {
        (dead.name, True),
        (live.name, False),
        (foreign.name, False),
    }
    assert remove_stale_staging(tmp_path) == [(dead, 1000)]
    assert not dead.exists() and live.exists() and foreign.exists()


def test_second_run_on_the_same_results_is_refused_naming_the_first(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from genbench.core.housekeeping import acquire_run_lock
        acquire_run_lock({str(tmp_path)!r})
        print("held", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            GenBenchError,
            match=rf"in use by another GenBench run .*pid {holder.pid}, "
            rf"working directory {tmp_path}",
        ):
            acquire_run_lock(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    acquire_run_lock(tmp_path)  # the dead holder's lock went with it (no stale lock)
    release_run_lock(tmp_path)


def test_gc_removes_only_what_the_plan_no_longer_references(tmp_path):
    config = _config(tmp_path)
    plan = build_plan(config)
    kept = plan.by_stage("fewshot")[0]
    os.makedirs(kept.dir)
    (tmp_path / "results" / "fewshot" / "digits" / "0123456789ab").mkdir()
    (tmp_path / "results" / "fewshot" / "digits" / "0123456789ab" / "x.jsonl").write_text("old")
    (tmp_path / "results" / "fewshot" / "digits" / "notes-of-mine").mkdir()  # not an artifact
    assert collect_garbage(plan, STAGE_VERSIONS, dry_run=True, log=lambda m: None) == (1, 3)
    assert (tmp_path / "results" / "fewshot" / "digits" / "0123456789ab").exists()
    assert collect_garbage(plan, STAGE_VERSIONS, log=lambda m: None) == (1, 3)
    assert not (tmp_path / "results" / "fewshot" / "digits" / "0123456789ab").exists()
    assert os.path.isdir(kept.dir) and (tmp_path / "results" / "fewshot" / "digits" / "notes-of-mine").exists()


def test_gc_with_several_configs_keeps_what_any_of_them_references(tmp_path):
    from genbench.workflow.cli import gc_configs

    first = _config(tmp_path)
    second = copy.deepcopy(first)
    second["fewshot"] = {**second["fewshot"], "seeds": [7]}  # a study on the same results folder
    plans = [build_plan(first), build_plan(second)]
    ours, theirs = plans[0].by_stage("fewshot")[0], plans[1].by_stage("fewshot")[0]
    assert ours.dir != theirs.dir
    for node in (ours, theirs):
        os.makedirs(node.dir)
        with open(os.path.join(node.dir, "x.jsonl"), "w") as f:
            f.write("made")
    assert collect_garbage(plans, STAGE_VERSIONS, log=lambda m: None) == (0, 0)
    assert os.path.isdir(ours.dir) and os.path.isdir(theirs.dir)
    assert collect_garbage(plans[0], STAGE_VERSIONS, log=lambda m: None) == (1, 4)  # one config alone
    assert os.path.isdir(ours.dir) and not os.path.isdir(theirs.dir)
    assert gc_configs(["a.yaml", "b.yaml+c.yaml"]) == [["a.yaml"], ["b.yaml", "c.yaml"]]
    assert gc_configs([]) == [[]]


def test_gc_also_removes_earlier_runs_input_fingerprints(tmp_path):
    from genbench.core.housekeeping import remove_run_fingerprints
    from genbench.plan.build import save_fingerprints

    plan = build_plan(_config(tmp_path))
    saved = save_fingerprints(plan)
    (tmp_path / "results" / ".genbench" / "stat-cache.sqlite").write_bytes(b"kept")
    assert remove_run_fingerprints(plan.results_dir, log=lambda m: None) > 0
    assert not os.path.exists(saved) and (tmp_path / "results" / ".genbench" / "stat-cache.sqlite").exists()


# ------------------------------------------------------------------ shot shortfall


def test_shortfall_warns_or_stops_naming_the_classes():
    messages = []
    check_shortfall({1: 3}, 5, ["zero", "one"], "warn", "fewshot digits k=5", log=messages.append)
    assert "'one' has 3" in messages[0]
    with pytest.raises(GenBenchError, match="'one' has 3"):
        check_shortfall({1: 3}, 5, ["zero", "one"], "error", "fewshot digits k=5")


def test_shots_actual_is_the_smallest_class_count():
    assert shots_actual(np.array([0, 0, 1, 1, 1, 2]), 3) == 1
    assert shots_actual(np.array([0, 0, 1]), 3) == 0
    assert shots_actual(np.array([[1, 1], [1, 0]]), 2) == 1


def test_cli_names_a_broken_or_missing_configfile_in_one_line(tmp_path, capsys):
    from genbench.workflow.cli import main

    broken = tmp_path / "broken.yaml"
    broken.write_text("fewshot:\n  shots: [5\nprobe: {}\n")
    for args in (
        ["run", "--configfile", str(broken), "--", "-n"],
        ["gc", "--configfile", str(broken)],
        ["run", "--configfile", str(tmp_path / "missing.yaml")],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("genbench: error: config file "), err
        assert ("broken.yaml, line " in err[0]) or ("missing.yaml does not exist" in err[0])


def test_a_full_disk_is_one_line_naming_the_artifact_and_leaves_nothing(tmp_path):
    import errno

    out = tmp_path / "features" / "digits" / "train-0123456789ab"
    with pytest.raises(GenBenchError) as err:
        with ArtifactWriter(out, make_recipe("features", 2, {"split": "train"}, {})) as writer:
            with open(writer.path("features.npy"), "wb") as handle:
                handle.write(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
    message = str(err.value)
    assert message.startswith(f"no space left for artifact {out}") and "\\n" not in message
    assert not list(out.parent.glob(".staging-*")) and not (out / "MANIFEST.json").exists()
