"""The real GenBench demo through Slurm: the repository Snakefile, a small config, and
``snakemake --profile profiles/slurm-ci`` on the one-node localhost cluster.

Needs the cluster of scripts/slurm/start_cluster.sh (SLURM_CONF exported) and is skipped
with the reason otherwise. Checks that the run completes, the results are right and
verify, and that every job really was a Slurm job: one per planned workflow job, run to
COMPLETED, with the GPU rules submitted with one GPU and the others with none.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import pytest
from slurm_helpers import PROFILE_SLURM_CI, requires_slurm, run_snakemake_on_slurm, slurm_job_info
from workflow_helpers import REPO, planned_jobs, quick_config

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

GPU_RULES = {"sample_shard", "features", "text_classifier"}
LOCAL_RULES = {"all", "aggregate", "summary"}  # all: no script; the tables: localrules
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _submissions(output: str) -> dict[str, list[dict]]:
    """Slurm jobs of the run by rule (from the executor's submission lines + scontrol)."""
    by_rule = defaultdict(list)
    for _, slurm_id, log in SUBMITTED.findall(output):
        info = slurm_job_info(slurm_id)
        rule = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", info["Comment"]).group(1)
        by_rule[rule].append({"id": slurm_id, "log": Path(log.rstrip(".")), "info": info})
    return by_rule


@requires_slurm
def test_demo_workflow_runs_through_slurm(tmp_path):
    config = quick_config(
        tmp_path,
        strategies=["simple_template"],
        sources=["generated", "original", "combined"],
        generation={"images_per_class": 4, "shard_size": 20},
    )
    planned = planned_jobs(tmp_path, config)
    assert planned["sample_shard"] == 2 and planned["features"] >= 2, planned

    # --jobs 4 on the 2-CPU node: two jobs run, two wait in Slurm's queue and start the moment a
    # CPU frees (not at the executor's next status poll); about a quarter faster than jobs: 2
    started = time.monotonic()
    proc = run_snakemake_on_slurm(
        tmp_path,
        REPO / "Snakefile",
        ["--configfile", config, "--jobs", "4"],
        timeout=540,
        profile=PROFILE_SLURM_CI,
    )
    elapsed = time.monotonic() - started
    total = sum(planned.values())
    assert f"{total} of {total} steps (100%) done" in proc.stdout, proc.stdout[-3000:]

    # results: one row per source, every metric filled for the generated set
    results = tmp_path / "results"
    table = pd.read_csv(results / "summary.csv")
    combos = set(zip(table.dataset, table.source, table.strategy))
    assert combos == {
        ("digits", "original", "-"),
        ("digits", "generated", "simple_template"),
        ("digits", "combined", "simple_template"),
    }, combos
    generated = table[table.source == "generated"]
    for column in ("linear_probe", "zero_shot", "fd", "clip_score_100", "pad"):
        assert generated[column].notna().all(), column
    verify = subprocess.run(
        [sys.executable, "-m", "genbench.workflow.cli", "verify", str(results)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # every planned job except the local target rule was its own Slurm job
    by_rule = _submissions(proc.stdout)
    expected = Counter({rule: n for rule, n in planned.items() if rule not in LOCAL_RULES})
    assert Counter({rule: len(jobs) for rule, jobs in by_rule.items()}) == expected
    ids = [int(job["id"]) for jobs in by_rule.values() for job in jobs]
    assert len(set(ids)) == len(ids)
    # a downstream job was submitted only after its inputs' jobs had finished
    first = {rule: min(int(j["id"]) for j in jobs) for rule, jobs in by_rule.items()}
    last = {rule: max(int(j["id"]) for j in jobs) for rule, jobs in by_rule.items()}
    assert first["sample_images"] > last["sample_shard"]
    # the table rules ran on the submitting host, after every Slurm job (their output exists)
    assert not LOCAL_RULES & set(by_rule), sorted(by_rule)

    for rule, jobs in by_rule.items():
        for job in jobs:
            info = job["info"]
            assert info["JobState"] == "COMPLETED", (rule, info)
            assert info["Partition"] == "debug", (rule, info)
            assert Path(info["StdOut"]).is_relative_to(tmp_path / ".snakemake" / "slurm_logs")
            assert job["log"].is_file(), job["log"]  # kept: slurm-keep-successful-logs
            tres = info.get("TresPerJob", "") + info.get("TresPerNode", "")
            if rule in GPU_RULES:
                assert "gpu:1" in tres, (rule, info)
                assert info["TimeLimit"] == "00:15:00", (rule, info)
            else:
                assert "gpu" not in tres, (rule, info)
                assert info["TimeLimit"] == "00:10:00", (rule, info)

    # the jobs ran the stage scripts inside Slurm: each shard's Slurm log names its job script
    for job in by_rule["sample_shard"]:
        assert "sample_shard" in job["log"].read_text(errors="replace")

    # Snakemake's records of the Slurm jobs are complete: a local dry run has nothing to do
    # (code changes are not a trigger here, so an edit of the checkout meanwhile does not count)
    assert planned_jobs(tmp_path, config) == {}
    print(f"slurm demo: {len(ids)} Slurm jobs, {elapsed:.0f} s")
