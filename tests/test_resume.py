"""Resume after a hard kill: the workflow is SIGKILLed while it samples shards, then rerun.

What a rerun must guarantee:
  * after ``snakemake --unlock`` (a SIGKILLed Snakemake leaves its lock behind) it completes
    with ``--rerun-incomplete`` (as the profiles set it) and the artifacts verify;
  * every shard finished before the kill is kept as is: same bytes, same inode, same mtime
    (Snakemake did not regenerate it, nothing rewrote it);
  * it plans exactly the shards that are missing, and a partially written shard (a
    ``.shard-NNNNN.tar.tmp-<host>-<pid>-<random>`` file) never counts as finished: its shard is
    sampled again, and the leftover is removed (and reported) when the rerun starts.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import REPO, SNAKEMAKE, planned_jobs, quick_config, run_snakemake

pytestmark = pytest.mark.workflow

IMAGES_PER_CLASS = 4
SHARD_SIZE = 8
NUM_CLASSES = 10  # digits
NUM_SHARDS = -(-NUM_CLASSES * IMAGES_PER_CLASS // SHARD_SIZE)  # 5
SHARD = re.compile(r"shard-(\d{5})\.tar$")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _finished_shards(results: Path) -> dict[str, Path]:
    """Finished shard files (``shard-NNNNN.tar`` with its part manifest) by shard number."""
    found = {}
    for path in results.glob("sample_images/digits/*/shards/shard-*"):
        match = SHARD.search(path.name)
        if match and path.with_suffix(".json").is_file():
            found[match.group(1)] = path
    return found


def _started_shards(results: Path) -> set[str]:
    """Shards whose job has started: the job script opens its log first thing."""
    return {p.stem for p in results.glob("logs/sample_shard/digits/*/*.log")}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_while_sampling(workdir: Path, config: Path, timeout: float = 600) -> tuple[set[str], str]:
    """Start the workflow (one job at a time) and SIGKILL its whole process group as soon as
    at least one shard is finished, not all are, and a shard job is in the middle of sampling.
    Returns the shards finished at the moment of the kill and snakemake's output."""
    results = workdir / "results"
    log_path = workdir / "killed_run.log"
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(config), "--cores", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pgid = proc.pid
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"snakemake exited ({proc.returncode}) before it could be killed "
                    f"mid-sampling:\n{log_path.read_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no shard finished within {timeout} s:\n{log_path.read_text()[-4000:]}")
            finished = set(_finished_shards(results))
            in_flight = _started_shards(results) - finished
            if 1 <= len(finished) < NUM_SHARDS and in_flight:
                os.killpg(pgid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=30)
        # the job scripts are in the same group: wait until none of them is left
        for _ in range(200):
            if not _group_alive(pgid):
                break
            time.sleep(0.05)
    assert not _group_alive(pgid), "processes of the killed run survived SIGKILL"
    return finished, log_path.read_text()


def _planned_shards(workdir: Path, config: Path) -> set[str]:
    """Shard numbers that a dry run of the rerun would sample (the outputs of its sample_shard jobs)."""
    proc = run_snakemake(workdir, config, "--dry-run", "--rerun-incomplete")
    text = proc.stdout + proc.stderr
    planned = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        if re.match(r"(?:local)?rule sample_shard:", block):
            match = re.search(r"output: \S*shard-(\d{5})\.tar", block)
            assert match, f"no output line in the dry run's sample_shard job:\n{block}"
            planned.add(match.group(1))
    return planned


def test_rerun_after_sigkill_keeps_finished_shards_and_completes(tmp_path):
    # one strategy, generated images only (no retrieval/original evaluations): the whole test,
    # kill and rerun, stays near two minutes on two cores
    config = quick_config(
        tmp_path,
        strategies=["simple_template"],
        sources=["generated"],
        generation={"images_per_class": IMAGES_PER_CLASS, "shard_size": SHARD_SIZE},
    )
    results = tmp_path / "results"
    started = time.monotonic()

    finished_names, killed_output = _kill_while_sampling(tmp_path, config)
    killed_at = time.monotonic()
    assert not (results / "summary.csv").exists(), killed_output[-3000:]
    shards = _finished_shards(results)
    # a shard may only appear after the kill if its job was writing it at that moment
    assert finished_names <= set(shards)
    kept = {}
    for name in sorted(finished_names):
        st = shards[name].stat()
        kept[name] = (_sha256(shards[name]), st.st_ino, st.st_mtime_ns, st.st_size)
    shard_dir = next(iter(shards.values())).parent
    sample_dir = shard_dir.parent
    assert not (sample_dir / "MANIFEST.json").exists()  # the generated set is not finished

    # A partially written shard, as a job killed inside write_tar_atomic leaves it, for a
    # shard that is not finished: it must not count as finished.
    missing = sorted({f"{i:05d}" for i in range(NUM_SHARDS)} - set(shards))
    assert missing, "every shard was finished before the kill"
    partial_shard = missing[0]
    donor = shards[min(finished_names)].read_bytes()
    host, pid = socket.gethostname(), _dead_pid()
    planted = shard_dir / f".shard-{partial_shard}.tar.tmp-{host}-{pid}-0123abcd"
    planted.write_bytes(donor[: len(donor) // 2])
    # ... and a stale one beside a finished shard, which must not disturb that shard
    stale = shard_dir / f".shard-{min(finished_names)}.tar.tmp-{host}-{pid}-4567cdef"
    stale.write_bytes(donor[: len(donor) // 3])

    # The rerun plans exactly the shards that were not finished at the kill (a shard that was
    # being renamed into place at that instant is marked incomplete and planned as well).
    expected = {f"{i:05d}" for i in range(NUM_SHARDS)} - finished_names
    jobs = planned_jobs(tmp_path, config, "--rerun-incomplete")
    assert jobs["sample_shard"] == len(expected), (jobs, sorted(expected))
    assert jobs["sample_images"] == 1
    assert _planned_shards(tmp_path, config) == expected
    assert partial_shard in expected

    # SIGKILL leaves Snakemake's lock behind; removing it is the documented first step
    run_snakemake(tmp_path, config, "--unlock")
    rerun_at = time.monotonic()
    proc = run_snakemake(tmp_path, config, "--rerun-incomplete", timeout=900)
    rerun_done = time.monotonic()
    assert "steps (100%) done" in proc.stdout + proc.stderr
    assert f"{planted.name} (0.0 MB), left by a job that died" in proc.stdout + proc.stderr

    # every shard exists; the ones finished before the kill were not touched
    shards = _finished_shards(results)
    assert set(shards) == {f"{i:05d}" for i in range(NUM_SHARDS)}
    for name, (digest, ino, mtime_ns, size) in kept.items():
        st = shards[name].stat()
        assert (st.st_ino, st.st_mtime_ns, st.st_size) == (ino, mtime_ns, size), name
        assert _sha256(shards[name]) == digest, name
    for name in expected:
        assert shards[name].stat().st_mtime_ns > max(m for _, _, m, _ in kept.values()), name

    # the partial file did not stand in for its shard: that shard is a complete, fresh tar
    assert not planted.exists() and not stale.exists()
    assert not list(shard_dir.glob("*.tmp-*"))
    with tarfile.open(shards[partial_shard]) as tar:
        names = tar.getnames()
    assert len([n for n in names if n.endswith(".png")]) == SHARD_SIZE
    assert len([n for n in names if n.endswith(".json")]) == SHARD_SIZE
    assert (sample_dir / "MANIFEST.json").is_file()
    index = (sample_dir / "images.jsonl").read_text().splitlines()
    assert len(index) == NUM_CLASSES * IMAGES_PER_CLASS

    table = pd.read_csv(results / "summary.csv")
    combos = set(zip(table.dataset, table.source, table.strategy))
    assert ("digits", "generated", "simple_template") in combos

    verify = subprocess.run(
        [sys.executable, "-m", "genbench.workflow.cli", "verify", str(results)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert planned_jobs(tmp_path, config) == {}
    print(
        f"resume test: {len(kept)} shard(s) kept, {len(expected)} resampled, "
        f"killed after {killed_at - started:.0f} s, checks {rerun_at - killed_at:.0f} s, "
        f"rerun {rerun_done - rerun_at:.0f} s, total {time.monotonic() - started:.0f} s"
    )
