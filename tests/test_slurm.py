"""A real Slurm run: the toy workflow in tests/slurm_toy on the localhost cluster.

The run needs the cluster of scripts/slurm/start_cluster.sh (CI starts it before
pytest and exports SLURM_CONF) and is skipped otherwise; it carries the `slurm`
marker (registered in pyproject.toml). The profile checks at the end need no
cluster.
"""

import re
from pathlib import Path

import pytest
from slurm_helpers import (
    requires_slurm,
    run_snakemake_on_slurm,
    slurm_job_info,
)

REPO = Path(__file__).resolve().parents[1]
GPU_RULES = ("sample_shard", "textual_inversion_class", "lora_part", "features", "text_classifier")

TOY = Path(__file__).resolve().parent / "slurm_toy" / "Snakefile"
LINE = re.compile(r"^rule=(\w+) job=(\S+) cuda=(\S+)$")


def _records(path: Path) -> dict:
    recs = {}
    for line in path.read_text().splitlines():
        m = LINE.match(line.strip())
        assert m, f"unexpected line in {path.name}: {line!r}"
        recs[m.group(1)] = {"job": m.group(2), "cuda": m.group(3)}
    return recs


@pytest.mark.slurm
@requires_slurm
def test_toy_workflow_runs_through_slurm(tmp_path):
    proc = run_snakemake_on_slurm(tmp_path, TOY, timeout=300)
    assert "4 of 4 steps (100%) done" in proc.stdout

    recs = _records(tmp_path / "results" / "summary.txt")
    assert set(recs) == {"cpu_job", "gpu_job", "aggregate"}
    # per-job outputs agree with what the aggregate collected
    assert _records(tmp_path / "results" / "cpu.txt") == {"cpu_job": recs["cpu_job"]}
    assert _records(tmp_path / "results" / "gpu.txt") == {"gpu_job": recs["gpu_job"]}

    # every job ran inside its own Slurm job
    job_ids = {rule: rec["job"] for rule, rec in recs.items()}
    assert all(j.isdigit() for j in job_ids.values()), job_ids
    assert len(set(job_ids.values())) == 3, job_ids
    # the aggregate was submitted after both of its inputs had finished
    assert int(job_ids["aggregate"]) > max(int(job_ids["cpu_job"]), int(job_ids["gpu_job"]))

    # the GPU job was handed one of the node's (fake) GPUs; the others none
    assert recs["gpu_job"]["cuda"] in {"0", "1"}, recs["gpu_job"]
    assert recs["cpu_job"]["cuda"] == "none"
    assert recs["aggregate"]["cuda"] == "none"

    # Slurm's own record of the jobs: completed, right rule, right requests
    for rule, job_id in job_ids.items():
        info = slurm_job_info(job_id)
        assert info["JobState"] == "COMPLETED", (rule, info)
        assert info["Comment"] == f"rule_{rule}", (rule, info)
        assert info["Partition"] == "debug"
        assert info["TimeLimit"] == "00:03:00"  # runtime=3 from the Snakefile
        assert Path(info["StdOut"]).is_relative_to(tmp_path / ".snakemake")
    assert "gpu:1" in slurm_job_info(job_ids["gpu_job"]).get("TresPerJob", "")
    assert "gpu" not in slurm_job_info(job_ids["cpu_job"]).get("TresPerJob", "")


def _parse_profile(name, monkeypatch, **env):
    from snakemake.profiles import ProfileConfigFileParser

    for key in ("GENBENCH_SLURM_ACCOUNT", "GENBENCH_SLURM_PARTITION", "GENBENCH_SLURM_GPU_MODEL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with open(REPO / "profiles" / name / "config.yaml") as fh:
        return ProfileConfigFileParser().parse(fh)


def test_ci_profile_uses_squeue_and_requests_gpus(monkeypatch):
    cfg = _parse_profile("slurm-ci", monkeypatch)
    assert cfg["executor"] == "slurm"
    # without slurmdbd, sacct-based polling never sees the jobs finish
    assert cfg["slurm-status-command"] == "squeue"
    assert "slurm_partition=debug" in cfg["default-resources"]
    for rule in GPU_RULES:
        assert f"{rule}:gpu=1" in cfg["set-resources"], rule


def test_cluster_profile_takes_account_and_partition_from_env(monkeypatch):
    cfg = _parse_profile("slurm", monkeypatch)
    assert cfg["executor"] == "slurm"
    assert not any(r.startswith(("slurm_account", "slurm_partition")) for r in cfg["default-resources"])
    for rule in GPU_RULES:
        assert f"{rule}:gpu=1" in cfg["set-resources"], rule
    assert not any("gpu_model" in r for r in cfg["set-resources"])
    assert not any("cpus_per_task" in r for r in cfg["default-resources"])

    cfg = _parse_profile(
        "slurm",
        monkeypatch,
        GENBENCH_SLURM_ACCOUNT="proj1",
        GENBENCH_SLURM_PARTITION="gpu",
        GENBENCH_SLURM_GPU_MODEL="a100",
    )
    assert "slurm_account=proj1" in cfg["default-resources"]
    assert "slurm_partition=gpu" in cfg["default-resources"]
    assert any(r.startswith("mem_mb=") for r in cfg["default-resources"])
    for rule in GPU_RULES:
        assert f"{rule}:gpu_model=a100" in cfg["set-resources"], rule


def test_local_profile_runs_locally(monkeypatch):
    cfg = _parse_profile("local", monkeypatch)
    assert "executor" not in cfg
    assert cfg["cores"] == "2"
