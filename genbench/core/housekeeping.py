"""Keeping a results folder sound: one run at a time, dead jobs' leftovers, a check of every
finished artifact before a run, and garbage collection of what the plan no longer uses.

- ``acquire_run_lock``: an exclusive ``flock`` on ``<results>/.genbench/run.lock``, held by the
  Snakemake main process for its lifetime (the kernel drops it when the process dies, even
  under ``kill -9``). A second run on the same results folder, from any working directory, is
  refused with a message naming the first.
- ``remove_stale_staging``: the staging folders and temporary files of jobs that died.
- ``preflight``: every planned artifact that exists is checked (through the stat cache) before
  a job runs, so a hand-edited artifact stops the run at once, naming the file and the key.
- ``collect_garbage``: removes the artifacts (and their logs) that the current plan no longer
  references, like ``dvc gc``.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import shutil
import socket
from pathlib import Path

from genbench.core import paths
from genbench.core.artifacts import MANIFEST, Problem, remove_stale_staging, verify_artifact
from genbench.core.errors import GenBenchError

_HELD_LOCKS: dict[str, int] = {}  # results folder -> open lock file descriptor (kept open)


def _lock_path(results_dir: str | os.PathLike) -> Path:
    return Path(results_dir).resolve() / ".genbench" / "run.lock"


def acquire_run_lock(results_dir: str | os.PathLike, purpose: str = "snakemake run") -> None:
    """Hold the results folder's run lock until this process exits; GenBenchError if another
    process holds it (the message names its host, pid, working directory and start time)."""
    path = _lock_path(results_dir)
    if str(path) in _HELD_LOCKS:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise GenBenchError(
            f"results folder {Path(results_dir).resolve()} is in use by another GenBench run "
            f"({holder}); wait for it to finish, or give this run another results_dir"
        ) from None
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "purpose": purpose,
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    _HELD_LOCKS[str(path)] = fd


def release_run_lock(results_dir: str | os.PathLike) -> None:
    fd = _HELD_LOCKS.pop(str(_lock_path(results_dir)), None)
    if fd is not None:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    return (
        f"{info.get('purpose', 'run')} on host {info.get('host')}, pid {info.get('pid')}, "
        f"working directory {info.get('cwd')}, started {info.get('started')}"
    )


def clean_staging(results_dir: str | os.PathLike, log=print) -> int:
    """Remove dead jobs' staging folders and temporary files; report each; return bytes freed."""
    removed = remove_stale_staging(results_dir)
    for path, size in removed:
        log(f"GenBench: removed {path} ({size / 1e6:.1f} MB), left by a job that died")
    return sum(size for _, size in removed)


def preflight(plan, cache) -> list[Problem]:
    """Check every planned artifact that is finished (manifest, key, file digests)."""
    problems = []
    for node in plan.nodes.values():
        folder = Path(node.dir)
        if (folder / MANIFEST).is_file():
            found = verify_artifact(folder, cache)
            manifest_key = _manifest_key(folder)
            if manifest_key and manifest_key != node.key:
                found.append(Problem(str(folder), manifest_key, MANIFEST, "key is not the one the plan names"))
            problems += found
    return problems


def _manifest_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def describe_problems(problems: list[Problem]) -> str:
    listing = "\n".join(f"  {p}" for p in problems[:30])
    more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
    folders = sorted({p.artifact for p in problems})
    return (
        f"{len(problems)} problem(s) in {len(folders)} finished artifact(s):\n{listing}{more}\n"
        "They were changed after they were written, so nothing downstream may use them. Restore "
        "them, or delete the folders named above to have them rebuilt."
    )


def artifact_folders(results_dir: str | os.PathLike, stages) -> list[Path]:
    """Every ``<results>/<stage>/<scope>/<label>-<short key>`` folder of the known stages (finished or not)."""
    root = Path(results_dir)
    found = []
    for stage in stages:
        for scope in sorted(p for p in (root / stage).glob("*") if p.is_dir()):
            found += [p for p in sorted(scope.iterdir()) if p.is_dir() and paths.is_artifact_folder(p.name)]
    return found


def collect_garbage(plan, stages, dry_run: bool = False, log=print) -> tuple[int, int]:
    """Remove the artifact folders (and their logs) under the plan's results folder that the plan
    does not reference; ``plan`` may be a list of plans on one results folder, and what any of
    them references is kept. Returns (folders, bytes) removed, or that would be with ``dry_run``."""
    plans = plan if isinstance(plan, (list, tuple)) else [plan]
    folders = {str(Path(p.results_dir).resolve()) for p in plans}
    if len(folders) != 1:
        raise ValueError(f"gc: the plans write to different results folders: {sorted(folders)}")
    wanted = {Path(node.dir).resolve() for p in plans for node in p.nodes.values()}
    results = Path(plans[0].results_dir)
    count = freed = 0
    for folder in artifact_folders(results, stages):
        if folder.resolve() in wanted:
            continue
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        log(f"{'would remove' if dry_run else 'removed'} {folder} ({size / 1e6:.2f} MB)")
        count, freed = count + 1, freed + size
        if not dry_run:
            shutil.rmtree(folder)
            _remove_logs(results, folder)
    return count, freed


def remove_run_fingerprints(results_dir: str | os.PathLike, log=print) -> int:
    """Remove the input fingerprints earlier runs saved for their jobs
    (``.genbench/fingerprints-*.json``); call with the run lock held (no run is using one).
    Returns the bytes freed."""
    freed = 0
    for path in sorted((Path(results_dir) / ".genbench").glob("fingerprints-*.json")):
        freed += path.stat().st_size
        path.unlink()
        log(f"removed {path} (input fingerprints of an earlier run)")
    return freed


def _remove_logs(results: Path, folder: Path) -> None:
    """The artifact's log and benchmark file, and the folders of its part jobs' (any stage:
    sample_shard, textual_inversion_class)."""
    stage, scope, name = folder.parts[-3:]
    Path(paths.log_path(str(results), stage, scope, name)).unlink(missing_ok=True)
    for kind, suffix in (("logs", ".log"), ("benchmarks", ".tsv")):
        for file in (results / kind).glob(f"*/{scope}/{name}{suffix}"):
            file.unlink()
        for sub in (results / kind).glob(f"*/{scope}/{name}"):
            if sub.is_dir():
                shutil.rmtree(sub)
