"""Only stale pieces rerun, and nothing unverified is used: the careful user's cases, through the
real workflow (job counts from Snakemake's own dry-run plan, digests before and after)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
from collections import Counter
from io import BytesIO

import pandas as pd
import pytest
import yaml
from PIL import Image
from workflow_helpers import REPO, planned_jobs, quick_config, run_snakemake, write_digits_folder

from genbench.core.artifacts import read_manifest, verify_tree
from genbench.workflow.job_kinds import SCRIPT_KINDS

pytestmark = pytest.mark.workflow
MODEL_RULES = {script for script, kind in SCRIPT_KINDS.items() if kind.name == "model"}


def _config(workdir, data, **overrides):
    user = {
        "mine": {
            "classes": [f"digit {i}" for i in range(3)],
            "templates": ["a photo of the number {}."],
            "metric": "accuracy",
            "source": {"type": "folder", "path": str(data)},
        }
    }
    settings = dict(
        datasets=["mine"],
        user_datasets=user,
        sources=["generated", "original"],
        strategies=["simple_template"],
        strategy_params={},
    )
    settings.update(overrides)
    return quick_config(workdir, **settings)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One finished small run: a 3-class image-folder dataset, generated + original sources."""
    workdir = tmp_path_factory.mktemp("stale")
    write_digits_folder(workdir / "data", per_class=12, num_classes=3)
    config = _config(workdir, workdir / "data")
    run_snakemake(workdir, config)
    return workdir, config


def _copy_run(base, tmp_path):
    """A copy of the finished run (results and data), as `cp -r` makes it: new times, new inodes."""
    workdir, _ = base
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, copy_function=shutil.copy, ignore=shutil.ignore_patterns(".snakemake"))
    return copy, _config(copy, copy / "data")


def _verify(results) -> subprocess.CompletedProcess:
    """``genbench verify RESULTS`` as a user runs it."""
    command = [sys.executable, "-m", "genbench.workflow.cli", "verify", str(results)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO)


def _probe_change(workdir, data):
    """The same config with another probe learning rate: only elevater and the tables are stale."""
    return _config(workdir, data, probe={"lrs": [0.01], "epochs_search": 3, "epochs_final": 5})


def test_a_rerun_plans_nothing(base):
    workdir, config = base
    assert planned_jobs(workdir, config) == Counter()


def test_reordered_yaml_keys_plan_nothing(base):
    workdir, config = base

    def reverse(obj):
        return {k: reverse(v) for k, v in reversed(list(obj.items()))} if isinstance(obj, dict) else obj

    reordered = workdir / "reordered.yaml"
    reordered.write_text(yaml.safe_dump(reverse(yaml.safe_load(config.read_text())), sort_keys=False))
    assert reordered.read_text() != config.read_text()
    assert planned_jobs(workdir, reordered) == Counter()


def test_touching_every_file_of_the_checkout_plans_nothing(base):
    workdir, config = base
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv")]
        for name in files:
            os.utime(os.path.join(folder, name))
    assert planned_jobs(workdir, config) == Counter()


def test_results_copied_into_a_fresh_folder_plan_nothing(base, tmp_path):
    copy, config = _copy_run(base, tmp_path)
    assert planned_jobs(copy, config) == Counter()  # data moved too: same content, same keys


def test_deleted_images_make_exactly_their_dependents_stale(base, tmp_path):
    copy, config = _copy_run(base, tmp_path)
    for path in sorted((copy / "data" / "digit 1").iterdir())[:5]:
        path.unlink()
    jobs = planned_jobs(copy, config)
    assert jobs["prepare"] == 1 and jobs["fewshot"] == 1 and jobs["elevater"] == 2
    for fresh in ("configure", "text_classifier", "prompt_plan", "sample_shard", "sample_images", "build_models"):
        assert jobs[fresh] == 0, fresh
    # the generated set's own features stay; the train and test splits' are recomputed
    assert jobs["features"] == 2


def _blacken_shard(shard):
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:
        for member, data in members:
            if member.name.endswith(".png"):
                buffer = BytesIO()
                Image.new("RGB", Image.open(BytesIO(data)).size).save(buffer, "PNG")
                data, member.size = buffer.getvalue(), len(buffer.getvalue())
            tar.addfile(member, BytesIO(data))


def test_a_shard_edited_by_hand_is_never_adopted_nor_used(base, tmp_path):
    copy, config = _copy_run(base, tmp_path)
    sampled = next((copy / "results" / "sample_images" / "mine").iterdir())
    manifest_before = (sampled / "MANIFEST.json").read_bytes()
    shard = sampled / "shards" / "shard-00000.tar"
    _blacken_shard(shard)
    # even a run with nothing to do checks first: the dry run names the shard, rebuilds nothing
    for run in (("--dry-run",), ()):
        proc = run_snakemake(copy, config if run else _probe_change(copy, copy / "data"), *run, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert (
            f"{sampled.name[-12:]}] shards/shard-00000.tar: size differs from the manifest" in output
            or f"{sampled.name[-12:]}] shards/shard-00000.tar: sha256 differs from the manifest" in output
        ), output[-3000:]
    assert (sampled / "MANIFEST.json").read_bytes() == manifest_before
    _, problems = verify_tree(copy / "results")
    assert [p.file for p in problems] == ["shards/shard-00000.tar"]


def test_a_flipped_byte_in_test_labels_stops_the_run_naming_file_and_key(base, tmp_path):
    copy, config = _copy_run(base, tmp_path)
    test_features = [
        p
        for p in (copy / "results" / "features" / "mine").iterdir()
        if read_manifest(p)["recipe"]["params"]["split"] == "test"
    ][0]
    labels = test_features / "labels.npy"
    data = bytearray(labels.read_bytes())
    data[-1] ^= 1
    labels.write_bytes(bytes(data))
    proc = run_snakemake(copy, _probe_change(copy, copy / "data"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{test_features.name[-12:]}] labels.npy: sha256 differs from the manifest" in output, output[-3000:]
    assert not list((copy / "results" / "elevater" / "mine").glob("*/metrics.json"))[3:]  # no new probe


def test_a_dead_jobs_staging_folder_is_removed_and_reported(base, tmp_path):
    copy, config = _copy_run(base, tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    staging = (
        copy / "results" / "prepare" / "mine" / f".staging-0123456789ab-{socket.gethostname()}-{dead.pid}-0123abcd"
    )
    staging.mkdir()
    (staging / "images.zip").write_bytes(b"z" * 14000)
    listed = _verify(copy / "results")
    assert f"LEFTOVER {staging} (left by a job that died" in listed.stdout
    assert planned_jobs(copy, config) == Counter() and staging.exists()  # a dry run removes nothing
    proc = run_snakemake(copy, config)  # a run with no job to do still cleans up
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert f"removed results/prepare/mine/{staging.name}" in proc.stdout + proc.stderr
    assert not staging.exists()


def test_a_deleted_mid_dag_artifact_is_rebuilt_alone_and_byte_identical(base, tmp_path):
    copy, config = _copy_run(base, tmp_path)
    generated = [
        p
        for p in (copy / "results" / "features" / "mine").iterdir()
        if read_manifest(p)["recipe"]["params"]["split"] == "images"
    ][0]
    before = read_manifest(generated)["files"]
    shutil.rmtree(generated)
    listed = _verify(copy / "results")
    assert listed.returncode == 1 and f"[{generated.name[-12:]}] has no artifact under" in listed.stdout
    jobs = planned_jobs(copy, config)
    assert jobs - Counter(all=1) == Counter(features=1), jobs  # nothing downstream reruns
    run_snakemake(copy, config)
    assert read_manifest(generated)["files"] == before
    assert planned_jobs(copy, config) == Counter()


def _same_length_other_png(path) -> bytes:
    """Another picture (all black) whose PNG has exactly as many bytes as ``path``'s: a text
    chunk of 12 + len("k") + 1 + n bytes pads it to that length."""
    from PIL.PngImagePlugin import PngInfo

    original = path.read_bytes()
    black = Image.new("RGB", Image.open(path).size)

    def encoded(pad: int | None) -> bytes:
        info = PngInfo()
        if pad is not None:
            info.add_text("k", "x" * pad)
        buffer = BytesIO()
        black.save(buffer, "PNG", pnginfo=info)
        return buffer.getvalue()

    other = encoded(len(original) - len(encoded(None)) - 14)
    assert len(other) == len(original) and other != original
    return other


def test_an_image_overwritten_in_place_with_its_mtime_restored_is_seen(base, tmp_path):
    """dd conv=notrunc + touch -r: the same size, inode and mtime; the stat cache's ctime
    sees the change, and the plan rebuilds what the image feeds."""
    copy, config = _copy_run(base, tmp_path)
    assert planned_jobs(copy, config) == Counter()
    image = sorted((copy / "data" / "digit 1").iterdir())[0]
    other = _same_length_other_png(image)
    before = image.stat()
    with open(image, "r+b") as handle:
        handle.write(other)
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = image.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (before.st_size, before.st_ino, before.st_mtime_ns)
    jobs = planned_jobs(copy, config)
    assert jobs["prepare"] == 1 and jobs["elevater"] >= 1, jobs


def test_gc_dry_run_works_on_a_read_only_results_folder(base, tmp_path):
    workdir, config = base
    mount = tmp_path / "read-only"
    mount.mkdir()
    bind = subprocess.run(["mount", "--bind", str(workdir / "results"), str(mount)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        proc = subprocess.run(
            [sys.executable, "-m", "genbench.workflow.cli", "gc", "--dry-run", "--configfile", str(config)]
            + ["--results", str(mount)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("0 unreferenced artifact(s); would free 0.00 MB")


def test_a_second_run_on_the_same_results_is_refused_naming_the_first(base, tmp_path):
    copy, _ = _copy_run(base, tmp_path)
    results = copy / "results"
    config = _probe_change(copy, copy / "data")
    settings = yaml.safe_load(config.read_text())
    settings["results_dir"] = str(results)
    config.write_text(yaml.safe_dump(settings))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from genbench.core.housekeeping import acquire_run_lock
        acquire_run_lock({str(results)!r})
        print("held", flush=True)
        time.sleep(120)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        proc = run_snakemake(elsewhere, config, check=False)
    finally:
        holder.kill()
        holder.wait()
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "is in use by another GenBench run" in output and f"pid {holder.pid}" in output, output[-2000:]
    assert f"working directory {tmp_path}" in output


def test_identical_runs_give_byte_identical_artifacts_warm_or_cold_and_shots_actual(base, tmp_path):
    """The base run's model jobs started warm (forked from the job server); this one runs every
    job cold, with a second shot count: every artifact both runs make is byte-identical."""
    workdir, _ = base
    other = tmp_path / "other"
    other.mkdir()
    config = _config(other, workdir / "data", fewshot={"shots": [3, 20], "seeds": [0]})
    proc = run_snakemake(other, config, env={"GENBENCH_WARM_JOBS": "0"})
    assert "WARNING fewshot mine k=20 seed=0: 3 class(es) have fewer than 20 images" in proc.stdout + proc.stderr
    model_logs = [log for log in (workdir / "results" / "logs").glob("*/*/*.log") if log.parents[1].name in MODEL_RULES]
    cold = [log for log in model_logs if "warm start" not in log.read_text()]
    assert len(model_logs) >= 5 and len(cold) <= 1, cold  # the job that started the server ran cold
    assert not [log for log in (other / "results" / "logs").rglob("*.log") if "warm start" in log.read_text()]
    shared = [m.parent for m in (workdir / "results").glob("*/*/*/MANIFEST.json")]
    shared = [a for a in shared if (other / "results" / a.relative_to(workdir / "results")).is_dir()]
    assert {a.parents[1].name for a in shared} >= {"features", "sample_images", "pack_generated", "pack_original"}
    for artifact in shared:
        twin = other / "results" / artifact.relative_to(workdir / "results")
        assert read_manifest(twin)["files"] == read_manifest(artifact)["files"], artifact
    for pack in (workdir / "results" / "pack_original" / "mine").iterdir():
        info = json.loads((pack / "dataset_info.json").read_text())
        assert info["root_folder"] == pack.name
    table = pd.read_csv(other / "results" / "summary.csv")
    table = table[table.source == "original"]
    by_shots = dict(zip(table["shots"], table["shots_actual"]))
    assert by_shots[3] == 3 and 0 < by_shots[20] < 20


def test_on_shortfall_error_stops_naming_the_classes(base, tmp_path):
    workdir, _ = base
    config = _config(
        tmp_path, workdir / "data", sources=["original"], fewshot={"shots": [20], "seeds": [0], "on_shortfall": "error"}
    )
    proc = run_snakemake(tmp_path, config, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "fewshot mine k=20 seed=0: 3 class(es) have fewer than 20 images ('digit 0' has" in output
