"""Run the real workflow from tests: a small demo config, snakemake in a subprocess, job counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def quick_config(workdir: Path, **overrides) -> Path:
    """A demo config small enough for tests (2 strategies, few images, short probe search,
    tiny random models instead of the trained ones, the train split as the pool, and
    decontamination by exact copies only)."""
    config = {
        "results_dir": "results",
        "datasets": ["digits"],
        "models": {
            "encoder": {"type": "open_clip", "model": "tiny"},
            "generator": {"model": "tiny"},
            "text2text": {"model": "tiny"},
        },
        # tiny random encoders put every image at cosine ~1 of every other: exact copies only
        "retrieval": {"pool": "train_split", "dedup_threshold": None},
        "generation": {
            "images_per_class": 4,
            "shard_size": 20,
            "steps": 2,
            "batch_size": 8,
            "height": 32,
            "width": 32,
        },
        "textual_inversion": {"steps": 10, "batch_size": 2, "resolution": 32},
        "strategies": ["simple_template", "descriptions"],
        "strategy_params": {"descriptions": {"file": str(REPO / "demo/descriptions.json")}},
        "fewshot": {"shots": [3], "seeds": [0]},
        "metrics": {"kid": {"num_subsets": 5, "subset_size": 20}},
        "probe": {"lrs": [0.1], "epochs_search": 3, "epochs_final": 5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = workdir / "test_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_digits_folder(root: Path, per_class: int = 12, num_classes: int = 10) -> list[str]:
    """A user image-folder dataset (one subfolder per class) made from sklearn's digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    classes = [f"digit {i}" for i in range(num_classes)]
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        images = digits.images[digits.target == label][:per_class]
        for i, image in enumerate(images):
            pixels = np.kron((image * 255 / 16).astype(np.uint8), np.ones((4, 4), np.uint8))
            Image.fromarray(pixels).convert("RGB").save(folder / f"{i:03d}.png")
    return classes


def run_snakemake(
    workdir: Path, config: Path, *args: str, timeout: int = 900, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """snakemake on the repository's Snakefile with ``config``, inside ``workdir`` (``env``:
    variables to set on top of this process's)."""
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(workdir: Path, config: Path, *args: str) -> Counter:
    """Jobs per rule that a dry run plans (parsed from Snakemake's job-stats table)."""
    proc = run_snakemake(workdir, config, "--dry-run", *args)
    return job_stats(proc.stdout + proc.stderr)


def job_stats(text: str) -> Counter:
    """Jobs per rule from Snakemake's "Job stats" table in ``text`` (empty if nothing to do)."""
    if "Nothing to be done" in text:
        return Counter()
    table = text.split("Job stats:", 1)[1]
    counts = Counter()
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match or match.group(1) == "total":
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def assert_jobs_loaded_only_allowed(results: Path) -> set[str]:
    """Every job's log ends with the heavy packages it loaded; each must be allowed for its
    script's kind (``genbench.workflow.job_kinds``). Returns the scripts whose logs were read."""
    from genbench.workflow.job_kinds import LOADED_MARK, SCRIPT_KINDS

    script_of = {"pack_retrieval": "pack_generated"}  # rules that run another rule's script
    seen, over = set(), {}
    logs = [*results.glob("logs/*/*/*.log"), *results.glob("logs/*.log")]
    for log in logs:
        stage = log.stem if log.parent == results / "logs" else log.parents[1].name
        script = script_of.get(stage, stage)
        lines = [line for line in log.read_text().splitlines() if LOADED_MARK in line]
        assert lines, f"{log} has no '{LOADED_MARK}' line"
        loaded = {p.strip() for p in lines[-1].split(LOADED_MARK, 1)[1].split(",")} - {"none"}
        if extra := loaded - SCRIPT_KINDS[script].allowed():
            over[str(log.relative_to(results))] = sorted(extra)
        seen.add(script)
    assert not over, f"jobs that loaded packages their kind does not allow: {over}"
    return seen


# -- developers' cache of trained test models ---------------------------------------------
TRAINING_STAGES = ("train_encoder", "train_vae", "train_generator", "train_text2text")


def model_cache() -> Path | None:
    """Where trained test models are kept between local runs (``~/.cache/genbench/test-models``,
    or ``GENBENCH_TEST_MODEL_CACHE``); None (no cache) under CI (``CI=true``) or with
    ``GENBENCH_TEST_MODEL_CACHE=off``, so that CI always trains cold."""
    setting = os.environ.get("GENBENCH_TEST_MODEL_CACHE", "")
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes") or setting == "off":
        return None
    return Path(setting or "~/.cache/genbench/test-models").expanduser()


def _training_artifacts(workdir: Path, config: Path) -> list[Path]:
    """The training artifacts the config plans, as paths relative to ``workdir`` (their folder
    names carry their keys, so a path names one recipe)."""
    from genbench.plan.build import build_plan
    from genbench.plan.validate import load_run_config

    here = os.getcwd()
    try:
        os.chdir(workdir)
        plan = build_plan(load_run_config([str(config)]))
    finally:
        os.chdir(here)
    nodes = [n for stage in TRAINING_STAGES for n in plan.by_stage(stage)]
    return [
        Path(n.manifest).parent.relative_to(workdir) if Path(n.manifest).is_absolute() else Path(n.manifest).parent
        for n in nodes
    ]


def restore_trained_models(workdir: Path, config: Path) -> list[str]:
    """Copy the cached training artifacts this config plans into ``workdir`` (nothing under CI);
    returns the ones restored. The run then verifies them like any finished artifact."""
    import shutil

    cache = model_cache()
    restored = []
    for relative in _training_artifacts(workdir, config) if cache else []:
        if (cache / relative / "MANIFEST.json").is_file() and not (workdir / relative).exists():
            shutil.copytree(cache / relative, workdir / relative)
            restored.append(str(relative))
    return restored


def store_trained_models(workdir: Path, config: Path) -> None:
    """Keep this run's training artifacts in the developers' cache (nothing under CI)."""
    import shutil

    cache = model_cache()
    for relative in _training_artifacts(workdir, config) if cache else []:
        if (workdir / relative / "MANIFEST.json").is_file() and not (cache / relative).exists():
            staging = cache / relative.parent / f".{relative.name}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(workdir / relative, staging)
            staging.rename(cache / relative)
