"""Helpers to run Snakemake workflows on the local test Slurm cluster.

The cluster is started outside pytest (CI does it before the test run):

    eval "$(scripts/slurm/start_cluster.sh --print-env)"   # exports SLURM_CONF
    pytest -m slurm
    scripts/slurm/stop_cluster.sh

Tests that need it use ``requires_slurm`` (a skip marker with the reason) and
``run_snakemake_on_slurm``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILE_SLURM_CI = REPO / "profiles" / "slurm-ci"


def slurm_unavailable_reason() -> str | None:
    """None if a Slurm cluster answers, else why not (for pytest.skip)."""
    if not os.environ.get("SLURM_CONF"):
        return 'SLURM_CONF is not set: start the test cluster with eval "$(scripts/slurm/start_cluster.sh --print-env)"'
    if shutil.which("sinfo") is None:
        return "Slurm client commands (sinfo) are not installed"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if proc.returncode != 0:
        return f"sinfo failed (rc {proc.returncode}): {proc.stderr.strip()}"
    states = proc.stdout.split()
    if not any(s in ("idle", "mixed", "allocated", "completing") for s in states):
        return f"no usable Slurm node (sinfo states: {states})"
    return None


_REASON = slurm_unavailable_reason()
requires_slurm = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))


def slurm_job_info(job_id) -> dict:
    """``scontrol show job`` as a dict (finished jobs stay visible for MinJobAge)."""
    proc = subprocess.run(
        ["scontrol", "-o", "show", "job", str(job_id)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    info = {}
    for token in proc.stdout.split():
        key, sep, value = token.partition("=")
        if sep:
            info[key] = value
    return info


def _diagnostics(workdir: Path) -> str:
    """Slurm's view and the per-job logs, to attach to a failure message."""
    parts = []
    try:
        q = subprocess.run(
            ["squeue", "--states=all", "-o", "%i %j %T %r %M"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        parts.append("squeue --states=all:\n" + q.stdout + q.stderr)
    except (OSError, subprocess.TimeoutExpired) as exc:
        parts.append(f"squeue failed: {exc}")
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        text = log.read_text(errors="replace")
        parts.append(f"--- {log.relative_to(workdir)} (last 40 lines) ---")
        parts.append("\n".join(text.splitlines()[-40:]))
    return "\n".join(parts)


def run_snakemake_on_slurm(
    workdir,
    snakefile,
    extra_args=(),
    timeout: float = 300,
    profile=PROFILE_SLURM_CI,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run ``snakemake --profile <profile>`` in ``workdir`` and wait for it.

    The run uses this interpreter's snakemake; the interpreter's bin directory
    is put first on PATH so that the Slurm jobs (which inherit the environment)
    find the same python and snakemake. Raises ``AssertionError`` with the
    snakemake output, squeue and the Slurm job logs when the run fails or
    exceeds ``timeout`` seconds (its still-queued jobs are then cancelled).
    Returns the completed process (stdout and stderr merged in ``.stdout``).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(Path(profile).resolve()),
        "--snakefile",
        str(Path(snakefile).resolve()),
        "--directory",
        str(workdir),
        *[str(a) for a in extra_args],
    ]
    run_env = dict(os.environ)
    run_env.update(env or {})
    bindir = str(Path(sys.executable).parent)
    run_env["PATH"] = bindir + os.pathsep + run_env.get("PATH", "")
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGINT makes snakemake cancel its Slurm jobs (scancel) before exiting
        os.killpg(proc.pid, 2)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            out, _ = proc.communicate()
        raise AssertionError(
            f"snakemake on Slurm did not finish within {timeout} s\n"
            f"command: {' '.join(cmd)}\n--- output (last 80 lines) ---\n"
            + "\n".join(out.splitlines()[-80:])
            + "\n"
            + _diagnostics(workdir)
        ) from None
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, None)
    if proc.returncode != 0:
        raise AssertionError(
            f"snakemake on Slurm failed (rc {proc.returncode})\n"
            f"command: {' '.join(cmd)}\n--- output (last 80 lines) ---\n"
            + "\n".join(out.splitlines()[-80:])
            + "\n"
            + _diagnostics(workdir)
        )
    return result
