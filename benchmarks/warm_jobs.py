"""Benchmark: a small workflow run with every job cold against the same run with warm model jobs.

Model jobs (features, sampling, textual inversion, model building) pay 6-10 s of imports each
on 2 cores; on the local executor they are forked from the job server instead
(``genbench.workflow.warm``). This runs one small config (the digits dataset, tiny models
built in code, two prompt strategies, every source) twice in fresh folders, first with
``GENBENCH_WARM_JOBS=0`` and then as a user runs it, and prints both wall times, their ratio,
how many model jobs started warm, and whether the two runs wrote byte-identical artifacts.

Target: warm / cold <= 0.8, every artifact identical. Prints PASS or FAIL; exit 1 on FAIL.

Run: .venv/bin/python benchmarks/warm_jobs.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.8
CONFIG = {
    "results_dir": "results",
    "datasets": ["digits"],
    "models": {"encoder": {"type": "open_clip", "model": "tiny"}, "generator": {"model": "tiny"}},
    "retrieval": {"pool": "train_split"},
    "generation": {"images_per_class": 4, "shard_size": 20, "steps": 2, "batch_size": 8, "height": 32, "width": 32},
    "strategies": ["simple_template", "descriptions"],
    "strategy_params": {"descriptions": {"file": str(ROOT / "demo" / "descriptions.json")}},
    "fewshot": {"shots": [3], "seeds": [0]},
    "metrics": {"kid": {"num_subsets": 5, "subset_size": 20}},
    "probe": {"lrs": [0.1], "epochs_search": 3, "epochs_final": 5},
}


def run(workdir: Path, warm: bool) -> float:
    """Wall seconds of one snakemake run of CONFIG in ``workdir``."""
    workdir.mkdir(parents=True)
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    command += ["--directory", str(workdir), "--configfile", str(config), "--cores", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GENBENCH_WARM_JOBS": "1" if warm else "0"}
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}:\n{proc.stderr[-3000:]}")
    return elapsed


def digests(results: Path) -> dict[str, str]:
    """Every artifact file (path under results) -> the sha256 its manifest records."""
    found = {}
    for manifest in results.rglob("MANIFEST.json"):
        folder = manifest.parent.relative_to(results)
        for name, entry in json.loads(manifest.read_text())["files"].items():
            found[f"{folder}/{name}"] = entry["sha256"]
    return found


def warm_starts(results: Path) -> tuple[int, int]:
    """(model jobs that started warm, model jobs) from the jobs' logs."""
    sys.path.insert(0, str(ROOT))
    from genbench.workflow.job_kinds import SCRIPT_KINDS

    model = {name for name, kind in SCRIPT_KINDS.items() if kind.name == "model"}
    logs = [log for log in results.glob("logs/*/*/*.log") if log.parents[1].name in model]
    return sum("warm start" in log.read_text() for log in logs), len(logs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep both runs")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="genbench-warm-"))
    cold = run(base / "cold", warm=False)
    warm = run(base / "warm", warm=True)
    started, model_jobs = warm_starts(base / "warm" / "results")
    cold_files, warm_files = digests(base / "cold" / "results"), digests(base / "warm" / "results")
    identical = cold_files == warm_files and len(cold_files) > 0
    ratio = warm / cold
    print(f"cold run (GENBENCH_WARM_JOBS=0)  {cold:7.1f} s")
    print(f"warm run (job server)            {warm:7.1f} s   {started} of {model_jobs} model jobs started warm")
    print(f"warm / cold                      {ratio:7.2f}   (target <= {TARGET_RATIO})")
    print(f"artifact files byte-identical    {identical}   ({len(cold_files)} files)")
    ok = ratio <= TARGET_RATIO and identical
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
