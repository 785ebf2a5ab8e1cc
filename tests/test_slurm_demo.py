"""The real GenBench demo through Slurm: the repository Snakefile, a small config, and
``snakemake --profile profiles/slurm-ci`` on the one-node localhost cluster.

Needs the cluster of scripts/slurm/start_cluster.sh (SLURM_CONF exported) and is skipped
with the reason otherwise. Checks that the run completes, the results are right and
verify, and that every job really was a Slurm job: one per planned workflow job, run to
COMPLETED, with the GPU rules submitted with one GPU and the others with none; and that the
rules' job groups hold: each external set's evaluations are one Slurm job, and so are a
dataset's configure + prepare and a K-shot subset's fewshot + pack.
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
# rule -> its group (rules/*.smk `group:`; "evaluate" ids are per external set)
GROUPS = {
    "configure": "prepare",
    "prepare": "prepare",
    "fewshot": "subset",
    "pack_original": "subset",
    "elevater": "evaluate",
    "zeroshot_metric": "evaluate",
    "distribution_metrics": "evaluate",
    "proxy_distance": "evaluate",
}
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _submissions(output: str) -> dict[str, list[dict]]:
    """Slurm jobs of the run by rule, or by group ("group:evaluate", ...), from the executor's
    submission lines (its log folder is ``rule_<rule>`` or ``group_<group id>_<rules>``) and
    scontrol."""
    by_rule = defaultdict(list)
    for _, slurm_id, log in SUBMITTED.findall(output):
        log = Path(log.rstrip("."))
        folder = next(p for p in log.parts if p.startswith(("rule_", "group_")))
        kind, name = folder.split("_", 1)
        key = name if kind == "rule" else f"group:{re.split(r'[-_]', name, maxsplit=1)[0]}"
        by_rule[key].append({"id": slurm_id, "log": log, "folder": folder, "info": slurm_job_info(slurm_id)})
    return by_rule


def _expected_submissions(planned: Counter) -> Counter:
    """One Slurm job per planned job outside the groups and the local rules, plus one per group:
    per external set (one elevater job each), per dataset (prepare), per K-shot subset (fewshot)."""
    expected = Counter({rule: n for rule, n in planned.items() if rule not in LOCAL_RULES | set(GROUPS)})
    expected.update(
        {"group:evaluate": planned["elevater"], "group:prepare": planned["prepare"], "group:subset": planned["fewshot"]}
    )
    return expected


def _check_group_job(job: dict) -> None:
    """A group job ran all its members in one Slurm job of at most the profile's 2 cores, for
    10 minutes (slurm-ci's runtime) per layer of members that fit in them, without a GPU."""
    info, log = job["info"], job["log"].read_text(errors="replace")
    members = job["folder"].split("_", 1)[1]
    ran = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log)
    for rule in GROUPS:
        if members.endswith(f"_{rule}") or f"_{rule}_" in members:
            assert rule in ran, (rule, job["folder"], ran)
    assert int(info["NumCPUs"]) <= 2, info
    layers = -(-len(set(ran)) // 2) if job["folder"].startswith("group_evaluate") else len(set(ran))
    assert info["TimeLimit"] == f"00:{10 * layers}:00", (job["folder"], info["TimeLimit"], ran)
    tres = info.get("TresPerJob", "") + info.get("TresPerNode", "")
    assert "gpu" not in tres, info


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

    # every planned job outside the groups was its own Slurm job, each group one Slurm job
    by_rule = _submissions(proc.stdout)
    assert Counter({rule: len(jobs) for rule, jobs in by_rule.items()}) == _expected_submissions(planned)
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
            if rule.startswith("group:"):
                _check_group_job(job)
            elif rule in GPU_RULES:
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
